//! The `rdkafka` crate (librdkafka 2.12, built from source) against a real server process.

mod common;

use common::{data_dir, Server};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn client(bootstrap: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

fn admin(s: &Server) -> AdminClient<DefaultClientContext> {
    client(&s.kafka, &[]).create().expect("admin client")
}

async fn create_topic(s: &Server, name: &str, partitions: i32) {
    let res = admin(s)
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    assert_eq!(res, vec![Ok(name.to_string())]);
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Option<i64>,
}

/// Reads `count` messages from the start of the given partitions (no group offsets).
fn consume(s: &Server, topic: &str, partitions: i32, count: usize) -> Vec<Got> {
    let c: BaseConsumer = client(
        &s.kafka,
        &[("group.id", "reader"), ("enable.auto.commit", "false")],
    )
    .create()
    .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(Got {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: m.timestamp().to_millis(),
            }),
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    // Nothing beyond what was produced.
    assert!(c.poll(Duration::from_millis(300)).is_none());
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn roundtrip_keys_values_headers_timestamps_in_order() {
    let (_g, dir) = data_dir();
    let s = Server::start_in(&dir, &[]);
    create_topic(&s, "rt", 3).await;
    let p: FutureProducer = client(&s.kafka, &[("linger.ms", "5")])
        .create()
        .expect("producer");
    let mut sent: BTreeMap<i32, Vec<Got>> = BTreeMap::new();
    for i in 0..300i64 {
        let part = (i % 3) as i32;
        let key = format!("key-{i}");
        let value = format!("value-{i}-{}", "x".repeat((i % 17) as usize));
        let ts = 1_700_000_000_000 + i;
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "h1",
                value: Some(format!("hv{i}").as_bytes()),
            })
            .insert(Header {
                key: "empty",
                value: None::<&[u8]>,
            });
        let d = p
            .send(
                FutureRecord::to("rt")
                    .partition(part)
                    .key(&key)
                    .payload(&value)
                    .timestamp(ts)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
        let (dp, off) = (d.partition, d.offset);
        assert_eq!(dp, part);
        let expected_offset = sent.get(&part).map(|v| v.len() as i64).unwrap_or(0);
        assert_eq!(off, expected_offset);
        sent.entry(part).or_default().push(Got {
            partition: part,
            offset: off,
            key: Some(key.into_bytes()),
            value: Some(value.into_bytes()),
            headers: vec![
                ("h1".into(), Some(format!("hv{i}").into_bytes())),
                ("empty".into(), None),
            ],
            timestamp: Some(ts),
        });
    }
    let got = consume(&s, "rt", 3, 300);
    let mut by_part: BTreeMap<i32, Vec<Got>> = BTreeMap::new();
    for g in got {
        by_part.entry(g.partition).or_default().push(g);
    }
    assert_eq!(by_part, sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_compression_codec_roundtrips() {
    let (_g, dir) = data_dir();
    let s = Server::start_in(&dir, &[]);
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("c-{codec}");
        create_topic(&s, &topic, 1).await;
        let p: FutureProducer = client(
            &s.kafka,
            &[
                ("compression.codec", codec),
                ("linger.ms", "20"),
                ("batch.num.messages", "50"),
            ],
        )
        .create()
        .expect("producer");
        let values: Vec<String> = (0..200)
            .map(|i| format!("{codec}-{i}-{}", "abc".repeat(20)))
            .collect();
        let futures: Vec<_> = values
            .iter()
            .map(|v| {
                p.send(
                    FutureRecord::<(), _>::to(&topic).payload(v),
                    Duration::from_secs(10),
                )
            })
            .collect();
        for (i, f) in futures.into_iter().enumerate() {
            let off = f.await.expect("delivered").offset;
            assert_eq!(off, i as i64, "{codec}");
        }
        let got = consume(&s, &topic, 1, 200);
        let values: Vec<String> = got
            .iter()
            .map(|g| String::from_utf8(g.value.clone().unwrap_or_default()).expect("utf8"))
            .collect();
        let expected: Vec<String> = (0..200)
            .map(|i| format!("{codec}-{i}-{}", "abc".repeat(20)))
            .collect();
        assert_eq!(values, expected, "{codec}");
        assert_eq!(
            got.iter().map(|g| g.offset).collect::<Vec<_>>(),
            (0..200).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_producer_writes_each_message_once() {
    let (_g, dir) = data_dir();
    let s = Server::start_in(&dir, &[]);
    create_topic(&s, "idem", 2).await;
    let p: FutureProducer = client(
        &s.kafka,
        &[("enable.idempotence", "true"), ("linger.ms", "2")],
    )
    .create()
    .expect("producer");
    let values: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let futures: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            p.send(
                FutureRecord::<(), _>::to("idem")
                    .partition(i as i32 % 2)
                    .payload(v),
                Duration::from_secs(10),
            )
        })
        .collect();
    for f in futures {
        f.await.expect("delivered");
    }
    let got = consume(&s, "idem", 2, 1000);
    assert_eq!(got.len(), 1000);
    for part in 0..2 {
        let values: Vec<Vec<u8>> = got
            .iter()
            .filter(|g| g.partition == part)
            .map(|g| g.value.clone().unwrap_or_default())
            .collect();
        let expected: Vec<Vec<u8>> = (0..1000)
            .filter(|i| i % 2 == part)
            .map(|i| format!("m{i}").into_bytes())
            .collect();
        assert_eq!(values, expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_topics_partitions_and_configs() {
    let (_g, dir) = data_dir();
    let s = Server::start_in(&dir, &[]);
    let a = admin(&s);
    let opts = AdminOptions::new();
    // Validate-only creates nothing.
    let res = a
        .create_topics(
            &[NewTopic::new("adm", 2, TopicReplication::Fixed(1))],
            &AdminOptions::new().validate_only(true),
        )
        .await
        .expect("validate");
    assert_eq!(res, vec![Ok("adm".to_string())]);
    let md = a
        .inner()
        .fetch_metadata(None, Duration::from_secs(5))
        .expect("metadata");
    assert!(md.topics().iter().all(|t| t.name() != "adm"));
    let res = a
        .create_topics(
            &[NewTopic::new("adm", 2, TopicReplication::Fixed(1)).set("retention.ms", "3600000")],
            &opts,
        )
        .await
        .expect("create");
    assert_eq!(res, vec![Ok("adm".to_string())]);
    let res = a
        .create_topics(
            &[NewTopic::new("adm", 2, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create again");
    assert_eq!(
        res,
        vec![Err((
            "adm".to_string(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))]
    );
    let res = a
        .create_topics(
            &[NewTopic::new("bad", 1, TopicReplication::Fixed(3))],
            &opts,
        )
        .await
        .expect("create rf3");
    assert_eq!(
        res,
        vec![Err((
            "bad".to_string(),
            RDKafkaErrorCode::InvalidReplicationFactor
        ))]
    );

    let res = a
        .create_partitions(&[NewPartitions::new("adm", 5)], &opts)
        .await
        .expect("partitions");
    assert_eq!(res, vec![Ok("adm".to_string())]);
    let res = a
        .create_partitions(&[NewPartitions::new("adm", 3)], &opts)
        .await
        .expect("shrink");
    assert_eq!(
        res,
        vec![Err((
            "adm".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );
    let md = a
        .inner()
        .fetch_metadata(Some("adm"), Duration::from_secs(5))
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 5);

    let described = a
        .describe_configs(&[ResourceSpecifier::Topic("adm")], &opts)
        .await
        .expect("describe");
    let r = described[0].as_ref().expect("resource");
    let retention = r.get("retention.ms").expect("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, rdkafka::admin::ConfigSource::DynamicTopic);
    let seg = r.get("segment.bytes").expect("segment.bytes");
    assert_eq!(seg.value.as_deref(), Some("1073741824"));
    assert_eq!(seg.source, rdkafka::admin::ConfigSource::Default);

    let res = a
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("adm")).set("cleanup.policy", "compact")],
            &opts,
        )
        .await
        .expect("alter");
    assert!(res[0].is_ok());
    let described = a
        .describe_configs(&[ResourceSpecifier::Topic("adm")], &opts)
        .await
        .expect("describe");
    let r = described[0].as_ref().expect("resource");
    assert_eq!(
        r.get("cleanup.policy").and_then(|e| e.value.as_deref()),
        Some("compact")
    );
    // AlterConfigs replaces the whole set: retention.ms is back to its default.
    assert_eq!(
        r.get("retention.ms").and_then(|e| e.value.as_deref()),
        Some("604800000")
    );
    let res = a
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("adm")).set("retention.ms", "soon")],
            &opts,
        )
        .await
        .expect("alter bad");
    // The rdkafka crate reports every AlterConfigs resource as Ok (it drops per-resource
    // errors), so check the effect: the invalid value was refused and nothing changed.
    assert_eq!(res.len(), 1);
    let described = a
        .describe_configs(&[ResourceSpecifier::Topic("adm")], &opts)
        .await
        .expect("describe");
    let r = described[0].as_ref().expect("resource");
    assert_eq!(
        r.get("retention.ms").and_then(|e| e.value.as_deref()),
        Some("604800000")
    );
    assert_eq!(
        r.get("cleanup.policy").and_then(|e| e.value.as_deref()),
        Some("compact")
    );

    let res = a
        .delete_topics(&["adm", "nope"], &opts)
        .await
        .expect("delete");
    assert_eq!(
        res,
        vec![
            Ok("adm".to_string()),
            Err((
                "nope".to_string(),
                RDKafkaErrorCode::UnknownTopicOrPartition
            ))
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_for_times_and_watermarks() {
    let (_g, dir) = data_dir();
    let s = Server::start_in(&dir, &[]);
    create_topic(&s, "times", 1).await;
    let p: FutureProducer = client(&s.kafka, &[]).create().expect("producer");
    for i in 0..10i64 {
        p.send(
            FutureRecord::<(), _>::to("times")
                .payload("x")
                .timestamp(10_000 + i * 100),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    }
    let c: BaseConsumer = client(&s.kafka, &[("group.id", "t")])
        .create()
        .expect("consumer");
    assert_eq!(
        c.fetch_watermarks("times", 0, Duration::from_secs(5))
            .expect("watermarks"),
        (0, 10)
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(10_450))
        .expect("tpl");
    let r = c
        .offsets_for_times(tpl, Duration::from_secs(5))
        .expect("offsets_for_times");
    assert_eq!(r.elements()[0].offset(), Offset::Offset(5));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(99_999))
        .expect("tpl");
    let r = c
        .offsets_for_times(tpl, Duration::from_secs(5))
        .expect("offsets_for_times");
    assert_eq!(r.elements()[0].offset(), Offset::End);
}

fn raw_roundtrip(addr: &str, frame: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(frame)?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_bad_versions_leave_the_server_serving() {
    let (_g, dir) = data_dir();
    let s = Server::start_in(&dir, &[]);
    // Garbage, an absurd length, a negative length: the server closes the connection.
    for frame in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0x7f, 0xff, 0xff, 0xff, 0, 0],
        vec![0xff, 0xff, 0xff, 0xfe],
        // Unknown API key 999.
        vec![0, 0, 0, 10, 0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0, 0],
        // Metadata v99.
        vec![0, 0, 0, 10, 0, 3, 0, 99, 0, 0, 0, 1, 0, 0],
        // A truncated Produce body.
        vec![0, 0, 0, 12, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0xff, 0xff],
    ] {
        let out = raw_roundtrip(&s.kafka, &frame).expect("connect");
        assert!(out.is_empty(), "expected close without reply, got {out:?}");
    }
    // ApiVersions v99 gets a v0 reply: correlation id, UNSUPPORTED_VERSION (35), our ranges.
    let out =
        raw_roundtrip(&s.kafka, &[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 42, 0, 0]).expect("connect");
    assert!(out.len() > 14);
    assert_eq!(&out[4..8], &[0, 0, 0, 42]);
    assert_eq!(&out[8..10], &[0, 35]);
    // A real client still gets metadata.
    let md = admin(&s)
        .inner()
        .fetch_metadata(None, Duration::from_secs(5))
        .expect("metadata");
    assert_eq!(md.brokers().len(), 1);
}

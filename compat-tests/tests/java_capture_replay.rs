//! Replays the request frames the Kafka 3.9 Java client and tools sent (recorded in
//! `compat-tests/captures/kafka-java-3.9`) against a live server, one TCP connection per recorded
//! connection, and decodes every response at the exact version the Java client asked for.
//! The Java client cannot be installed here; its bytes can.

mod common;

use bytes::Bytes;
use common::{data_dir, Server};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Decodable;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// APIs the server advertises, at the versions the Java 3.9 client uses with it.
fn advertised(api: ApiKey, version: i16) -> bool {
    !matches!(
        api,
        ApiKey::GetTelemetrySubscriptions
            | ApiKey::DescribeTopicPartitions
            | ApiKey::ConsumerGroupDescribe
            | ApiKey::ListPartitionReassignments
    ) && version >= 0
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("response length");
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).expect("response body");
    buf
}

/// Replays one capture file; returns the decoded responses in order.
fn replay(server: &Server, file: &str) -> Vec<(ApiKey, ResponseKind)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("captures/kafka-java-3.9")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut conns: HashMap<u64, TcpStream> = HashMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        if v["dir"] != "client->server" {
            continue;
        }
        let api = ApiKey::try_from(v["api_key"].as_i64().unwrap_or(-1) as i16).expect("api key");
        let version = v["api_version"].as_i64().unwrap_or(-1) as i16;
        if !advertised(api, version) {
            continue;
        }
        let frame = unhex(v["hex"].as_str().unwrap_or(""));
        let stream = v["stream"].as_u64().unwrap_or(0);
        let conn = conns.entry(stream).or_insert_with(|| {
            let s = TcpStream::connect(&server.kafka).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(15)))
                .expect("timeout");
            s
        });
        conn.write_all(&frame).expect("send");
        let acks_zero = api == ApiKey::Produce && v["produce"]["acks"].as_i64() == Some(0);
        if acks_zero {
            continue;
        }
        let mut resp = Bytes::from(read_frame(conn));
        let header = ResponseHeader::decode(&mut resp, api.response_header_version(version))
            .expect("response header");
        assert_eq!(
            header.correlation_id,
            v["correlation_id"].as_i64().unwrap_or(-1) as i32,
            "{file}: {api:?}"
        );
        let body = ResponseKind::decode(api, &mut resp, version)
            .unwrap_or_else(|e| panic!("{file}: {api:?} v{version} response does not decode: {e}"));
        assert!(
            resp.is_empty(),
            "{file}: {api:?} v{version}: {} trailing bytes",
            resp.len()
        );
        out.push((api, body));
    }
    out
}

fn produce_errors(responses: &[(ApiKey, ResponseKind)]) -> (usize, Vec<i16>) {
    let mut n = 0;
    let mut errors = Vec::new();
    for (_, r) in responses {
        if let ResponseKind::Produce(p) = r {
            for t in &p.responses {
                for pr in &t.partition_responses {
                    n += 1;
                    if pr.error_code != 0 {
                        errors.push(pr.error_code);
                    }
                }
            }
        }
    }
    (n, errors)
}

#[test]
fn java_producers_and_admin_tools_get_answers_they_decode() {
    let (_g, dir) = data_dir();
    let s = Server::start_in(&dir, &["num.partitions=3"]);
    let created = replay(&s, "kafka-topics-create.jsonl");
    let ct = created
        .iter()
        .find_map(|(_, r)| match r {
            ResponseKind::CreateTopics(c) => Some(c.clone()),
            _ => None,
        })
        .expect("CreateTopics answered");
    assert_eq!(ct.topics.len(), 1);
    assert_eq!(ct.topics[0].error_code, 0);
    assert_eq!(ct.topics[0].num_partitions, 3);

    for file in [
        "verifiable-producer.jsonl",
        "verifiable-producer-keyed.jsonl",
        "verifiable-producer-acks1.jsonl",
        "producer-idempotent.jsonl",
        "compression-gzip.jsonl",
        "compression-snappy.jsonl",
        "compression-lz4.jsonl",
        "compression-zstd.jsonl",
    ] {
        let responses = replay(&s, file);
        let (n, errors) = produce_errors(&responses);
        assert!(n > 0, "{file}: no produce answered");
        assert!(errors.is_empty(), "{file}: produce errors {errors:?}");
    }

    for file in [
        "console-consumer.jsonl",
        "console-consumer-assign.jsonl",
        "console-consumer-group.jsonl",
        "consumer-perf-group.jsonl",
        "verifiable-consumer.jsonl",
        "get-offsets-latest.jsonl",
        "get-offsets-earliest.jsonl",
        "consumer-groups-list.jsonl",
        "consumer-groups-describe.jsonl",
        "consumer-groups-reset-offsets.jsonl",
        "kafka-topics-list.jsonl",
        "kafka-topics-describe.jsonl",
        "delete-records.jsonl",
        "kafka-topics-delete.jsonl",
    ] {
        let responses = replay(&s, file);
        assert!(!responses.is_empty(), "{file}: nothing answered");
        for (api, r) in &responses {
            if let ResponseKind::ListOffsets(l) = r {
                for t in &l.topics {
                    for p in &t.partitions {
                        assert_eq!(p.error_code, 0, "{file}: {api:?} {:?}", t.name);
                    }
                }
            }
        }
    }
}

/// The Java 3.9 transactional producer's requests (`kafka-producer-perf-test` with a
/// `transactional.id`), replayed byte for byte: FindCoordinator for the transaction,
/// InitProducerId with the id, AddPartitionsToTxn v3, and transactional Produce v11 batches.
/// The capture's batches carry producer id 6, so six idempotent producers come first.
#[test]
fn java_transactional_producer_requests_are_answered() {
    let (_g, dir) = data_dir();
    let s = Server::start_in(&dir, &["num.partitions=3"]);
    for _ in 0..6 {
        let r = replay(&s, "producer-idempotent.jsonl");
        assert_eq!(produce_errors(&r).1, Vec::<i16>::new());
    }
    let responses = replay(&s, "producer-transactional.jsonl");
    let mut seen = Vec::new();
    for (api, r) in &responses {
        match r {
            ResponseKind::FindCoordinator(f) => {
                assert!(f.coordinators.iter().all(|c| c.error_code == 0), "{f:?}");
                seen.push(*api);
            }
            ResponseKind::InitProducerId(i) => {
                assert_eq!((i.error_code, i.producer_id.0, i.producer_epoch), (0, 6, 0));
                seen.push(*api);
            }
            ResponseKind::AddPartitionsToTxn(a) => {
                let codes: Vec<(String, i32, i16)> = a
                    .results_by_topic_v3_and_below
                    .iter()
                    .flat_map(|t| {
                        t.results_by_partition.iter().map(move |p| {
                            (
                                t.name.0.to_string(),
                                p.partition_index,
                                p.partition_error_code,
                            )
                        })
                    })
                    .collect();
                assert_eq!(codes, vec![("jt-tx".to_string(), 1, 0)]);
                seen.push(*api);
            }
            ResponseKind::Produce(p) => {
                for t in &p.responses {
                    for pr in &t.partition_responses {
                        assert_eq!((pr.index, pr.error_code), (1, 0));
                    }
                }
                seen.push(*api);
            }
            _ => {}
        }
    }
    assert_eq!(
        seen,
        vec![
            ApiKey::FindCoordinator,
            ApiKey::InitProducerId,
            ApiKey::AddPartitionsToTxn,
            ApiKey::Produce,
            ApiKey::Produce
        ]
    );
    let offsets: Vec<i64> = responses
        .iter()
        .filter_map(|(_, r)| match r {
            ResponseKind::Produce(p) => Some(p.responses[0].partition_responses[0].base_offset),
            _ => None,
        })
        .collect();
    assert_eq!(offsets, vec![0, 59]);
}

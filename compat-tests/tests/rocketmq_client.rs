//! The `rocketmq-client-rust` crate (a real third-party RocketMQ client) against a real
//! `gateway` process speaking the RocketMQ 4.x remoting protocol, plus `rdkafka` for the
//! cross-protocol checks and raw TCP for malformed frames.
//!
//! Every test starts its own server on loopback with server-chosen ports and uses fresh topic and
//! group names. Waits are deadlines with polling; a failed wait panics with what was received.

#![recursion_limit = "256"]

mod rocketmq_common;

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cheetah_string::CheetahString;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use rocketmq_client_rust::{
    ClientError, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, ConsumeOrderlyContext,
    ConsumeOrderlyStatus, DefaultMQProducer, LocalTransactionState, MQPushConsumer, QueryResult,
    RouteAdmin, TopicAdmin, TransactionListener, TransactionMQProducer,
};
use rocketmq_common::{
    admin, client_config, client_runtime, consumer_builder, create_topic, msg, now_ms, ok_result,
    producer, publish_queues, send_bodies, start, start_consumer, unique, within, Got, Inbox,
    BROKER_NAME,
};
use rocketmq_model::common::config::TopicConfig;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::result::{SendResult, SendStatus};
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;

const CLUSTER: &str = "DefaultCluster";
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// client helpers
// ---------------------------------------------------------------------------

fn msg_with_props(
    topic: &str,
    tag: &str,
    keys: &[&str],
    body: &str,
    props: &[(&str, &str)],
) -> Message {
    let mut m = msg(topic, tag, keys, body);
    for (k, v) in props {
        m.put_user_property(CheetahString::from(*k), CheetahString::from(*v))
            .expect("user property");
    }
    m
}

fn count_bodies(got: &[Got]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for g in got {
        *m.entry(g.body_str()).or_insert(0) += 1;
    }
    m
}

fn exactly_once(expected: &[String]) -> BTreeMap<String, usize> {
    expected.iter().map(|b| (b.clone(), 1)).collect()
}

// ---------------------------------------------------------------------------
// Kafka helpers (rdkafka)
// ---------------------------------------------------------------------------

fn kafka_config(bootstrap: &str, extra: &[(&str, &str)]) -> rdkafka::config::ClientConfig {
    let mut c = rdkafka::config::ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

#[derive(Debug, Clone)]
struct KRec {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Option<i64>,
}

impl KRec {
    fn header(&self, k: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(hk, _)| hk == k)
            .and_then(|(_, v)| v.as_ref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Reads one record at (topic, partition, offset) with a Kafka consumer (no group offsets).
fn kafka_read_at(bootstrap: &str, topic: &str, partition: i32, offset: i64) -> KRec {
    let c: BaseConsumer = kafka_config(
        bootstrap,
        &[
            ("group.id", "rmq-compat-reader"),
            ("enable.auto.commit", "false"),
        ],
    )
    .create()
    .expect("kafka consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                return KRec {
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
                }
            }
            Some(Err(e)) => panic!("kafka consume {topic}/{partition}@{offset}: {e}"),
            None => {}
        }
    }
    panic!("no Kafka record at {topic}/{partition}@{offset} within {WAIT:?}");
}

// ---------------------------------------------------------------------------
// send modes
// ---------------------------------------------------------------------------

/// Sync, async (callback), oneway and batch sends to a topic that does not exist yet
/// (auto-created); a consumer then sees every body exactly once, at the queue and offset each
/// SendResult reported, with tags, keys and user properties intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_sync_async_oneway_batch_then_consume_each_exactly_once() {
    let (_d, s) = start(&[]);
    let topic = unique("rmq_send_modes");
    let mut p = producer(&s.namesrv).await;

    // sync: the first send auto-creates the topic
    let mut sync_results = Vec::new();
    for i in 0..3 {
        let body = format!("sync-{i}");
        let key = format!("ks{i}");
        let r = ok_result(
            within(
                "sync send",
                15,
                p.send_with_timeout(
                    msg_with_props(
                        &topic,
                        "TagSync",
                        &[&key, "second"],
                        &body,
                        &[("color", "red")],
                    ),
                    5_000,
                ),
            )
            .await,
            &body,
        );
        let mq = r.message_queue.clone().expect("SendResult has its queue");
        assert_eq!(mq.topic().as_str(), topic);
        assert_eq!(mq.broker_name().as_str(), BROKER_NAME);
        assert!(
            r.msg_id.as_ref().is_some_and(|id| id.len() == 32),
            "unique msg id (32 hex chars): {r}"
        );
        assert!(
            r.offset_msg_id.as_ref().is_some_and(|id| id.len() == 32),
            "offset msg id (32 hex chars): {r}"
        );
        sync_results.push((body, r));
    }
    let queues = publish_queues(&mut p, &topic, 4).await; // defaultTopicQueueNums = 4
    assert_eq!(queues.len(), 4);

    // async with callbacks
    type Outcomes = Arc<Mutex<Vec<(String, Result<SendResult, String>)>>>;
    let async_results: Outcomes = Arc::default();
    for i in 0..3 {
        let body = format!("async-{i}");
        let sink = async_results.clone();
        let b2 = body.clone();
        within(
            "async send",
            15,
            p.send_with_callback_timeout(
                msg(&topic, "TagAsync", &[&format!("ka{i}")], &body),
                move |res: Option<&SendResult>, err: Option<&ClientError>| {
                    let outcome = match (res, err) {
                        (Some(r), None) => Ok(r.clone()),
                        (_, Some(e)) => Err(e.to_string()),
                        (None, None) => Err("callback with neither result nor error".into()),
                    };
                    sink.lock().expect("lock").push((b2.clone(), outcome));
                },
                5_000,
            ),
        )
        .await
        .expect("async send dispatched");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while async_results.lock().expect("lock").len() < 3 {
        assert!(
            Instant::now() < deadline,
            "async callbacks: {:?}",
            async_results.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let async_results: Vec<(String, SendResult)> = async_results
        .lock()
        .expect("lock")
        .iter()
        .map(|(b, r)| {
            let r = r
                .clone()
                .unwrap_or_else(|e| panic!("async send {b} failed: {e}"));
            assert_eq!(r.send_status, SendStatus::SendOk);
            (b.clone(), r)
        })
        .collect();

    // oneway
    for i in 0..3 {
        within(
            "oneway send",
            15,
            p.send_oneway(msg(&topic, "TagOneway", &[], &format!("oneway-{i}"))),
        )
        .await
        .expect("oneway send");
    }

    // batch (one request, one queue, consecutive offsets)
    let batch_bodies: Vec<String> = (0..4).map(|i| format!("batch-{i}")).collect();
    let batch = within(
        "batch send",
        15,
        p.send_batch_with_timeout(
            batch_bodies
                .iter()
                .map(|b| msg(&topic, "TagBatch", &[&format!("kb-{b}")], b))
                .collect::<Vec<_>>(),
            5_000,
        ),
    )
    .await
    .expect("batch send");
    assert_eq!(batch.send_status, SendStatus::SendOk);
    let batch_mq = batch.message_queue.clone().expect("batch queue");
    let batch_ids: Vec<String> = batch
        .msg_id
        .as_ref()
        .expect("batch msg ids")
        .as_str()
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!(
        batch_ids.len(),
        4,
        "one unique id per batched message: {batch}"
    );

    let inbox = Inbox::new();
    let mut c = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg")),
        &topic,
        "*",
        &inbox,
        "c",
    )
    .await;
    let mut expected: Vec<String> = (0..3)
        .flat_map(|i| {
            [
                format!("sync-{i}"),
                format!("async-{i}"),
                format!("oneway-{i}"),
            ]
        })
        .collect();
    expected.extend(batch_bodies.iter().cloned());
    inbox
        .wait_len("all 13 messages", expected.len(), WAIT)
        .await;
    let got = inbox.snapshot();
    c.shutdown().await;
    p.shutdown().await;

    assert_eq!(
        count_bodies(&got),
        exactly_once(&expected),
        "every body exactly once"
    );
    let by_body: HashMap<String, &Got> = got.iter().map(|g| (g.body_str(), g)).collect();
    for (body, r) in &sync_results {
        let g = by_body[body];
        let mq = r.message_queue.as_ref().expect("queue");
        assert_eq!(g.topic, topic);
        assert_eq!(
            (g.queue_id, g.queue_offset),
            (mq.queue_id(), r.queue_offset as i64),
            "{body}: position"
        );
        assert_eq!(g.tags.as_deref(), Some("TagSync"));
        let n = body.trim_start_matches("sync-");
        assert_eq!(g.keys.as_deref(), Some(format!("ks{n} second").as_str()));
        assert_eq!(g.properties.get("color").map(String::as_str), Some("red"));
        assert_eq!(
            g.properties.get("UNIQ_KEY"),
            r.msg_id.as_ref().map(|x| x.to_string()).as_ref(),
            "{body}: UNIQ_KEY is the SendResult msgId"
        );
        assert_eq!(g.reconsume_times, 0);
        assert!(
            g.born_timestamp > 0 && g.store_timestamp >= g.born_timestamp - 1000,
            "{body}: timestamps {g:?}"
        );
    }
    for (body, r) in &async_results {
        let g = by_body[body];
        let mq = r.message_queue.as_ref().expect("queue");
        assert_eq!(
            (g.queue_id, g.queue_offset),
            (mq.queue_id(), r.queue_offset as i64),
            "{body}: position"
        );
        assert_eq!(g.tags.as_deref(), Some("TagAsync"));
    }
    for i in 0..3 {
        let g = by_body[&format!("oneway-{i}")];
        assert_eq!(g.tags.as_deref(), Some("TagOneway"));
        assert_eq!(g.keys, None);
    }
    for (i, b) in batch_bodies.iter().enumerate() {
        let g = by_body[b];
        assert_eq!(g.queue_id, batch_mq.queue_id(), "batch shares one queue");
        assert_eq!(
            g.queue_offset,
            batch.queue_offset as i64 + i as i64,
            "batch offsets are consecutive"
        );
        assert_eq!(g.tags.as_deref(), Some("TagBatch"));
        assert_eq!(g.keys.as_deref(), Some(format!("kb-{b}").as_str()));
        assert_eq!(g.properties.get("UNIQ_KEY"), Some(&batch_ids[i]));
    }
    // per queue, offsets seen are exactly 0..n with no gaps
    let mut per_queue: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for g in &got {
        per_queue
            .entry(g.queue_id)
            .or_default()
            .push(g.queue_offset);
    }
    for (q, mut offs) in per_queue {
        offs.sort_unstable();
        assert_eq!(
            offs,
            (0..offs.len() as i64).collect::<Vec<_>>(),
            "queue {q} offsets"
        );
    }
}

// ---------------------------------------------------------------------------
// cross-protocol
// ---------------------------------------------------------------------------

/// A RocketMQ send is a Kafka record at partition = queueId, offset = queueOffset: value = body,
/// key = first KEYS entry, headers = properties (TAGS, KEYS, user ones), timestamp = born time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_send_is_read_by_kafka_consumer() {
    let (_d, s) = start(&[]);
    let topic = unique("rmq_to_kafka");
    let mut p = producer(&s.namesrv).await;
    let r = ok_result(
        within(
            "send",
            15,
            p.send_with_timeout(
                msg_with_props(
                    &topic,
                    "TagK",
                    &["key-one", "key-two"],
                    "hello kafka",
                    &[("color", "blue"), ("n", "42")],
                ),
                5_000,
            ),
        )
        .await,
        "send",
    );
    let mq = r.message_queue.clone().expect("queue");

    // the RocketMQ view of the same message, for its born timestamp
    let inbox = Inbox::new();
    let mut c = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg")),
        &topic,
        "*",
        &inbox,
        "c",
    )
    .await;
    inbox.wait_len("the message", 1, WAIT).await;
    let g = inbox.snapshot()[0].clone();
    c.shutdown().await;
    p.shutdown().await;

    let k = tokio::task::spawn_blocking({
        let b = s.kafka.clone();
        let t = topic.clone();
        let (q, o) = (mq.queue_id(), r.queue_offset as i64);
        move || kafka_read_at(&b, &t, q, o)
    })
    .await
    .expect("join");
    assert_eq!(
        (k.partition, k.offset),
        (mq.queue_id(), r.queue_offset as i64)
    );
    assert_eq!(k.value.as_deref(), Some(&b"hello kafka"[..]));
    assert_eq!(
        k.key.as_deref(),
        Some(&b"key-one"[..]),
        "Kafka key = first of KEYS"
    );
    assert_eq!(k.header("TAGS").as_deref(), Some("TagK"));
    assert_eq!(k.header("KEYS").as_deref(), Some("key-one key-two"));
    assert_eq!(k.header("color").as_deref(), Some("blue"));
    assert_eq!(k.header("n").as_deref(), Some("42"));
    assert_eq!(
        k.timestamp,
        Some(g.born_timestamp),
        "Kafka timestamp = bornTimestamp"
    );
}

/// A Kafka record is a RocketMQ message: body = value, queueId = partition, queueOffset = offset,
/// headers = properties (TAGS drives tag filtering), key = KEYS when no KEYS header is given,
/// bornTimestamp = record timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_produce_is_consumed_by_rocketmq_with_tag_filter() {
    let (_d, s) = start(&[]);
    let topic = unique("kafka_to_rmq");
    create_topic(&s.namesrv, &s.broker, &topic, 4).await;

    let kp: FutureProducer = kafka_config(&s.kafka, &[("acks", "all")])
        .create()
        .expect("kafka producer");
    let ts = 1_700_000_000_123_i64;
    let mut sent = Vec::new();
    for (i, tag) in ["TagK", "TagOther", "TagK"].iter().enumerate() {
        let value = format!("from-kafka-{i}");
        let key = format!("kkey-{i}");
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "TAGS",
                value: Some(*tag),
            })
            .insert(Header {
                key: "h1",
                value: Some("v1"),
            });
        let d = kp
            .send(
                FutureRecord::to(&topic)
                    .partition(2)
                    .key(&key)
                    .payload(&value)
                    .timestamp(ts + i as i64)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("kafka produce: {e}"));
        assert_eq!(d.partition, 2);
        sent.push((value, key, d.offset, *tag, ts + i as i64));
    }

    let inbox = Inbox::new();
    let mut c = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg")),
        &topic,
        "TagK",
        &inbox,
        "c",
    )
    .await;
    // the last TagK record is after the TagOther one in the same queue: once it arrived, the
    // filtered one was passed over
    inbox
        .wait_for("both TagK records", WAIT, |g| {
            g.iter().any(|x| x.body_str() == "from-kafka-2")
        })
        .await;
    let got = inbox.snapshot();
    c.shutdown().await;

    let bodies: Vec<String> = got.iter().map(Got::body_str).collect();
    assert_eq!(
        bodies,
        vec!["from-kafka-0".to_string(), "from-kafka-2".to_string()],
        "TagOther filtered out"
    );
    for g in &got {
        let (value, key, off, tag, t) = sent.iter().find(|x| x.0 == g.body_str()).expect("sent");
        assert_eq!(g.topic, topic);
        assert_eq!((g.queue_id, g.queue_offset), (2, *off));
        assert_eq!(g.tags.as_deref(), Some(*tag));
        assert_eq!(
            g.properties.get("h1").map(String::as_str),
            Some("v1"),
            "{value}: header -> property"
        );
        assert_eq!(
            g.keys.as_deref(),
            Some(key.as_str()),
            "{value}: Kafka key -> KEYS"
        );
        assert_eq!(
            g.born_timestamp, *t,
            "{value}: record timestamp -> bornTimestamp"
        );
    }
}

// ---------------------------------------------------------------------------
// consumption models
// ---------------------------------------------------------------------------

/// Two consumers in one group split the queues (each consumer owns whole queues, together all
/// of them) and every message is consumed exactly once across the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustering_two_consumers_split_queues_and_consume_each_message_once() {
    let (_d, s) = start(&[]);
    let topic = unique("rmq_cluster");
    let queues = create_topic(&s.namesrv, &s.broker, &topic, 4).await;
    let group = unique("cg");
    let inbox = Inbox::new();
    let mut c1 = start_consumer(
        consumer_builder(&s.namesrv, &group),
        &topic,
        "*",
        &inbox,
        "c1",
    )
    .await;
    let mut c2 = start_consumer(
        consumer_builder(&s.namesrv, &group),
        &topic,
        "*",
        &inbox,
        "c2",
    )
    .await;
    let mut p = producer(&s.namesrv).await;

    // Probe rounds (one message per queue) until a whole round is consumed once per probe, by
    // both consumers, each queue by one of them: the rebalance has settled.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "rebalance never settled: {:?}",
            inbox.snapshot()
        );
        let probes: Vec<String> = queues
            .iter()
            .map(|q| format!("probe-{round}-{}", q.queue_id()))
            .collect();
        for (q, b) in queues.iter().zip(&probes) {
            ok_result(
                within(
                    "probe send",
                    15,
                    p.send_to_queue_with_timeout(msg(&topic, "P", &[], b), q.clone(), 5_000),
                )
                .await,
                b,
            );
        }
        inbox
            .wait_for("a probe round", WAIT, |g| {
                probes.iter().all(|b| g.iter().any(|x| &x.body_str() == b))
            })
            .await;
        let got = inbox.snapshot();
        let this: Vec<&Got> = got
            .iter()
            .filter(|g| probes.contains(&g.body_str()))
            .collect();
        let consumers: BTreeSet<&str> = this.iter().map(|g| g.consumer.as_str()).collect();
        if this.len() == probes.len() && consumers.len() == 2 {
            break;
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let before = inbox.len();

    let bodies: Vec<String> = (0..40).map(|i| format!("m-{i}")).collect();
    for b in &bodies {
        ok_result(
            within(
                "send",
                15,
                p.send_with_timeout(msg(&topic, "M", &[], b), 5_000),
            )
            .await,
            b,
        );
    }
    inbox
        .wait_for("all 40", WAIT, |g| {
            bodies.iter().all(|b| g.iter().any(|x| &x.body_str() == b))
        })
        .await;
    let got: Vec<Got> = inbox.snapshot().split_off(before);
    c1.shutdown().await;
    c2.shutdown().await;
    p.shutdown().await;

    let main: Vec<&Got> = got
        .iter()
        .filter(|g| g.body_str().starts_with("m-"))
        .collect();
    assert_eq!(
        count_bodies(&main.iter().map(|g| (*g).clone()).collect::<Vec<_>>()),
        exactly_once(&bodies)
    );
    let mut owner: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
    for g in &main {
        owner
            .entry(g.queue_id)
            .or_default()
            .insert(g.consumer.clone());
    }
    for (q, who) in &owner {
        assert_eq!(
            who.len(),
            1,
            "queue {q} consumed by one consumer only: {who:?}"
        );
    }
    let users: BTreeSet<String> = owner.values().flatten().cloned().collect();
    assert_eq!(users.len(), 2, "both consumers own queues: {owner:?}");
}

/// Two broadcasting consumers of one group each receive every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_each_consumer_receives_every_message() {
    let (_d, s) = start(&[]);
    let topic = unique("rmq_bcast");
    create_topic(&s.namesrv, &s.broker, &topic, 4).await;
    let group = unique("cg");
    let (in1, in2) = (Inbox::new(), Inbox::new());
    let b = || consumer_builder(&s.namesrv, &group).message_model(MessageModel::Broadcasting);
    let mut c1 = start_consumer(b(), &topic, "*", &in1, "c1").await;
    let mut c2 = start_consumer(b(), &topic, "*", &in2, "c2").await;
    let mut p = producer(&s.namesrv).await;
    let bodies: Vec<String> = (0..12).map(|i| format!("b-{i}")).collect();
    for b in &bodies {
        ok_result(
            within(
                "send",
                15,
                p.send_with_timeout(msg(&topic, "B", &[], b), 5_000),
            )
            .await,
            b,
        );
    }
    in1.wait_len("c1 gets all 12", 12, WAIT).await;
    in2.wait_len("c2 gets all 12", 12, WAIT).await;
    let (g1, g2) = (in1.snapshot(), in2.snapshot());
    c1.shutdown().await;
    c2.shutdown().await;
    p.shutdown().await;
    assert_eq!(count_bodies(&g1), exactly_once(&bodies));
    assert_eq!(count_bodies(&g2), exactly_once(&bodies));
}

/// MessageQueueSelector by order id puts each order on a fixed queue; an orderly consumer sees
/// every order's steps in send order, at increasing offsets of that queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_messages_by_selector_consumed_in_order_per_queue() {
    let (_d, s) = start(&[]);
    let topic = unique("rmq_order");
    create_topic(&s.namesrv, &s.broker, &topic, 4).await;
    let mut p = producer(&s.namesrv).await;
    let orders = 6i32;
    let steps = 8;
    let mut sent_queue: HashMap<i32, i32> = HashMap::new();
    for step in 0..steps {
        for order in 0..orders {
            let body = format!("order-{order}-step-{step}");
            let r = ok_result(
                within(
                    "selector send",
                    15,
                    p.send_with_selector_timeout(
                        msg(&topic, "O", &[&format!("order-{order}")], &body),
                        |mqs: &[MessageQueue], _m: &Message, id: &i32| {
                            mqs.get(*id as usize % mqs.len()).cloned()
                        },
                        order,
                        5_000,
                    ),
                )
                .await,
                &body,
            );
            let q = r.message_queue.as_ref().expect("queue").queue_id();
            assert_eq!(q, order % 4, "{body}: selector's queue");
            assert_eq!(*sent_queue.entry(order).or_insert(q), q);
        }
    }

    let inbox = Inbox::new();
    let mut c = consumer_builder(&s.namesrv, &unique("cg"))
        .consume_thread_max(4)
        .build();
    within("subscribe", 10, c.subscribe(&topic, "*"))
        .await
        .expect("subscribe");
    let sink = inbox.clone();
    c.register_message_listener_orderly(
        move |msgs: &[&MessageExt], _ctx: &mut ConsumeOrderlyContext| {
            for m in msgs {
                sink.push(Got::from_ext("orderly", m));
            }
            Ok(ConsumeOrderlyStatus::Success)
        },
    );
    within("orderly consumer start", 30, c.start())
        .await
        .expect("start");
    inbox
        .wait_len("every step of every order", (orders * steps) as usize, WAIT)
        .await;
    let got = inbox.snapshot();
    c.shutdown().await;
    p.shutdown().await;

    assert_eq!(
        got.len(),
        (orders * steps) as usize,
        "no duplicates: {:?}",
        count_bodies(&got)
    );
    for order in 0..orders {
        let seen: Vec<&Got> = got
            .iter()
            .filter(|g| g.body_str().starts_with(&format!("order-{order}-")))
            .collect();
        let want: Vec<String> = (0..steps)
            .map(|st| format!("order-{order}-step-{st}"))
            .collect();
        assert_eq!(
            seen.iter().map(|g| g.body_str()).collect::<Vec<_>>(),
            want,
            "order {order} in send order"
        );
        assert!(
            seen.iter().all(|g| g.queue_id == order % 4),
            "order {order} on one queue"
        );
        assert!(
            seen.windows(2)
                .all(|w| w[0].queue_offset < w[1].queue_offset),
            "increasing offsets"
        );
    }
    let mut per_queue: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for g in &got {
        per_queue
            .entry(g.queue_id)
            .or_default()
            .push(g.queue_offset);
    }
    for (q, offs) in per_queue {
        assert_eq!(
            offs,
            (0..offs.len() as i64).collect::<Vec<_>>(),
            "queue {q} consumed strictly in offset order"
        );
    }
}

/// `TagA || TagB` receives exactly those tags; `*` receives everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_filters_select_exactly_the_subscribed_tags() {
    let (_d, s) = start(&[]);
    let topic = unique("rmq_tags");
    let queues = create_topic(&s.namesrv, &s.broker, &topic, 4).await;
    let mut p = producer(&s.namesrv).await;
    // all on queue 1, the last one TagB: once a filtered consumer has it, everything before it
    // in the queue was either delivered or filtered
    let plan = [
        "TagC", "TagA", "TagC", "TagB", "TagA", "TagC", "TagD", "TagB",
    ];
    let mut all = Vec::new();
    for (i, tag) in plan.iter().enumerate() {
        let body = format!("{tag}-{i}");
        ok_result(
            within(
                "send",
                15,
                p.send_to_queue_with_timeout(
                    msg(&topic, tag, &[], &body),
                    queues[1].clone(),
                    5_000,
                ),
            )
            .await,
            &body,
        );
        all.push(body);
    }
    let (ab, star) = (Inbox::new(), Inbox::new());
    let mut c1 = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg_ab")),
        &topic,
        "TagA || TagB",
        &ab,
        "ab",
    )
    .await;
    let mut c2 = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg_all")),
        &topic,
        "*",
        &star,
        "all",
    )
    .await;
    let last = all.last().expect("last").clone();
    ab.wait_for("the last TagB", WAIT, |g| {
        g.iter().any(|x| x.body_str() == last)
    })
    .await;
    star.wait_len("all 8", all.len(), WAIT).await;
    let (g_ab, g_star) = (ab.snapshot(), star.snapshot());
    c1.shutdown().await;
    c2.shutdown().await;
    p.shutdown().await;

    let want_ab: Vec<String> = all
        .iter()
        .filter(|b| b.starts_with("TagA") || b.starts_with("TagB"))
        .cloned()
        .collect();
    assert_eq!(g_ab.iter().map(Got::body_str).collect::<Vec<_>>(), want_ab);
    assert!(g_ab
        .iter()
        .all(|g| matches!(g.tags.as_deref(), Some("TagA" | "TagB"))));
    assert_eq!(
        g_star.iter().map(Got::body_str).collect::<Vec<_>>(),
        all,
        "`*` gets all, in queue order"
    );
}

// ---------------------------------------------------------------------------
// delay, retry, DLQ
// ---------------------------------------------------------------------------

/// Delay level 2 (5 s): delivered no earlier than 5 s after the send, and within 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_level_2_is_delivered_after_five_seconds() {
    let (_d, s) = start(&[]);
    let topic = unique("rmq_delay");
    create_topic(&s.namesrv, &s.broker, &topic, 4).await;
    let inbox = Inbox::new();
    let mut c = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg")),
        &topic,
        "*",
        &inbox,
        "c",
    )
    .await;
    let mut p = producer(&s.namesrv).await;
    // an undelayed message first proves the consumer is live
    ok_result(
        within(
            "send",
            15,
            p.send_with_timeout(msg(&topic, "Now", &[], "now"), 5_000),
        )
        .await,
        "now",
    );
    inbox.wait_len("the undelayed message", 1, WAIT).await;

    let sent_at = now_ms();
    let m = Message::builder()
        .topic(topic.as_str())
        .tags("Later")
        .body_slice(b"later")
        .delay_level(2)
        .build_unchecked();
    let r = ok_result(
        within("delayed send", 15, p.send_with_timeout(m, 5_000)).await,
        "later",
    );
    inbox
        .wait_len("the delayed message", 2, Duration::from_secs(30))
        .await;
    let g = inbox.snapshot()[1].clone();
    c.shutdown().await;
    p.shutdown().await;

    assert_eq!(g.body_str(), "later");
    assert_eq!(g.topic, topic, "delivered on the real topic");
    assert_eq!(g.tags.as_deref(), Some("Later"));
    assert_eq!(
        g.properties.get("UNIQ_KEY"),
        r.msg_id.as_ref().map(|x| x.to_string()).as_ref()
    );
    let waited = g.at_ms - sent_at;
    assert!(
        waited >= 5_000,
        "delivered {waited} ms after send, before delay level 2 (5 s)"
    );
    assert!(waited <= 30_000, "delivered {waited} ms after send");
    assert_eq!(inbox.len(), 2, "delivered once");
}

/// RECONSUME_LATER: the message comes back with reconsumeTimes 1 (delay level 3 = 10 s later),
/// and with maxReconsumeTimes = 1 the second failure sends it to %DLQ%<group>, where a query by
/// key finds it with its body, original topic, origin id and reconsume count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconsume_later_retries_then_dead_letters() {
    let (_d, s) = start(&[]);
    let topic = unique("rmq_retry");
    create_topic(&s.namesrv, &s.broker, &topic, 4).await;
    let group = unique("cg");
    let key = unique("dlqkey");
    let inbox = Inbox::new();
    let mut c = consumer_builder(&s.namesrv, &group)
        .max_reconsume_times(1)
        .build();
    within("subscribe", 10, c.subscribe(&topic, "*"))
        .await
        .expect("subscribe");
    let sink = inbox.clone();
    c.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
            for m in msgs {
                sink.push(Got::from_ext("c", m));
            }
            Ok(ConsumeConcurrentlyStatus::ReconsumeLater)
        },
    );
    within("consumer start", 30, c.start())
        .await
        .expect("start");
    let mut p = producer(&s.namesrv).await;
    let r = ok_result(
        within(
            "send",
            15,
            p.send_with_timeout(msg(&topic, "R", &[&key], "fail me"), 5_000),
        )
        .await,
        "send",
    );
    let uniq = r.msg_id.as_ref().expect("msg id").to_string();
    inbox
        .wait_len(
            "first delivery and one redelivery",
            2,
            Duration::from_secs(45),
        )
        .await;

    // the DLQ is write-only for consumers (perm 2, as in RocketMQ); look it up by key
    let dlq = format!("%DLQ%{group}");
    let found = query_until(&mut p, &dlq, &key, 1).await.message_list()[0].clone();
    let got = inbox.snapshot();
    c.shutdown().await;
    p.shutdown().await;

    assert_eq!(got.len(), 2, "delivered twice, then dead-lettered: {got:?}");
    assert!(
        got.iter()
            .all(|g| g.body_str() == "fail me" && g.topic == topic),
        "retries are shown on the original topic"
    );
    assert_eq!(
        got.iter().map(|g| g.reconsume_times).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(
        got[1].properties.get("UNIQ_KEY"),
        Some(&uniq),
        "same message"
    );
    let gap = got[1].at_ms - got[0].at_ms;
    assert!(
        gap >= 9_900,
        "first retry after delay level 3 (10 s), got {gap} ms"
    );

    assert_eq!(found.body().as_deref(), Some(&b"fail me"[..]));
    assert_eq!(found.topic().as_str(), dlq);
    assert_eq!(
        MessageTrait::property(&found, &CheetahString::from("RETRY_TOPIC")).map(|v| v.to_string()),
        Some(topic.clone()),
        "DLQ message remembers its original topic"
    );
    assert_eq!(
        found.reconsume_times(),
        2,
        "reconsumeTimes of the message sent back (1) + 1"
    );
    assert_eq!(
        MessageTrait::property(&found, &CheetahString::from("ORIGIN_MESSAGE_ID"))
            .map(|v| v.to_string()),
        r.offset_msg_id.clone(),
        "ORIGIN_MESSAGE_ID is the original message's offset msg id"
    );
    assert_eq!(
        MessageTrait::get_keys(&found).map(|k| k.to_string()),
        Some(key)
    );
}

// ---------------------------------------------------------------------------
// transactions
// ---------------------------------------------------------------------------

#[derive(Clone, Default)]
struct TxListener {
    executed: Arc<Mutex<Vec<String>>>,
    checked: Arc<Mutex<Vec<String>>>,
}

fn body_of(m: &dyn MessageTrait) -> String {
    m.get_body()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

impl TransactionListener for TxListener {
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        _arg: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        let b = body_of(msg);
        self.executed.lock().expect("lock").push(b.clone());
        match b.as_str() {
            "tx-commit" => LocalTransactionState::CommitMessage,
            "tx-rollback" => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::Unknown,
        }
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let b = msg
            .body()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        self.checked.lock().expect("lock").push(b.clone());
        match b.as_str() {
            "tx-unknown-then-commit" => LocalTransactionState::CommitMessage,
            "tx-unknown-then-rollback" => LocalTransactionState::RollbackMessage,
            // a committed or rolled-back transaction is never checked; answer so it shows
            "tx-commit" => LocalTransactionState::CommitMessage,
            _ => LocalTransactionState::RollbackMessage,
        }
    }
}

/// Commit is delivered, rollback is not; UNKNOWN is resolved by the broker's check-back (the
/// listener's check is called for exactly the two unknown ones) and then delivered or dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_rollback_and_check_back() {
    // the gateway's equivalents of transactionCheckInterval / transactionTimeOut, shortened
    let (_d, s) = start(&[
        "rocketmq.transaction.check.interval.ms=1000",
        "rocketmq.transaction.timeout.ms=2000",
    ]);
    let topic = unique("rmq_tx");
    let queues = create_topic(&s.namesrv, &s.broker, &topic, 4).await;
    let inbox = Inbox::new();
    let mut c = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg")),
        &topic,
        "*",
        &inbox,
        "c",
    )
    .await;

    let listener = TxListener::default();
    let mut tp = TransactionMQProducer::builder(client_runtime("txproducer"))
        .client_config(client_config(&s.namesrv))
        .producer_group(unique("txpg"))
        .send_msg_timeout(5_000)
        .transaction_listener(listener.clone())
        .build();
    within("tx producer start", 30, tp.start())
        .await
        .expect("tx producer start");

    let mut states = Vec::new();
    for body in [
        "tx-commit",
        "tx-rollback",
        "tx-unknown-then-commit",
        "tx-unknown-then-rollback",
    ] {
        let r = within(
            "send_message_in_transaction",
            20,
            tp.send_message_in_transaction(msg(&topic, "Tx", &[body], body), Some(())),
        )
        .await
        .unwrap_or_else(|e| panic!("{body}: {e}"));
        let sr = r.send_result.clone().expect("half message SendResult");
        assert_eq!(
            sr.send_status,
            SendStatus::SendOk,
            "{body}: half message stored"
        );
        states.push((body, r.local_transaction_state));
    }
    assert_eq!(
        states,
        vec![
            ("tx-commit", Some(LocalTransactionState::CommitMessage)),
            ("tx-rollback", Some(LocalTransactionState::RollbackMessage)),
            (
                "tx-unknown-then-commit",
                Some(LocalTransactionState::Unknown)
            ),
            (
                "tx-unknown-then-rollback",
                Some(LocalTransactionState::Unknown)
            ),
        ]
    );
    inbox
        .wait_for("the committed message", WAIT, |g| {
            g.iter().any(|x| x.body_str() == "tx-commit")
        })
        .await;

    // the broker checks back the two unknown ones (after transactionTimeOut, every
    // transactionCheckInterval; shortened above, but allow a full default interval)
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let checked: BTreeSet<String> = listener
            .checked
            .lock()
            .expect("lock")
            .iter()
            .cloned()
            .collect();
        if checked.contains("tx-unknown-then-commit")
            && checked.contains("tx-unknown-then-rollback")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker never checked back both unknown transactions; checked: {checked:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    inbox
        .wait_for("the checked-back commit", WAIT, |g| {
            g.iter().any(|x| x.body_str() == "tx-unknown-then-commit")
        })
        .await;

    // a normal marker behind every queue: once all are consumed, anything the broker had
    // released before them has been consumed too (one consume thread, queue order)
    let mut p = producer(&s.namesrv).await;
    for q in &queues {
        let b = format!("marker-{}", q.queue_id());
        ok_result(
            within(
                "marker",
                15,
                p.send_to_queue_with_timeout(msg(&topic, "M", &[], &b), q.clone(), 5_000),
            )
            .await,
            &b,
        );
    }
    inbox
        .wait_for("all markers", WAIT, |g| {
            (0..4).all(|i| g.iter().any(|x| x.body_str() == format!("marker-{i}")))
        })
        .await;
    let got = inbox.snapshot();
    let checked: BTreeSet<String> = listener
        .checked
        .lock()
        .expect("lock")
        .iter()
        .cloned()
        .collect();
    c.shutdown().await;
    tp.shutdown().await;
    p.shutdown().await;

    let tx: Vec<String> = got
        .iter()
        .map(Got::body_str)
        .filter(|b| b.starts_with("tx-"))
        .collect();
    assert_eq!(
        count_bodies(
            &got.iter()
                .filter(|g| g.body_str().starts_with("tx-"))
                .cloned()
                .collect::<Vec<_>>()
        ),
        exactly_once(&[
            "tx-commit".to_string(),
            "tx-unknown-then-commit".to_string()
        ]),
        "delivered transactional messages: {tx:?}"
    );
    assert_eq!(
        checked,
        ["tx-unknown-then-commit", "tx-unknown-then-rollback"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "only UNKNOWN transactions are checked back"
    );
    for g in got.iter().filter(|g| g.body_str().starts_with("tx-")) {
        assert_eq!(
            g.topic, topic,
            "delivered on the real topic, not RMQ_SYS_TRANS_HALF_TOPIC"
        );
        assert_eq!(g.tags.as_deref(), Some("Tx"));
        assert!(g.properties.contains_key("UNIQ_KEY"));
    }
}

// ---------------------------------------------------------------------------
// query and view
// ---------------------------------------------------------------------------

/// queryMessage by key returns exactly the messages with that key; viewMessage by the offset
/// message id and by the unique message id returns the message at its queue and offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_by_key_and_view_by_id() {
    let (_d, s) = start(&[]);
    let topic = unique("rmq_query");
    let mut p = producer(&s.namesrv).await;
    let key = unique("qkey");
    let mut results = Vec::new();
    for i in 0..3 {
        let body = format!("q-{i}");
        let keys: Vec<&str> = if i == 1 {
            vec!["other-key"]
        } else {
            vec!["first", key.as_str()]
        };
        results.push((
            body.clone(),
            ok_result(
                within(
                    "send",
                    15,
                    p.send_with_timeout(msg(&topic, "Q", &keys, &body), 5_000),
                )
                .await,
                &body,
            ),
        ));
    }
    let q = query_until(&mut p, &topic, &key, 2).await;
    let mut bodies: Vec<String> = q
        .message_list()
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body().unwrap_or_default()).into_owned())
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec!["q-0".to_string(), "q-2".to_string()],
        "exactly the messages keyed {key}"
    );

    for (body, r) in &results {
        let mq = r.message_queue.as_ref().expect("queue");
        let off_id = r.offset_msg_id.clone().expect("offset msg id");
        let v = within(
            "view_message by offset id",
            15,
            p.view_message(&topic, &off_id),
        )
        .await
        .unwrap_or_else(|e| panic!("VIEW_MESSAGE_BY_ID {off_id}: {e}"));
        assert_eq!(v.body().as_deref(), Some(body.as_bytes()));
        assert_eq!(
            (v.queue_id(), v.queue_offset()),
            (mq.queue_id(), r.queue_offset as i64)
        );
        assert_eq!(v.topic().as_str(), topic);
        assert_eq!(
            MessageTrait::tags(&v).map(|t| t.to_string()).as_deref(),
            Some("Q")
        );

        let uniq = r.msg_id.as_ref().expect("msg id").to_string();
        let v2 = within(
            "view_message by unique id",
            15,
            p.view_message(&topic, &uniq),
        )
        .await
        .unwrap_or_else(|e| panic!("view by unique id {uniq} (query by UNIQ_KEY): {e}"));
        assert_eq!(v2.body().as_deref(), Some(body.as_bytes()));
    }
    p.shutdown().await;
}

// ---------------------------------------------------------------------------
// offsets across restarts
// ---------------------------------------------------------------------------

/// Polls queryMessage(topic, key) until it returns at least `min` messages.
async fn query_until(p: &mut DefaultMQProducer, topic: &str, key: &str, min: usize) -> QueryResult {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = within(
            "query_message",
            15,
            p.query_message(topic, key, 32, 0, now_ms() + 60_000),
        )
        .await;
        match r {
            Ok(q) if q.message_list().len() >= min => return q,
            other => {
                if Instant::now() >= deadline {
                    panic!(
                        "QUERY_MESSAGE {topic} key {key}: never {min} message(s): {:?}",
                        other.map(|q| q.message_list().len())
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A new consumer instance of the same group resumes exactly after what the previous one
/// consumed: it gets only the messages sent after, each once. The broker's stored offsets
/// (QUERY_CONSUMER_OFFSET) are the queue ends after the first consumer shut down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_survive_consumer_restart() {
    let (_d, s) = start(&[]);
    let topic = unique("rmq_off");
    create_topic(&s.namesrv, &s.broker, &topic, 4).await;
    let group = unique("cg");
    let mut p = producer(&s.namesrv).await;
    let first: Vec<String> = (0..10).map(|i| format!("a-{i}")).collect();
    send_bodies(&p, &topic, &first).await;
    let in1 = Inbox::new();
    let mut c1 = start_consumer(
        consumer_builder(&s.namesrv, &group),
        &topic,
        "*",
        &in1,
        "c1",
    )
    .await;
    in1.wait_len("first 10", 10, WAIT).await;
    c1.shutdown().await; // persists offsets
    assert_eq!(count_bodies(&in1.snapshot()), exactly_once(&first));

    // QUERY_CONSUMER_OFFSET per queue (a pull consumer of the group asks the broker): each
    // committed offset is the end of its queue, and together they count the 10 consumed
    #[allow(deprecated)]
    {
        let pc = rocketmq_client_rust::DefaultMQPullConsumer::builder(client_runtime("pull"))
            .name_server_addr(s.namesrv.clone())
            .consumer_group(group.clone())
            .build()
            .expect("pull consumer");
        within("pull consumer start", 30, pc.start())
            .await
            .expect("pull consumer start");
        let mut qs = within(
            "fetch_subscribe_message_queues",
            15,
            pc.fetch_subscribe_message_queues(&topic),
        )
        .await
        .expect("queues");
        qs.sort_by_key(MessageQueue::queue_id);
        assert_eq!(qs.len(), 4);
        let mut total = 0;
        for q in &qs {
            let committed = within("fetch_consume_offset", 15, pc.fetch_consume_offset(q, true))
                .await
                .unwrap_or_else(|e| panic!("QUERY_CONSUMER_OFFSET {q:?}: {e}"));
            let max = within("max_offset", 15, pc.max_offset(q))
                .await
                .expect("GET_MAX_OFFSET");
            assert_eq!(committed, max, "{q:?}: committed offset is the queue end");
            total += committed;
        }
        assert_eq!(total, 10, "committed offsets add up to the 10 consumed");
        within("pull consumer shutdown", 30, pc.shutdown())
            .await
            .expect("shutdown");
    }

    let second: Vec<String> = (0..5).map(|i| format!("b-{i}")).collect();
    send_bodies(&p, &topic, &second).await;
    let in2 = Inbox::new();
    let mut c2 = start_consumer(
        consumer_builder(&s.namesrv, &group),
        &topic,
        "*",
        &in2,
        "c2",
    )
    .await;
    in2.wait_len("the 5 new ones", 5, WAIT).await;
    // one more behind them on every queue: anything re-delivered would come before it
    let queues = publish_queues(&mut p, &topic, 4).await;
    for q in &queues {
        let b = format!("end-{}", q.queue_id());
        ok_result(
            within(
                "end marker",
                15,
                p.send_to_queue_with_timeout(msg(&topic, "T", &[], &b), q.clone(), 5_000),
            )
            .await,
            &b,
        );
    }
    in2.wait_len("the end markers", 9, WAIT).await;
    let got = in2.snapshot();
    c2.shutdown().await;
    p.shutdown().await;
    let mut expected = second.clone();
    expected.extend((0..4).map(|i| format!("end-{i}")));
    assert_eq!(
        count_bodies(&got),
        exactly_once(&expected),
        "resumed exactly after the committed offsets"
    );
}

/// Offsets and messages survive `kill -9` of the server: after a restart (new ports), a new
/// consumer of the group gets exactly the messages sent after its last consumed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_survive_server_kill9_restart() {
    let (_d, mut s) = start(&[]);
    let topic = unique("rmq_restart");
    create_topic(&s.namesrv, &s.broker, &topic, 4).await;
    let group = unique("cg");
    let mut p = producer(&s.namesrv).await;
    let first: Vec<String> = (0..8).map(|i| format!("before-{i}")).collect();
    send_bodies(&p, &topic, &first).await;
    let in1 = Inbox::new();
    let mut c1 = start_consumer(
        consumer_builder(&s.namesrv, &group),
        &topic,
        "*",
        &in1,
        "c1",
    )
    .await;
    in1.wait_len("first 8", 8, WAIT).await;
    c1.shutdown().await;
    p.shutdown().await;

    let old_ns = s.namesrv.clone();
    s.restart();
    assert_ne!(s.namesrv, old_ns, "restart picks new ports");

    let mut p = producer(&s.namesrv).await;
    let second: Vec<String> = (0..6).map(|i| format!("after-{i}")).collect();
    send_bodies(&p, &topic, &second).await;
    let in2 = Inbox::new();
    let mut c2 = start_consumer(
        consumer_builder(&s.namesrv, &group),
        &topic,
        "*",
        &in2,
        "c2",
    )
    .await;
    in2.wait_len("the 6 sent after the restart", 6, WAIT).await;
    let queues = publish_queues(&mut p, &topic, 4).await;
    for q in &queues {
        let b = format!("end-{}", q.queue_id());
        ok_result(
            within(
                "end marker",
                15,
                p.send_to_queue_with_timeout(msg(&topic, "T", &[], &b), q.clone(), 5_000),
            )
            .await,
            &b,
        );
    }
    in2.wait_len("the end markers", 10, WAIT).await;
    let got = in2.snapshot();
    c2.shutdown().await;

    // the pre-restart messages are still stored: a new group reads all 8 + 6 + 4
    let in3 = Inbox::new();
    let mut c3 = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg_fresh")),
        &topic,
        "*",
        &in3,
        "c3",
    )
    .await;
    in3.wait_len("everything", 18, WAIT).await;
    let all = in3.snapshot();
    c3.shutdown().await;
    p.shutdown().await;

    let mut expected = second.clone();
    expected.extend((0..4).map(|i| format!("end-{i}")));
    assert_eq!(
        count_bodies(&got),
        exactly_once(&expected),
        "resumed exactly after the pre-restart offsets"
    );
    let mut everything = first.clone();
    everything.extend(expected);
    assert_eq!(count_bodies(&all), exactly_once(&everything));
}

// ---------------------------------------------------------------------------
// admin (mqadmin-like)
// ---------------------------------------------------------------------------

/// clusterList shows broker-1 in DefaultCluster at the broker address; updateTopic with 6
/// queues gives a route with 6 read / 6 write queues on broker-1, the topic list has it, and
/// Kafka sees 6 partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cluster_list_update_topic_and_route() {
    let (_d, s) = start(&[]);
    let a = admin(&s.namesrv).await;
    let ci = within(
        "examine_broker_cluster_info",
        15,
        a.examine_broker_cluster_info(),
    )
    .await
    .expect("GET_BROKER_CLUSTER_INFO");
    let clusters = ci.cluster_addr_table.clone().expect("clusterAddrTable");
    let names: BTreeSet<String> = clusters
        .get(&CheetahString::from(CLUSTER))
        .unwrap_or_else(|| panic!("no {CLUSTER}: {clusters:?}"))
        .iter()
        .map(|b| b.to_string())
        .collect();
    assert_eq!(names, BTreeSet::from([BROKER_NAME.to_string()]));
    let brokers = ci.broker_addr_table.clone().expect("brokerAddrTable");
    let bd = brokers
        .get(&CheetahString::from(BROKER_NAME))
        .expect("broker-1 data");
    assert_eq!(bd.cluster(), CLUSTER);
    assert_eq!(
        bd.broker_addrs().get(&0).map(|a| a.to_string()),
        Some(s.broker.clone()),
        "master (id 0) address"
    );

    let topic = unique("rmq_admin");
    within(
        "create_and_update_topic_config",
        15,
        a.create_and_update_topic_config(
            s.broker.as_str().into(),
            TopicConfig::with_queues(topic.clone(), 6, 6),
        ),
    )
    .await
    .expect("UPDATE_AND_CREATE_TOPIC");
    let route = rocketmq_common::eventually("topic route", Duration::from_secs(20), || {
        let fut = a.examine_topic_route_info(topic.as_str().into());
        async move {
            match within("examine_topic_route_info", 15, fut).await {
                Ok(Some(r)) if !r.queue_datas.is_empty() => Ok(Some(r)),
                Ok(_) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    assert_eq!(route.queue_datas.len(), 1, "{route:?}");
    let qd = &route.queue_datas[0];
    assert_eq!(qd.broker_name().as_str(), BROKER_NAME);
    assert_eq!((qd.read_queue_nums(), qd.write_queue_nums()), (6, 6));
    assert_eq!(qd.perm(), 6, "PERM_READ | PERM_WRITE");
    assert_eq!(route.broker_datas.len(), 1);
    assert_eq!(route.broker_datas[0].broker_name().as_str(), BROKER_NAME);
    assert_eq!(
        route.broker_datas[0]
            .broker_addrs()
            .get(&0)
            .map(|a| a.to_string()),
        Some(s.broker.clone())
    );

    let list = within("fetch_all_topic_list", 15, a.fetch_all_topic_list())
        .await
        .expect("GET_ALL_TOPIC_LIST_FROM_NAMESERVER");
    assert!(
        list.topic_list.iter().any(|t| t.as_str() == topic),
        "topic list has {topic}"
    );

    // unknown topic: TOPIC_NOT_EXIST (17) from the name server
    let missing = within(
        "route of a missing topic",
        15,
        a.examine_topic_route_info(unique("nope").as_str().into()),
    )
    .await;
    match missing {
        Ok(None) => {}
        Ok(Some(r)) => panic!("route for a topic that does not exist: {r:?}"),
        Err(e) => assert!(
            e.to_string().contains("17") || e.to_string().to_lowercase().contains("topic"),
            "{e}"
        ),
    }
    let mut a = a;
    a.shutdown().await;

    let md = tokio::task::spawn_blocking({
        let b = s.kafka.clone();
        let t = topic.clone();
        move || {
            let c: BaseConsumer = kafka_config(&b, &[("group.id", "md")])
                .create()
                .expect("consumer");
            c.fetch_metadata(Some(&t), Duration::from_secs(10))
                .expect("metadata")
                .topics()[0]
                .partitions()
                .len()
        }
    })
    .await
    .expect("join");
    assert_eq!(md, 6, "6 queues = 6 Kafka partitions");
}

// ---------------------------------------------------------------------------
// malformed frames
// ---------------------------------------------------------------------------

/// Sends bytes on a fresh connection, half-closes, and reads until the server closes (or 5 s).
/// Returns what the server sent and whether it closed.
fn poke(addr: &str, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

/// Like `poke` but keeps the write side open: the server must close on its own.
fn poke_open(addr: &str, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn frame(header_json: &str, body: &[u8]) -> Vec<u8> {
    let h = header_json.as_bytes();
    let mut f = Vec::new();
    f.extend_from_slice(&((4 + h.len() + body.len()) as u32).to_be_bytes());
    f.extend_from_slice(&(h.len() as u32).to_be_bytes()); // serialize type 0 = JSON
    f.extend_from_slice(h);
    f.extend_from_slice(body);
    f
}

/// Parses response frames: (code, opaque, flag) of each.
fn parse_frames(mut b: &[u8]) -> Vec<(i64, i64, i64)> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if b.len() < 4 + len {
            break;
        }
        let hl = (u32::from_be_bytes([b[4], b[5], b[6], b[7]]) & 0x00ff_ffff) as usize;
        let h: serde_json::Value =
            serde_json::from_slice(&b[8..8 + hl]).expect("response header JSON");
        out.push((
            h["code"].as_i64().unwrap_or(-1),
            h["opaque"].as_i64().unwrap_or(-1),
            h["flag"].as_i64().unwrap_or(-1),
        ));
        b = &b[4 + len..];
    }
    out
}

/// Garbage, a 0x7fffffff length prefix, a truncated header, a header length past the frame and
/// an unparsable header, on both the name-server and broker ports: each connection is closed,
/// the process keeps running, a well-formed request on a new connection gets its exact answer,
/// and a real client still sends and consumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_leave_server_serving() {
    let (_d, mut s) = start(&[]);
    for (port_name, addr) in [("namesrv", s.namesrv.clone()), ("broker", s.broker.clone())] {
        let (_, closed) = poke(
            &addr,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01garbage\xff\xfe",
        );
        assert!(
            closed,
            "{port_name}: HTTP garbage (length prefix 0x47455420) closes the connection"
        );
        // huge length prefix, server must not wait for 2 GiB nor allocate it
        let mut huge = 0x7fff_ffffu32.to_be_bytes().to_vec();
        huge.extend_from_slice(&[0, 0, 0, 10]);
        huge.extend_from_slice(b"{\"code\":10");
        assert!(
            poke_open(&addr, &huge),
            "{port_name}: 0x7fffffff length prefix closes the connection within 5 s"
        );
        // truncated header: frame says 200 bytes, header length 150, then EOF after 20
        let mut trunc = 200u32.to_be_bytes().to_vec();
        trunc.extend_from_slice(&150u32.to_be_bytes());
        trunc.extend_from_slice(b"{\"code\":105,\"opaque\"");
        let (_, closed) = poke(&addr, &trunc);
        assert!(closed, "{port_name}: truncated frame closes the connection");
        // header length larger than the frame
        let mut over = 12u32.to_be_bytes().to_vec();
        over.extend_from_slice(&1000u32.to_be_bytes());
        over.extend_from_slice(b"{\"a\":1}\0");
        assert!(
            poke_open(&addr, &over),
            "{port_name}: header length beyond the frame closes the connection"
        );
        // complete frame, invalid JSON header
        let (_, closed) = poke(&addr, &frame("{not json", b""));
        assert!(
            closed,
            "{port_name}: unparsable header closes the connection"
        );
        // zero-length frame and a negative header length
        let mut neg = 8u32.to_be_bytes().to_vec();
        neg.extend_from_slice(&0x00ff_ffffu32.to_be_bytes());
        neg.extend_from_slice(&[0, 0, 0, 0]);
        let (_, closed) = poke(&addr, &neg);
        assert!(
            closed,
            "{port_name}: impossible header length closes the connection"
        );
        assert!(s.is_running(), "{port_name}: the server process survived");
    }

    // well-formed GET_ROUTEINFO_BY_TOPIC for a missing topic: TOPIC_NOT_EXIST (17), same opaque
    let req = frame(
        r#"{"code":105,"extFields":{"topic":"no_such_topic_xyz"},"flag":0,"language":"JAVA","opaque":4242,"serializeTypeCurrentRPC":"JSON","version":401}"#,
        b"",
    );
    let (resp, _) = poke(&s.namesrv, &req);
    let frames = parse_frames(&resp);
    assert_eq!(frames.len(), 1, "one response frame: {resp:?}");
    assert_eq!(frames[0].0, 17, "TOPIC_NOT_EXIST");
    assert_eq!(frames[0].1, 4242, "opaque echoed");
    assert_eq!(frames[0].2 & 1, 1, "response flag bit");

    // an unknown request code on the broker: REQUEST_CODE_NOT_SUPPORTED (3)
    let req = frame(
        r#"{"code":99999,"extFields":{},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":401}"#,
        b"",
    );
    let (resp, _) = poke(&s.broker, &req);
    let frames = parse_frames(&resp);
    assert_eq!(frames.len(), 1, "one response frame: {resp:?}");
    assert_eq!(
        (frames[0].0, frames[0].1),
        (3, 7),
        "REQUEST_CODE_NOT_SUPPORTED with the opaque"
    );

    // a real client still works
    let topic = unique("rmq_after_garbage");
    let mut p = producer(&s.namesrv).await;
    ok_result(
        within(
            "send",
            15,
            p.send_with_timeout(msg(&topic, "G", &[], "still alive"), 5_000),
        )
        .await,
        "send",
    );
    let inbox = Inbox::new();
    let mut c = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg")),
        &topic,
        "*",
        &inbox,
        "c",
    )
    .await;
    inbox.wait_len("the message", 1, WAIT).await;
    assert_eq!(inbox.bodies(), vec!["still alive".to_string()]);
    c.shutdown().await;
    p.shutdown().await;
    assert!(s.is_running());
}

/// Delayed messages are kept in the log: a level-3 (10 s) message and one with an absolute
/// `__STARTDELIVERTIME` 6 s ahead, both acknowledged, then the server is SIGKILLed at once.
/// After the restart each is delivered exactly once, and no earlier than it was due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_survive_a_kill9_restart() {
    let (_d, mut s) = start(&[]);
    let topic = unique("rmq_delay_restart");
    create_topic(&s.namesrv, &s.broker, &topic, 4).await;
    let mut p = producer(&s.namesrv).await;
    let sent_at = now_ms();
    let level3 = Message::builder()
        .topic(topic.as_str())
        .tags("L3")
        .body_slice(b"level-3")
        .delay_level(3)
        .build_unchecked();
    ok_result(
        within("level-3 send", 15, p.send_with_timeout(level3, 5_000)).await,
        "level-3",
    );
    let due = (sent_at + 6_000).to_string();
    let absolute = msg_with_props(
        &topic,
        "Abs",
        &[],
        "absolute",
        &[("__STARTDELIVERTIME", &due)],
    );
    ok_result(
        within("absolute send", 15, p.send_with_timeout(absolute, 5_000)).await,
        "absolute",
    );
    p.shutdown().await;
    s.restart();

    let inbox = Inbox::new();
    let mut c = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg")),
        &topic,
        "*",
        &inbox,
        "c",
    )
    .await;
    inbox
        .wait_len("both delayed messages", 2, Duration::from_secs(45))
        .await;
    // Nothing else arrives (each is delivered once).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = inbox.snapshot();
    c.shutdown().await;
    let waited: BTreeMap<String, i64> = got
        .iter()
        .map(|g| (g.body_str().to_string(), g.at_ms as i64 - sent_at as i64))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        waited.keys().cloned().collect::<Vec<_>>(),
        vec!["absolute".to_string(), "level-3".to_string()]
    );
    assert!(
        waited["level-3"] >= 10_000,
        "level 3 after {} ms",
        waited["level-3"]
    );
    assert!(
        waited["absolute"] >= 6_000,
        "absolute after {} ms",
        waited["absolute"]
    );
}

/// A half message whose local transaction is still unknown survives a SIGKILL of the server:
/// after the restart the broker checks it back with a new producer of the same group, and the
/// committed message is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolved_transaction_survives_a_kill9_restart() {
    let sets = [
        "rocketmq.transaction.check.interval.ms=1000",
        "rocketmq.transaction.timeout.ms=3000",
    ];
    let (_d, mut s) = start(&sets);
    let topic = unique("rmq_tx_restart");
    create_topic(&s.namesrv, &s.broker, &topic, 4).await;
    let group = unique("txpg");
    let tx_producer = |namesrv: &str, listener: TxListener| {
        TransactionMQProducer::builder(client_runtime("txproducer"))
            .client_config(client_config(namesrv))
            .producer_group(group.clone())
            .send_msg_timeout(5_000)
            .transaction_listener(listener)
            .build()
    };
    let before = TxListener::default();
    let mut tp = tx_producer(&s.namesrv, before.clone());
    within("tx producer start", 30, tp.start())
        .await
        .expect("tx producer start");
    let body = "tx-unknown-then-commit";
    within(
        "send_message_in_transaction",
        20,
        tp.send_message_in_transaction(msg(&topic, "Tx", &[body], body), Some(())),
    )
    .await
    .expect("half message sent");
    // Killed well inside the 3 s transaction timeout: nobody was asked yet.
    s.restart();
    tp.shutdown().await;
    assert!(before.checked.lock().expect("lock").is_empty());

    // The producer application comes back and produces again; only a producer that has
    // published knows the broker and heartbeats to it, so only then can it be checked back
    // (the same holds with Apache RocketMQ).
    let after = TxListener::default();
    let mut tp = tx_producer(&s.namesrv, after.clone());
    within("tx producer start", 30, tp.start())
        .await
        .expect("tx producer start");
    within(
        "second transaction",
        20,
        tp.send_message_in_transaction(msg(&topic, "Tx", &["tx-commit"], "tx-commit"), Some(())),
    )
    .await
    .expect("second transaction sent");
    let inbox = Inbox::new();
    let mut c = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg")),
        &topic,
        "*",
        &inbox,
        "c",
    )
    .await;
    inbox
        .wait_len("both committed messages", 2, Duration::from_secs(45))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = inbox.snapshot();
    c.shutdown().await;
    tp.shutdown().await;
    let mut bodies: Vec<String> = got.iter().map(|g| g.body_str().to_string()).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec!["tx-commit".to_string(), body.to_string()],
        "{got:?}"
    );
    assert_eq!(
        after.checked.lock().expect("lock").as_slice(),
        [body.to_string()]
    );
}

/// The name server's KV config through the admin client: put, get, survive a SIGKILL of the
/// server, delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_config_is_kept_across_a_kill9_restart() {
    let (_d, mut s) = start(&[]);
    let a = admin(&s.namesrv).await;
    let ns = CheetahString::from("ORDER_TOPIC_CONFIG");
    let key = CheetahString::from(unique("kv").as_str());
    a.put_kv_config(ns.clone(), key.clone(), CheetahString::from("broker-1:4"))
        .await;
    let got = within("get kv", 15, a.get_kv_config(ns.clone(), key.clone()))
        .await
        .expect("kv present");
    assert_eq!(got.as_str(), "broker-1:4");
    s.restart();
    let a = admin(&s.namesrv).await;
    let got = within(
        "get kv after restart",
        15,
        a.get_kv_config(ns.clone(), key.clone()),
    )
    .await
    .expect("kv kept");
    assert_eq!(got.as_str(), "broker-1:4");
    within("delete kv", 15, a.delete_kv_config(ns.clone(), key.clone()))
        .await
        .expect("delete kv");
    // The client answers a missing key (QUERY_NOT_FOUND) with an empty value.
    let gone = within("get deleted kv", 15, a.get_kv_config(ns, key)).await;
    assert!(
        gone.as_ref().map(|v| v.is_empty()).unwrap_or(true),
        "{gone:?}"
    );
}

/// A Kafka consumer group and a RocketMQ consumer group on the same topic each receive every
/// message exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_group_and_rocketmq_group_each_receive_everything() {
    let (_d, s) = start(&[]);
    let topic = unique("rmq_two_groups");
    create_topic(&s.namesrv, &s.broker, &topic, 4).await;
    let inbox = Inbox::new();
    let mut c = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg")),
        &topic,
        "*",
        &inbox,
        "rmq",
    )
    .await;
    let kc: BaseConsumer = kafka_config(
        &s.kafka,
        &[
            ("group.id", &unique("kg")),
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "true"),
        ],
    )
    .create()
    .expect("kafka consumer");
    kc.subscribe(&[topic.as_str()]).expect("subscribe");
    let p = producer(&s.namesrv).await;
    let bodies: Vec<String> = (0..40).map(|i| format!("both-{i}")).collect();
    send_bodies(&p, &topic, &bodies).await;
    let mut kafka_got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while kafka_got.len() < bodies.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = kc.poll(Duration::from_millis(200)) {
            kafka_got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    inbox.wait_len("every message", bodies.len(), WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        kc.poll(Duration::from_millis(500)).is_none(),
        "Kafka group got extra messages"
    );
    let got = inbox.snapshot();
    c.shutdown().await;
    assert_eq!(count_bodies(&got), exactly_once(&bodies));
    kafka_got.sort();
    let mut want = bodies.clone();
    want.sort();
    assert_eq!(kafka_got, want);
}

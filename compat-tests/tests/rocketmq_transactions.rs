//! Kafka transactions seen from RocketMQ (`rocketmq-client-rust`): a push consumer gets only
//! committed records, never those of an aborted or still-open Kafka transaction nor the
//! markers, in queue order; QUERY_MESSAGE by key finds committed records only.

#![recursion_limit = "256"]

mod rocketmq_common;

use std::time::Duration;

use rocketmq_client_rust::DefaultMQProducer;

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rocketmq_common::{
    consumer_builder, create_topic, now_ms, producer, send_bodies, start, start_consumer, unique,
    within, Inbox,
};

const WAIT: Duration = Duration::from_secs(30);

fn txn_producer(bootstrap: &str, id: &str) -> ThreadedProducer<DefaultProducerContext> {
    let p: ThreadedProducer<DefaultProducerContext> = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("linger.ms", "2")
        .create()
        .expect("transactional producer");
    p.init_transactions(WAIT).expect("init_transactions");
    p
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &str, values: &[&str]) {
    for v in values {
        p.send(BaseRecord::to(topic).partition(0).key(key).payload(*v))
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    p.flush(WAIT).expect("flush");
}

/// Messages QUERY_MESSAGE finds for `key` (none: the broker answers not found).
async fn query(p: &mut DefaultMQProducer, topic: &str, key: &str) -> Vec<String> {
    match within(
        "query_message",
        15,
        p.query_message(topic, key, 32, 0, now_ms() + 60_000),
    )
    .await
    {
        Ok(q) => {
            let mut v: Vec<String> = q
                .message_list()
                .iter()
                .map(|m| String::from_utf8_lossy(&m.body().unwrap_or_default()).into_owned())
                .collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rocketmq_consumers_see_only_committed_kafka_transactions() {
    let (_d, s) = start(&[]);
    let topic = unique("rmq_txn");
    create_topic(&s.namesrv, &s.broker, &topic, 1).await;
    let tp = txn_producer(&s.kafka, &unique("tid"));
    tp.begin_transaction().expect("begin");
    send(&tp, &topic, "kc", &["c0", "c1"]);
    tp.commit_transaction(WAIT).expect("commit");
    tp.begin_transaction().expect("begin");
    send(&tp, &topic, "kx", &["x0", "x1"]);
    tp.abort_transaction(WAIT).expect("abort");
    // Left open: o0, then a RocketMQ send after it; neither is consumable until the commit.
    tp.begin_transaction().expect("begin");
    send(&tp, &topic, "ko", &["o0"]);
    let mut rp = producer(&s.namesrv).await;
    send_bodies(&rp, &topic, &["after".to_string()]).await;

    let inbox = Inbox::new();
    let mut c = start_consumer(
        consumer_builder(&s.namesrv, &unique("cg")),
        &topic,
        "*",
        &inbox,
        "c",
    )
    .await;
    inbox.wait_len("the committed c0 c1", 2, WAIT).await;
    assert_eq!(query(&mut rp, &topic, "kc").await, vec!["c0", "c1"]);
    assert!(query(&mut rp, &topic, "kx").await.is_empty(), "aborted");
    assert!(query(&mut rp, &topic, "ko").await.is_empty(), "open");
    assert_eq!(inbox.bodies(), vec!["c0", "c1"]);

    tp.commit_transaction(WAIT).expect("commit");
    inbox.wait_len("o0 and after", 4, WAIT).await;
    assert_eq!(query(&mut rp, &topic, "ko").await, vec!["o0"]);
    // Queue order (one queue, one consume thread): the aborted records and the three markers
    // were never delivered.
    assert_eq!(inbox.bodies(), vec!["c0", "c1", "o0", "after"]);
    let offsets: Vec<i64> = inbox.snapshot().iter().map(|g| g.queue_offset).collect();
    // c0 c1 @0-1, COMMIT @2, x0 x1 @3-4, ABORT @5, o0 @6, after @7, COMMIT @8.
    assert_eq!(offsets, vec![0, 1, 6, 7]);
    c.shutdown().await;
    rp.shutdown().await;
}

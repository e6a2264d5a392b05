//! RocketMQ in a replicated cluster: `rocketmq-client-rust` (a real RocketMQ 4.x client)
//! against three real gateway processes started by `scripts/cluster`, with `rdkafka` reading
//! the same partitions back.
//!
//! Each node is a RocketMQ broker (`broker-<id>`) whose queues are the partitions it prefers.
//! A producer sends synchronously while one broker is SIGKILLed: the dead broker's name comes
//! back in the route at a surviving node's stand-in listener (DLedger-like switchover), every
//! acknowledged message is afterwards at the partition and offset its SendResult named (read
//! with Kafka from the surviving nodes), the producer keeps succeeding, including on the dead
//! broker's queues through the stand-in, and a push consumer receives every acknowledged
//! message, the dead broker's queues included. Run once per replication policy that promises
//! durability (`isr` = sync master, `quorum` = DLedger).

#![recursion_limit = "256"]

mod rocketmq_common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use rocketmq_client_rust::{
    ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQProducer,
    DefaultMQPushConsumer, MQPushConsumer,
};
use rocketmq_common::{client_config, client_runtime, unique, within, Got, Inbox};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendStatus;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;

const NODES: usize = 3;
const PARTITIONS: i32 = 6;

/// A cluster started with `scripts/cluster up`, stopped on drop.
struct Cluster {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bootstrap: String,
    namesrv: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Cluster {
    fn up() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("cluster");
        let status = Command::new(repo_root().join("scripts").join("cluster"))
            .arg("up")
            .arg(NODES.to_string())
            .arg(&root)
            .env("GATEWAY_BIN", rocketmq_common::gateway_bin())
            .status()
            .expect("scripts/cluster runs");
        assert!(status.success(), "scripts/cluster up failed");
        let read = |f: &str| {
            std::fs::read_to_string(root.join(f))
                .unwrap_or_else(|e| panic!("{f}: {e}"))
                .trim()
                .to_string()
        };
        Cluster {
            bootstrap: read("bootstrap"),
            namesrv: read("namesrv"),
            root,
            _dir: dir,
        }
    }

    fn ports(&self, node: usize) -> HashMap<String, String> {
        std::fs::read_to_string(self.root.join(format!("node-{node}.ports")))
            .expect("ports file")
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn kill9(&self, node: usize) {
        self.signal(node, "-KILL");
    }

    fn signal(&self, node: usize, sig: &str) {
        let pid = std::fs::read_to_string(self.root.join(format!("node-{node}.pid")))
            .expect("pid file")
            .trim()
            .to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill runs");
        assert!(ok.success(), "kill {sig} {pid}");
    }

    /// The Kafka bootstrap list without `node`.
    fn bootstrap_without(&self, node: usize) -> String {
        (1..=NODES)
            .filter(|i| *i != node)
            .map(|i| self.ports(i)["kafka"].clone())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts").join("cluster"))
            .arg("down")
            .arg(&self.root)
            .status();
        // Keep the node logs where the test runner collects logs.
        let logs = std::env::var_os("TEST_LOG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target").join("test-logs"))
            .join(format!(
                "rocketmq-cluster-{}",
                self.root
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
        let _ = std::fs::create_dir_all(&logs);
        for i in 1..=NODES {
            let _ = std::fs::copy(
                self.root.join(format!("node-{i}.log")),
                logs.join(format!("node-{i}.log")),
            );
        }
    }
}

fn kafka_config(bootstrap: &str) -> rdkafka::config::ClientConfig {
    let mut c = rdkafka::config::ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// Creates a one-partition topic with an explicit replica order.
async fn create_assigned(bootstrap: &str, topic: &str, policy: &str, replicas: &[i32]) {
    let admin: AdminClient<DefaultClientContext> =
        kafka_config(bootstrap).create().expect("kafka admin");
    let r = admin
        .create_topics(
            &[
                NewTopic::new(topic, 1, TopicReplication::Variable(&[replicas]))
                    .set("replication.policy", policy),
            ],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create_topics");
    for x in r {
        x.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
}

/// Creates the topic with Kafka's CreateTopics (replication factor 3, the policy under test).
async fn create_topic(bootstrap: &str, topic: &str, policy: &str) {
    let admin: AdminClient<DefaultClientContext> =
        kafka_config(bootstrap).create().expect("kafka admin");
    let r = admin
        .create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(3))
                .set("replication.policy", policy)
                .set("min.insync.replicas", "2")],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create_topics");
    for x in r {
        x.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
}

/// (broker name, queue id) -> partition, from Kafka metadata: a broker's queues are the
/// partitions whose first replica it is, in partition order. Also returns each partition's
/// leader.
fn queue_map(bootstrap: &str, topic: &str) -> (BTreeMap<(String, i32), i32>, BTreeMap<i32, i32>) {
    let c: BaseConsumer = kafka_config(bootstrap).create().expect("kafka client");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let t = &md.topics()[0];
    let mut parts: Vec<(i32, i32, i32)> = t
        .partitions()
        .iter()
        .map(|p| (p.id(), p.replicas()[0], p.leader()))
        .collect();
    parts.sort();
    let mut next: BTreeMap<i32, i32> = BTreeMap::new();
    let mut map = BTreeMap::new();
    let mut leaders = BTreeMap::new();
    for (p, first, leader) in parts {
        let q = next.entry(first).or_insert(0);
        map.insert((format!("broker-{first}"), *q), p);
        *q += 1;
        leaders.insert(p, leader);
    }
    (map, leaders)
}

/// Every record of every partition of `topic`, as (partition, offset) -> value.
fn read_everything(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    want: usize,
) -> BTreeMap<(i32, i64), String> {
    let c: BaseConsumer = kafka_config(bootstrap)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("kafka consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut got = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            got.insert(
                (m.partition(), m.offset()),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            );
        }
    }
    got
}

/// What a SendResult acknowledged.
#[derive(Debug, Clone)]
struct Ack {
    broker: String,
    queue: i32,
    offset: i64,
    body: String,
}

async fn send(p: &DefaultMQProducer, topic: &str, body: &str) -> Result<Ack, String> {
    let m = Message::builder()
        .topic(topic)
        .body_slice(body.as_bytes())
        .build_unchecked();
    match within("send", 60, p.send_with_timeout(m, 10_000)).await {
        Ok(Some(r)) if r.send_status == SendStatus::SendOk => {
            let mq = r.message_queue.clone().ok_or("no queue in SendResult")?;
            Ok(Ack {
                broker: mq.broker_name().to_string(),
                queue: mq.queue_id(),
                offset: r.queue_offset as i64,
                body: body.to_string(),
            })
        }
        Ok(other) => Err(format!("{other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// One three-node cluster at a time: the machine has two cores.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn failover_keeps_every_acknowledged_send(policy: &str) {
    let _one = ONE_CLUSTER.lock().await;
    let c = Cluster::up();
    let topic = unique(&format!("rmq_failover_{policy}"));
    create_topic(&c.bootstrap, &topic, policy).await;

    let mut p = DefaultMQProducer::builder(client_runtime("producer"))
        .client_config(client_config(&c.namesrv))
        .producer_group(unique("pg"))
        .send_msg_timeout(10_000)
        // The client's own failover: a send to the dead broker is retried on another.
        .retry_times_when_send_failed(2)
        .build();
    within("producer start", 30, p.start())
        .await
        .expect("producer start");

    // The route names all three brokers, two queues each.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut qs = within("route", 15, p.fetch_publish_message_queues(&topic))
            .await
            .unwrap_or_default();
        qs.sort_by_key(|q| (q.broker_name().to_string(), q.queue_id()));
        let seen: Vec<(String, i32)> = qs
            .iter()
            .map(|q| (q.broker_name().to_string(), q.queue_id()))
            .collect();
        let want: Vec<(String, i32)> = (1..=NODES)
            .flat_map(|b| (0..2).map(move |q| (format!("broker-{b}"), q)))
            .collect();
        if seen == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "route of {topic} is {seen:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let inbox = Inbox::new();
    let mut consumer = DefaultMQPushConsumer::builder(client_runtime("consumer"))
        .client_config(client_config(&c.namesrv))
        .consumer_group(unique("cg"))
        .message_model(MessageModel::Clustering)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .consume_thread_min(1)
        .consume_thread_max(1)
        .consume_message_batch_max_size(1)
        .client_rebalance(true)
        .build();
    within("subscribe", 10, consumer.subscribe(topic.as_str(), "*"))
        .await
        .expect("subscribe");
    let sink = inbox.clone();
    consumer.register_message_listener_concurrently(
        move |msgs: &[&MessageExt],
              _: &ConsumeConcurrentlyContext|
              -> ClientResult<ConsumeConcurrentlyStatus> {
            for m in msgs {
                sink.push(Got::from_ext("c", m));
            }
            Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
        },
    );
    within("consumer start", 30, consumer.start())
        .await
        .expect("consumer start");

    let mut acks = Vec::new();
    for i in 0..60 {
        let a = send(&p, &topic, &format!("before-{i}"))
            .await
            .unwrap_or_else(|e| panic!("send before the failure: {e}"));
        acks.push(a);
    }
    let victim = 2;
    c.kill9(victim);
    let killed_at = Instant::now();
    let mut after = Vec::new();
    let mut failed_attempts = Vec::new();
    for i in 0..120 {
        let body = format!("after-{i}");
        // rocketmq-client-rust 1.0 does not resend a failed connection attempt itself (the
        // Java client does, on another broker); the application resends, as users of that
        // client do. Each message gets a bounded number of attempts.
        let mut attempt = 0;
        let a = loop {
            match send(&p, &topic, &body).await {
                Ok(a) => break a,
                Err(e) => {
                    attempt += 1;
                    failed_attempts.push(format!("{body}: {e}"));
                    assert!(
                        attempt < 20,
                        "{body} not acknowledged after {attempt} attempts: {failed_attempts:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        after.push(a);
    }
    // The route names broker-<victim> again, at its stand-in; once the producer has it, sends
    // reach the dead broker's queues through the stand-in.
    let standin_addrs: Vec<String> = (1..=NODES)
        .filter(|i| *i != victim)
        .map(|i| c.ports(i)["standby"].clone())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut late = 0;
    while !after.iter().any(|a| a.broker == format!("broker-{victim}")) {
        assert!(
            Instant::now() < deadline,
            "no send acknowledged through broker-{victim}'s stand-in ({standin_addrs:?})"
        );
        let body = format!("late-{late}");
        late += 1;
        if let Ok(a) = send(&p, &topic, &body).await {
            after.push(a);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Reported, not asserted: it is dominated by the client's route poll period (10 s here).
    eprintln!(
        "{policy}: first send through broker-{victim}'s stand-in {:.2} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    let dead = format!("broker-{victim}");
    let before_kill = acks.iter().filter(|a| a.broker == dead).count();
    let via_stand_in = after.iter().filter(|a| a.broker == dead).count();
    assert!(
        before_kill > 0,
        "no send reached the killed broker before it died: the test proved nothing"
    );
    eprintln!(
        "{policy}: {} sends acknowledged before the kill ({before_kill} by {dead}), {} after \
         ({via_stand_in} by {dead} through its stand-in); {} failed attempts after the kill",
        acks.len(),
        after.len(),
        failed_attempts.len()
    );
    acks.extend(after.iter().cloned());

    // The killed broker's partitions get new leaders among the survivors.
    let survivors = c.bootstrap_without(victim);
    let deadline = Instant::now() + Duration::from_secs(30);
    let map = loop {
        let (map, leaders) = tokio::task::spawn_blocking({
            let (b, t) = (survivors.clone(), topic.clone());
            move || queue_map(&b, &t)
        })
        .await
        .expect("join");
        if leaders.values().all(|l| *l > 0 && *l != victim as i32) {
            break map;
        }
        assert!(
            Instant::now() < deadline,
            "partitions without a live leader: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    // Every acknowledged message is where its SendResult said, read from the survivors.
    let stored = tokio::task::spawn_blocking({
        let (b, t, n) = (survivors.clone(), topic.clone(), acks.len());
        move || read_everything(&b, &t, PARTITIONS, n)
    })
    .await
    .expect("join");
    for a in &acks {
        let partition = map
            .get(&(a.broker.clone(), a.queue))
            .unwrap_or_else(|| panic!("{a:?} names an unknown queue"));
        assert_eq!(
            stored.get(&(*partition, a.offset)),
            Some(&a.body),
            "acknowledged {a:?} (partition {partition}) not found"
        );
    }

    // The consumer receives every acknowledged message, the dead broker's queues included.
    let want: Vec<String> = acks.iter().map(|a| a.body.clone()).collect();
    inbox
        .wait_for(
            "every acknowledged message",
            Duration::from_secs(60),
            |got| want.iter().all(|w| got.iter().any(|g| g.body_str() == *w)),
        )
        .await;
    consumer.shutdown().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isr_policy_broker_sigkill_loses_no_acknowledged_send() {
    failover_keeps_every_acknowledged_send("isr").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_policy_broker_sigkill_loses_no_acknowledged_send() {
    failover_keeps_every_acknowledged_send("quorum").await;
}

/// DLedger's promise: a send acknowledged by a majority survives the leader, even when the
/// replica that an ISR election would pick first did not have it. Replicas are [1, 2, 3];
/// node 2 (first in line after node 1, and node 1's stand-in) is paused, still in the ISR as
/// its lag is under replica.lag.time.max.ms, while node 1 acknowledges sends with node 3; node 1
/// is killed and node 2 resumed. The controller compares the logs of a majority and elects
/// node 3, which holds every acknowledged send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_election_picks_the_replica_holding_the_majority_acknowledged_sends() {
    let _one = ONE_CLUSTER.lock().await;
    let c = Cluster::up();
    let topic = unique("rmq_quorum_elect");
    create_assigned(&c.bootstrap, &topic, "quorum", &[1, 2, 3]).await;
    let mut p = DefaultMQProducer::builder(client_runtime("producer"))
        .client_config(client_config(&c.namesrv))
        .producer_group(unique("pg"))
        .send_msg_timeout(10_000)
        .retry_times_when_send_failed(0)
        .build();
    within("producer start", 30, p.start())
        .await
        .expect("producer start");
    // Warm up: the route (broker-1, one queue) and every replica in sync.
    let mut acks = Vec::new();
    for i in 0..5 {
        acks.push(
            send(&p, &topic, &format!("warm-{i}"))
                .await
                .unwrap_or_else(|e| panic!("warm-up send: {e}")),
        );
    }
    c.signal(2, "-STOP");
    for i in 0..20 {
        acks.push(
            send(&p, &topic, &format!("majority-{i}"))
                .await
                .unwrap_or_else(|e| panic!("send with node 2 paused: {e}")),
        );
    }
    c.kill9(1);
    c.signal(2, "-CONT");
    assert!(acks.iter().all(|a| a.broker == "broker-1" && a.queue == 0));

    let survivors = c.bootstrap_without(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let (_, leaders) = tokio::task::spawn_blocking({
            let (b, t) = (survivors.clone(), topic.clone());
            move || queue_map(&b, &t)
        })
        .await
        .expect("join");
        match leaders.get(&0) {
            Some(l) if *l > 0 && *l != 1 => break *l,
            _ => {}
        }
        assert!(Instant::now() < deadline, "no new leader: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        leader, 3,
        "the replica with the majority-acknowledged sends leads"
    );
    let stored = tokio::task::spawn_blocking({
        let (b, t, n) = (survivors, topic.clone(), acks.len());
        move || read_everything(&b, &t, 1, n)
    })
    .await
    .expect("join");
    for a in &acks {
        assert_eq!(
            stored.get(&(0, a.offset)),
            Some(&a.body),
            "acknowledged {a:?} lost"
        );
    }
    p.shutdown().await;
}

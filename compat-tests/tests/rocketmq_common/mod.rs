//! Helpers for the RocketMQ client suites: a real `gateway` process with its name-server and
//! broker addresses, the `rocketmq-client-rust` runtime, and small polling utilities.
//!
//! Adapted from `tests/common/mod.rs` (which stays Kafka-only).

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocketmq_client_rust::{
    ClientConfig, ClientResult, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext,
    ConsumeConcurrentlyStatus, DefaultMQAdminExt, DefaultMQProducer, DefaultMQPushConsumer,
    DefaultMQPushConsumerBuilder, MQPushConsumer, TelemetryHandle, TopicAdmin,
};
use rocketmq_model::common::config::TopicConfig;
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::result::{SendResult, SendStatus};
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

/// The server binary: $GATEWAY_BIN, else the workspace's debug build.
pub fn gateway_bin() -> PathBuf {
    std::env::var_os("GATEWAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("debug")
                .join("gateway")
        })
}

/// A running server process with every listener the ready line reports.
pub struct Server {
    pub child: Child,
    pub kafka: String,
    pub namesrv: String,
    pub broker: String,
    pub metrics: String,
    /// The admin API (`gateway mirror --admin http://...`).
    pub admin: String,
    pub data_dir: PathBuf,
    pub sets: Vec<String>,
    pub log_path: PathBuf,
}

impl Server {
    /// Starts a server on `data_dir` with extra `--set` values and waits for its ready line.
    pub fn start_in(data_dir: &Path, sets: &[&str]) -> Server {
        let mut cmd = Command::new(gateway_bin());
        cmd.arg("--data-dir").arg(data_dir);
        for a in [
            "--kafka-addr",
            "--namesrv-addr",
            "--broker-addr",
            "--metrics-addr",
            "--admin-addr",
        ] {
            cmd.arg(a).arg("127.0.0.1:0");
        }
        cmd.arg("--set").arg("group.initial.rebalance.delay.ms=0");
        for s in sets {
            cmd.arg("--set").arg(s);
        }
        let log_path = log_path(data_dir);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("server log file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", gateway_bin().display()));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("gateway ready ") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "server did not print its ready line; see {}",
                    log_path.display()
                )
            });
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{k}=")).map(str::to_string))
                .unwrap_or_else(|| panic!("ready line has no {k}=: {line}"))
        };
        Server {
            child,
            kafka: field("kafka"),
            namesrv: field("namesrv"),
            broker: field("broker"),
            metrics: field("metrics"),
            admin: field("admin"),
            data_dir: data_dir.to_path_buf(),
            sets: sets.iter().map(|s| s.to_string()).collect(),
            log_path,
        }
    }

    /// SIGKILLs the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILLs and starts again on the same data directory (the ports change).
    pub fn restart(&mut self) {
        self.kill9();
        let sets: Vec<String> = self.sets.clone();
        let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
        let dir = self.data_dir.clone();
        *self = Server::start_in(&dir, &refs);
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Server logs are kept under target/test-logs, one file per data directory.
fn log_path(data_dir: &Path) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-logs");
    let _ = std::fs::create_dir_all(&dir);
    let name = data_dir
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "server".into());
    dir.join(format!("rocketmq-{name}.log"))
}

/// A fresh temporary data directory that lives as long as the returned guard.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("data");
    (d, p)
}

/// Starts a server in a fresh data directory.
pub fn start(sets: &[&str]) -> (tempfile::TempDir, Server) {
    let (guard, dir) = data_dir();
    let server = Server::start_in(&dir, sets);
    (guard, server)
}

// ---------------------------------------------------------------------------
// rocketmq-client-rust runtime
// ---------------------------------------------------------------------------

/// One runtime owner per test binary. It owns its own Tokio runtime, so it must never be dropped
/// from inside a test's runtime: a static is never dropped.
static RUNTIME_OWNER: LazyLock<RuntimeOwner> = LazyLock::new(|| {
    RuntimeOwner::plan(RuntimeConfig {
        thread_name: "rmq-compat".to_string(),
        ..Default::default()
    })
    .expect("runtime configuration is valid")
    .build()
    .expect("client runtime owner starts")
});

static SCOPE_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A client runtime for one producer, consumer or admin client.
pub fn client_runtime(scope: &str) -> Arc<ClientRuntime> {
    let n = SCOPE_COUNTER.fetch_add(1, Ordering::Relaxed);
    ClientRuntime::try_new(
        RUNTIME_OWNER
            .root_context()
            .component(&*Box::leak(format!("{scope}-{n}").into_boxed_str())),
        ClientRuntimeConfig::default(),
        TelemetryHandle::noop(),
    )
    .expect("client runtime is valid")
}

/// Client configuration for a given name server: loopback client IP, the shortest route poll and
/// heartbeat periods the client accepts (10 s), offsets persisted every second, and a unique
/// instance name so that two clients in this process are two RocketMQ clients.
pub fn client_config(namesrv: &str) -> ClientConfig {
    ClientConfig::builder()
        .namesrv_addr(namesrv.to_string())
        .client_ip("127.0.0.1")
        .instance_name(unique("inst"))
        .poll_name_server_interval(10_000)
        .heartbeat_broker_interval(10_000)
        .persist_consumer_offset_interval(1_000)
        .build()
        .expect("valid client config")
}

static NAME_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique within this run (topic, group, key...).
pub fn unique(prefix: &str) -> String {
    let n = NAME_COUNTER.fetch_add(1, Ordering::Relaxed);
    let ms = now_ms() % 1_000_000_000;
    format!("{prefix}_{ms}_{n}")
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// received messages
// ---------------------------------------------------------------------------

/// What a listener saw of one message (owned copy; the client's `MessageExt` is borrowed).
#[derive(Debug, Clone)]
pub struct Got {
    pub consumer: String,
    pub topic: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub body: Vec<u8>,
    pub tags: Option<String>,
    pub keys: Option<String>,
    pub properties: HashMap<String, String>,
    pub reconsume_times: i32,
    pub msg_id: String,
    pub born_timestamp: i64,
    pub store_timestamp: i64,
    /// Local wall clock when the listener ran.
    pub at_ms: u64,
}

impl Got {
    pub fn from_ext(consumer: &str, m: &MessageExt) -> Got {
        Got {
            consumer: consumer.to_string(),
            topic: m.topic().to_string(),
            queue_id: m.queue_id(),
            queue_offset: m.queue_offset(),
            body: m.body().map(|b| b.to_vec()).unwrap_or_default(),
            tags: MessageTrait::tags(m).map(|t| t.to_string()),
            keys: MessageTrait::get_keys(m).map(|t| t.to_string()),
            properties: m
                .properties()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            reconsume_times: m.reconsume_times(),
            msg_id: m.msg_id().to_string(),
            born_timestamp: m.born_timestamp(),
            store_timestamp: m.store_timestamp(),
            at_ms: now_ms(),
        }
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A shared list of received messages.
#[derive(Clone, Default)]
pub struct Inbox(pub Arc<Mutex<Vec<Got>>>);

impl Inbox {
    pub fn new() -> Inbox {
        Inbox::default()
    }

    pub fn push(&self, g: Got) {
        self.0.lock().expect("inbox lock").push(g);
    }

    pub fn snapshot(&self) -> Vec<Got> {
        self.0.lock().expect("inbox lock").clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("inbox lock").len()
    }

    /// Bodies in arrival order.
    pub fn bodies(&self) -> Vec<String> {
        self.snapshot().iter().map(Got::body_str).collect()
    }

    /// Waits until `pred` holds for the inbox, or panics with `what` and the inbox contents.
    pub async fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&[Got]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.snapshot()) {
                return;
            }
            if Instant::now() >= deadline {
                let got: Vec<(String, i32, i64, String)> = self
                    .snapshot()
                    .iter()
                    .map(|g| (g.topic.clone(), g.queue_id, g.queue_offset, g.body_str()))
                    .collect();
                panic!("timed out after {timeout:?} waiting for {what}; received {got:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until at least `n` messages arrived.
    pub async fn wait_len(&self, what: &str, n: usize, timeout: Duration) {
        self.wait_for(what, timeout, |g| g.len() >= n).await
    }
}

/// Polls an async condition until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("condition never held");
    loop {
        match f().await {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a future with a hard time limit so a hung client call fails the test instead of hanging.
pub async fn within<T>(what: &str, secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {secs}s"),
    }
}

// ---------------------------------------------------------------------------
// client helpers shared by the suites
// ---------------------------------------------------------------------------

pub const BROKER_NAME: &str = "broker-1";

pub async fn producer(namesrv: &str) -> DefaultMQProducer {
    let mut p = DefaultMQProducer::builder(client_runtime("producer"))
        .client_config(client_config(namesrv))
        .producer_group(unique("pg"))
        .send_msg_timeout(5_000)
        // no client-side resend: every count below is exact, so a failed send must surface
        .retry_times_when_send_failed(0)
        .retry_times_when_send_async_failed(0)
        .build();
    within("producer start", 30, p.start())
        .await
        .expect("producer start");
    p
}

pub async fn admin(namesrv: &str) -> DefaultMQAdminExt {
    let mut a = DefaultMQAdminExt::new(client_runtime("admin"));
    *a.client_config_mut() = client_config(namesrv);
    a.set_namesrv_addr(namesrv.to_string());
    within("admin start", 30, a.start())
        .await
        .expect("admin start");
    a
}

/// `mqadmin updateTopic -b <broker> -t <topic> -r N -w N`, then waits until a producer's route
/// shows exactly N writable queues on broker-1.
pub async fn create_topic(
    namesrv: &str,
    broker: &str,
    topic: &str,
    queues: u32,
) -> Vec<MessageQueue> {
    let mut a = admin(namesrv).await;
    within(
        "create_and_update_topic_config",
        15,
        a.create_and_update_topic_config(
            broker.into(),
            TopicConfig::with_queues(topic.to_string(), queues, queues),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("UPDATE_AND_CREATE_TOPIC {topic} on {broker}: {e}"));
    a.shutdown().await;
    let mut p = producer(namesrv).await;
    let mqs = publish_queues(&mut p, topic, queues as usize).await;
    p.shutdown().await;
    mqs
}

/// Polls the producer's route for `topic` until it has `n` queues; returns them sorted by id.
pub async fn publish_queues(p: &mut DefaultMQProducer, topic: &str, n: usize) -> Vec<MessageQueue> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = within(
            "fetch_publish_message_queues",
            15,
            p.fetch_publish_message_queues(topic),
        )
        .await;
        match r {
            Ok(mut q) if q.len() == n => {
                q.sort_by_key(MessageQueue::queue_id);
                for (i, mq) in q.iter().enumerate() {
                    assert_eq!(mq.topic().as_str(), topic);
                    assert_eq!(mq.broker_name().as_str(), BROKER_NAME);
                    assert_eq!(mq.queue_id(), i as i32, "queue ids are 0..n: {q:?}");
                }
                return q;
            }
            other => {
                if Instant::now() >= deadline {
                    panic!("route of {topic} never showed {n} queues: {other:?}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub fn msg(topic: &str, tag: &str, keys: &[&str], body: &str) -> Message {
    let mut b = Message::builder().topic(topic).body_slice(body.as_bytes());
    if !tag.is_empty() {
        b = b.tags(tag);
    }
    if !keys.is_empty() {
        b = b.keys(keys.iter().map(|k| k.to_string()).collect());
    }
    b.build_unchecked()
}

pub fn ok_result(r: ClientResult<Option<SendResult>>, what: &str) -> SendResult {
    let r = r
        .unwrap_or_else(|e| panic!("{what}: send failed: {e}"))
        .unwrap_or_else(|| panic!("{what}: sync send returned no SendResult"));
    assert_eq!(r.send_status, SendStatus::SendOk, "{what}: {r}");
    r
}

/// A push consumer builder with the settings every test shares: the given group, clustering,
/// start from the first offset for new groups, one consume thread (so dispatch order is pull
/// order), one message per listener call, client-side rebalancing (the 4.x way).
pub fn consumer_builder(namesrv: &str, group: &str) -> DefaultMQPushConsumerBuilder {
    DefaultMQPushConsumer::builder(client_runtime("consumer"))
        .client_config(client_config(namesrv))
        .consumer_group(group.to_string())
        .message_model(MessageModel::Clustering)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .consume_thread_min(1)
        .consume_thread_max(1)
        .consume_message_batch_max_size(1)
        .pull_batch_size(32)
        .client_rebalance(true)
}

/// Listener that records every message and acknowledges it.
pub fn recorder(
    inbox: Inbox,
    name: &str,
) -> impl Fn(&[&MessageExt], &ConsumeConcurrentlyContext) -> ClientResult<ConsumeConcurrentlyStatus>
       + Send
       + Sync
       + 'static {
    let name = name.to_string();
    move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
        for m in msgs {
            inbox.push(Got::from_ext(&name, m));
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

pub async fn start_consumer(
    builder: DefaultMQPushConsumerBuilder,
    topic: &str,
    expr: &str,
    inbox: &Inbox,
    name: &str,
) -> DefaultMQPushConsumer {
    let mut c = builder.build();
    within("subscribe", 10, c.subscribe(topic, expr))
        .await
        .expect("subscribe");
    c.register_message_listener_concurrently(recorder(inbox.clone(), name));
    within("consumer start", 30, c.start())
        .await
        .expect("consumer start");
    c
}

pub async fn send_bodies(p: &DefaultMQProducer, topic: &str, bodies: &[String]) {
    for b in bodies {
        ok_result(
            within(
                "send",
                15,
                p.send_with_timeout(msg(topic, "T", &[], b), 5_000),
            )
            .await,
            b,
        );
    }
}

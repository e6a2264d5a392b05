//! The RocketMQ workload: T concurrent senders (synchronous, or asynchronous with a window of
//! sends in flight per thread) sharing one producer as the Java client's benchmark threads do
//! (or spread over several producers), then a push or pull consumer reading everything back.
//! Uses the third-party `rocketmq-client-rust` client.

use crate::report::{cpu_seconds, histogram, percentiles, server_usage};
use hdrhistogram::Histogram;
use rocketmq_client_rust::{
    ClientConfig, ClientError, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext,
    ConsumeConcurrentlyStatus, DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer,
    TelemetryHandle,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::{PullStatus, SendResult};
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the sender threads send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// Each thread waits for a send's result before the next (`send`).
    Sync,
    /// Each thread keeps up to `--window` sends in flight (`send` with a callback).
    Async,
}

/// What reads the messages back after sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ConsumerKind {
    /// A push consumer (clustering, from the first offset).
    Push,
    /// A pull consumer pulling each queue from where this run started.
    Pull,
    /// Send only.
    None,
}

/// RocketMQ workload options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Name-server address.
    #[arg(long, default_value = "127.0.0.1:9876")]
    namesrv: String,
    /// Topic (auto-created with 4 queues by the first send).
    #[arg(long, default_value = "rbench")]
    topic: String,
    /// Concurrent sender threads.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Producer instances the threads are spread over (each has its own connections).
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Synchronous or asynchronous sends.
    #[arg(long, value_enum, default_value_t = Mode::Sync)]
    mode: Mode,
    /// Asynchronous sends in flight per thread.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Messages in total.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Consumer reading everything back afterwards.
    #[arg(long, value_enum, default_value_t = ConsumerKind::Push)]
    consumer: ConsumerKind,
    /// Server process id, to report its CPU seconds and peak RSS.
    #[arg(long)]
    server_pid: Option<u32>,
}

fn config(a: &Args, name: &str) -> anyhow::Result<ClientConfig> {
    ClientConfig::builder()
        .namesrv_addr(a.namesrv.clone())
        .client_ip("127.0.0.1")
        .instance_name(format!("bench-{name}-{}", std::process::id()))
        .build()
        .map_err(|e| anyhow::anyhow!("client config: {e}"))
}

fn message(a: &Args, body: &[u8]) -> Message {
    Message::builder()
        .topic(a.topic.as_str())
        .body_slice(body)
        .build_unchecked()
}

/// Send results of one run: latencies of acknowledged sends and the failures.
struct Sent {
    lat: Mutex<Histogram<u64>>,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Sent {
    fn fail(&self, why: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.first_error.lock() {
            f.get_or_insert(why);
        }
    }

    fn record(&self, t0: Instant, outcome: Result<(), String>) {
        if let Err(why) = outcome {
            self.fail(why);
            return;
        }
        if let Ok(mut h) = self.lat.lock() {
            let _ = h.record(t0.elapsed().as_micros().clamp(1, 60_000_000) as u64);
        }
    }
}

/// One sender thread: `count` sends, one at a time or with up to `window` in flight.
async fn sender(a: Arc<Args>, p: Arc<DefaultMQProducer>, count: u64, sent: Arc<Sent>) {
    let body = vec![b'r'; a.size];
    match a.mode {
        Mode::Sync => {
            let mut local = histogram();
            for _ in 0..count {
                let t0 = Instant::now();
                match p.send_with_timeout(message(&a, &body), 5_000).await {
                    Ok(Some(_)) => {
                        let _ = local.record(t0.elapsed().as_micros().clamp(1, 60_000_000) as u64);
                    }
                    Ok(None) => sent.fail("send returned no result".into()),
                    Err(e) => sent.fail(e.to_string()),
                }
            }
            if let Ok(mut h) = sent.lat.lock() {
                let _ = h.add(&local);
            }
        }
        Mode::Async => {
            let window = Arc::new(tokio::sync::Semaphore::new(a.window.max(1)));
            for _ in 0..count {
                let Ok(permit) = window.clone().acquire_owned().await else {
                    return;
                };
                let t0 = Instant::now();
                let s2 = sent.clone();
                // The callback is `Fn`, so the permit is released through a lock it empties.
                let permit = Mutex::new(Some(permit));
                let dispatched = p
                    .send_with_callback_timeout(
                        message(&a, &body),
                        move |r: Option<&SendResult>, e: Option<&ClientError>| {
                            let outcome = match (r, e) {
                                (_, Some(e)) => Err(e.to_string()),
                                (Some(_), None) => Ok(()),
                                (None, None) => Err("callback without a result".into()),
                            };
                            s2.record(t0, outcome);
                            if let Ok(mut g) = permit.lock() {
                                g.take();
                            }
                        },
                        5_000,
                    )
                    .await;
                if let Err(e) = dispatched {
                    sent.fail(e.to_string());
                }
            }
            // Every permit back means every callback has run.
            let _ = window.acquire_many(a.window.max(1) as u32).await;
        }
    }
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    let owner = RuntimeOwner::plan(RuntimeConfig {
        thread_name: "bench-rmq".to_string(),
        ..Default::default()
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .build()
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = |scope: &'static str| {
        ClientRuntime::try_new(
            owner.root_context().component(scope),
            ClientRuntimeConfig::default(),
            TelemetryHandle::noop(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let a = Arc::new(a);
    let producer_runtime = runtime("producer")?;
    let consumer_runtime = runtime("consumer")?;
    rt.block_on(async move {
        let mut producers = Vec::new();
        for i in 0..a.producers.max(1) {
            let mut p = DefaultMQProducer::builder(producer_runtime.clone())
                .client_config(config(&a, &format!("p{i}"))?)
                .producer_group(format!("bench_pg{i}"))
                .send_msg_timeout(5_000)
                .build();
            p.start()
                .await
                .map_err(|e| anyhow::anyhow!("producer start: {e}"))?;
            // The first send creates the topic and the connections; not measured. A broker
            // may refuse it while the new topic's route settles, so it is tried a few times.
            let mut attempt = 0;
            loop {
                attempt += 1;
                match p.send_with_timeout(message(&a, b"warm-up"), 10_000).await {
                    Ok(_) => break,
                    Err(e) if attempt >= 5 => anyhow::bail!("warm-up send: {e}"),
                    Err(e) => {
                        eprintln!("warm-up send attempt {attempt}: {e}; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            producers.push(Arc::new(p));
        }
        let warmups = producers.len() as u64;
        let pull = if a.consumer == ConsumerKind::Pull {
            Some(PullSide::start(&a, consumer_runtime.clone()).await?)
        } else {
            None
        };
        let sent = Arc::new(Sent {
            lat: Mutex::new(histogram()),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        });
        let cpu_before = a.server_pid.and_then(cpu_seconds);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..a.threads {
            let count = a.messages / a.threads as u64
                + u64::from((t as u64) < a.messages % a.threads as u64);
            let p = producers[t % producers.len()].clone();
            tasks.push(tokio::spawn(sender(a.clone(), p, count, sent.clone())));
        }
        for t in tasks {
            t.await?;
        }
        let sent_in = start.elapsed();
        println!(
            "rocketmq: {} msgs x {} B, {} {:?} senders over {} producer(s){}",
            a.messages,
            a.size,
            a.threads,
            a.mode,
            producers.len(),
            if a.mode == Mode::Async {
                format!(", window {}", a.window)
            } else {
                String::new()
            }
        );
        // Only acknowledged sends count towards the rate.
        let errors = sent.errors.load(Ordering::Relaxed);
        let ok = a.messages.saturating_sub(errors) as f64;
        println!(
            "send: {:.0} msgs/s, {:.1} MB/s in {:.2} s, errors {}",
            ok / sent_in.as_secs_f64(),
            ok * a.size as f64 / 1e6 / sent_in.as_secs_f64(),
            sent_in.as_secs_f64(),
            errors
        );
        if let Ok(Some(why)) = sent.first_error.lock().as_deref() {
            println!("first send error: {why}");
        }
        if let Ok(h) = sent.lat.lock() {
            println!(
                "send latency: {}, mean {:.3} ms",
                percentiles(&h, true),
                h.mean() / 1000.0
            );
        }
        server_usage(a.server_pid, cpu_before);
        match a.consumer {
            ConsumerKind::None => {}
            ConsumerKind::Push => push_consume(&a, consumer_runtime, a.messages + warmups).await?,
            ConsumerKind::Pull => {
                if let Some(side) = pull {
                    side.consume(&a).await?;
                }
            }
        }
        for p in producers {
            if let Ok(mut p) = Arc::try_unwrap(p) {
                p.shutdown().await;
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    drop(owner);
    Ok(())
}

/// A push consumer from the first offset until it has seen `total` messages.
async fn push_consume(a: &Args, rt: Arc<ClientRuntime>, total: u64) -> anyhow::Result<()> {
    let got = Arc::new(AtomicU64::new(0));
    let counter = got.clone();
    let mut c = DefaultMQPushConsumer::builder(rt)
        .client_config(config(a, "c")?)
        .consumer_group("bench_cg".to_string())
        .message_model(MessageModel::Clustering)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .pull_batch_size(32)
        // One listener call per pulled batch: with one call per message this client's
        // bounded consume scheduler overflows and sends messages back for retry.
        .consume_message_batch_max_size(32)
        .build();
    c.subscribe(a.topic.as_str(), "*")
        .await
        .map_err(|e| anyhow::anyhow!("subscribe: {e}"))?;
    c.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
            counter.fetch_add(msgs.len() as u64, Ordering::Relaxed);
            Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
        },
    );
    let cstart = Instant::now();
    let cpu_before = a.server_pid.and_then(cpu_seconds);
    c.start()
        .await
        .map_err(|e| anyhow::anyhow!("consumer start: {e}"))?;
    let deadline = cstart + Duration::from_secs(600);
    while got.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let n = got.load(Ordering::Relaxed);
    let took = cstart.elapsed();
    println!(
        "consume: {:.0} msgs/s, {} msgs in {:.2} s (push consumer, from consumer start), missing {}",
        n as f64 / took.as_secs_f64(),
        n,
        took.as_secs_f64(),
        total.saturating_sub(n)
    );
    server_usage(a.server_pid, cpu_before);
    c.shutdown().await;
    Ok(())
}

/// A pull consumer that noted every queue's end before the sends, so it reads exactly them.
#[allow(deprecated)] // the classic pull consumer is what `mqadmin`-era applications use
struct PullSide {
    consumer: Arc<rocketmq_client_rust::DefaultMQPullConsumer>,
    starts: Vec<(MessageQueue, i64)>,
}

#[allow(deprecated)]
impl PullSide {
    async fn start(a: &Args, rt: Arc<ClientRuntime>) -> anyhow::Result<Self> {
        let c = rocketmq_client_rust::DefaultMQPullConsumer::builder(rt)
            .name_server_addr(a.namesrv.clone())
            .consumer_group("bench_pull_cg")
            .build()
            .map_err(|e| anyhow::anyhow!("pull consumer: {e}"))?;
        c.start()
            .await
            .map_err(|e| anyhow::anyhow!("pull consumer start: {e}"))?;
        let queues = c
            .fetch_subscribe_message_queues(&a.topic)
            .await
            .map_err(|e| anyhow::anyhow!("queues of {}: {e}", a.topic))?;
        let mut starts = Vec::new();
        for q in queues {
            let end = c
                .max_offset(&q)
                .await
                .map_err(|e| anyhow::anyhow!("max offset: {e}"))?;
            starts.push((q, end));
        }
        Ok(Self {
            consumer: Arc::new(c),
            starts,
        })
    }

    /// Pulls every queue (one task per queue, 32 messages per pull) up to its current end.
    async fn consume(self, a: &Args) -> anyhow::Result<()> {
        let mut ranges = Vec::new();
        let mut expected = 0;
        for (q, from) in &self.starts {
            let end = self
                .consumer
                .max_offset(q)
                .await
                .map_err(|e| anyhow::anyhow!("max offset: {e}"))?;
            expected += (end - from).max(0) as u64;
            ranges.push((q.clone(), *from, end));
        }
        let cpu_before = a.server_pid.and_then(cpu_seconds);
        let start = Instant::now();
        let got = Arc::new(AtomicU64::new(0));
        let pulls = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for (q, from, end) in ranges {
            let (c, got, pulls) = (self.consumer.clone(), got.clone(), pulls.clone());
            tasks.push(tokio::spawn(async move {
                let mut at = from;
                while at < end {
                    let r = c
                        .pull(&q, "*", at, 32)
                        .await
                        .map_err(|e| anyhow::anyhow!("pull {q:?} at {at}: {e}"))?;
                    pulls.fetch_add(1, Ordering::Relaxed);
                    if *r.pull_status() == PullStatus::Found {
                        let n = r.msg_found_list().map_or(0, |l| l.len());
                        got.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let next = r.next_begin_offset() as i64;
                    if next <= at {
                        anyhow::bail!("pull {q:?} at {at}: no progress ({:?})", r.pull_status());
                    }
                    at = next;
                }
                Ok::<(), anyhow::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let took = start.elapsed();
        let n = got.load(Ordering::Relaxed);
        println!(
            "consume: {:.0} msgs/s, {} msgs in {:.2} s ({} pulls of up to 32), missing {}",
            n as f64 / took.as_secs_f64(),
            n,
            took.as_secs_f64(),
            pulls.load(Ordering::Relaxed),
            expected.saturating_sub(n)
        );
        server_usage(a.server_pid, cpu_before);
        let _ = self.consumer.shutdown().await;
        Ok(())
    }
}

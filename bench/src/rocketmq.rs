//! The RocketMQ workload: T concurrent synchronous senders sharing one producer (as the Java
//! client's benchmark threads do), then a push consumer reading everything back. Uses the
//! third-party `rocketmq-client-rust` client.

use crate::report::{cpu_seconds, histogram, percentiles, server_usage};
use rocketmq_client_rust::{
    ClientConfig, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext,
    ConsumeConcurrentlyStatus, DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer,
    TelemetryHandle,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// RocketMQ workload options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Name-server address.
    #[arg(long, default_value = "127.0.0.1:9876")]
    namesrv: String,
    /// Topic (auto-created with 4 queues by the first send).
    #[arg(long, default_value = "rbench")]
    topic: String,
    /// Concurrent synchronous senders.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Messages in total.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Also consume everything back with a push consumer (`--consume false` to skip).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    consume: bool,
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
        let mut p = DefaultMQProducer::builder(producer_runtime)
            .client_config(config(&a, "p")?)
            .producer_group("bench_pg".to_string())
            .send_msg_timeout(5_000)
            .build();
        p.start()
            .await
            .map_err(|e| anyhow::anyhow!("producer start: {e}"))?;
        let body = vec![b'r'; a.size];
        let msg = || {
            Message::builder()
                .topic(a.topic.as_str())
                .body_slice(&body)
                .build_unchecked()
        };
        // First send creates the topic; not measured.
        p.send_with_timeout(msg(), 10_000)
            .await
            .map_err(|e| anyhow::anyhow!("warm-up send: {e}"))?;
        let p = Arc::new(p);
        let lat = Arc::new(Mutex::new(histogram()));
        let errors = Arc::new(AtomicU64::new(0));
        let cpu_before = a.server_pid.and_then(cpu_seconds);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..a.threads {
            let count = a.messages / a.threads as u64
                + u64::from((t as u64) < a.messages % a.threads as u64);
            let (p, lat, errors, a) = (p.clone(), lat.clone(), errors.clone(), a.clone());
            tasks.push(tokio::spawn(async move {
                let body = vec![b'r'; a.size];
                let mut local = histogram();
                for _ in 0..count {
                    let m = Message::builder()
                        .topic(a.topic.as_str())
                        .body_slice(&body)
                        .build_unchecked();
                    let t0 = Instant::now();
                    match p.send_with_timeout(m, 5_000).await {
                        Ok(Some(_)) => {
                            let _ =
                                local.record(t0.elapsed().as_micros().clamp(1, 60_000_000) as u64);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if let Ok(mut h) = lat.lock() {
                    let _ = h.add(&local);
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let sent_in = start.elapsed();
        let mb = a.messages as f64 * a.size as f64 / 1e6;
        println!(
            "rocketmq: {} msgs x {} B, {} sync senders",
            a.messages, a.size, a.threads
        );
        println!(
            "send: {:.0} msgs/s, {:.1} MB/s in {:.2} s, errors {}",
            a.messages as f64 / sent_in.as_secs_f64(),
            mb / sent_in.as_secs_f64(),
            sent_in.as_secs_f64(),
            errors.load(Ordering::Relaxed)
        );
        if let Ok(h) = lat.lock() {
            println!("send latency: {}", percentiles(&h, true));
        }
        if a.consume {
            let total = a.messages + 1;
            let got = Arc::new(AtomicU64::new(0));
            let counter = got.clone();
            let mut c = DefaultMQPushConsumer::builder(consumer_runtime)
                .client_config(config(&a, "c")?)
                .consumer_group("bench_cg".to_string())
                .message_model(MessageModel::Clustering)
                .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
                .pull_batch_size(32)
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
                "consume: {} msgs in {:.2} s = {:.0} msgs/s (push consumer, from consumer start)",
                n,
                took.as_secs_f64(),
                n as f64 / took.as_secs_f64()
            );
            c.shutdown().await;
        }
        server_usage(a.server_pid, cpu_before);
        Ok::<(), anyhow::Error>(())
    })?;
    drop(owner);
    Ok(())
}

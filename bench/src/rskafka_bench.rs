//! The Kafka workload through a second third-party client, `rskafka` (pure Rust, InfluxData).
//! It exists for side-by-side runs against brokers librdkafka cannot talk to (Tansu 0.6 answers
//! ApiVersions in a form librdkafka rejects): one task per partition sends batches of
//! `--batch` records and waits for each acknowledgement (rskafka always asks acks=all), then
//! every partition is read back from offset 0.

use crate::report::{histogram, percentiles, server_usage};
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// rskafka workload options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Bootstrap server.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic (created with --partitions if absent).
    #[arg(long, default_value = "rsbench")]
    topic: String,
    /// Partitions of the topic; one producing task each.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Messages in total.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Records per produce request.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Server process id, to report its CPU seconds and peak RSS.
    #[arg(long)]
    server_pid: Option<u32>,
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(a))
}

async fn run_async(a: Args) -> anyhow::Result<()> {
    let client = Arc::new(
        ClientBuilder::new(vec![a.bootstrap.clone()])
            .build()
            .await
            .map_err(|e| anyhow::anyhow!("connect {}: {e}", a.bootstrap))?,
    );
    let controller = client
        .controller_client()
        .map_err(|e| anyhow::anyhow!("controller: {e}"))?;
    // An existing topic is fine.
    let _ = controller
        .create_topic(a.topic.clone(), a.partitions, 1, 30_000)
        .await;
    let cpu_before = a.server_pid.and_then(crate::report::cpu_seconds);
    let per_partition = a.messages / a.partitions as u64;
    let total = per_partition * a.partitions as u64;
    let value = vec![b'x'; a.record_size];
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..a.partitions {
        let client = client.clone();
        let topic = a.topic.clone();
        let value = value.clone();
        let batch = a.batch;
        tasks.push(tokio::spawn(async move {
            let pc = client
                .partition_client(topic, p, UnknownTopicHandling::Retry)
                .await
                .map_err(|e| anyhow::anyhow!("partition {p}: {e}"))?;
            let mut lat = histogram();
            let mut sent = 0u64;
            while sent < per_partition {
                let n = (per_partition - sent).min(batch as u64);
                let now = chrono::Utc::now();
                let records = (0..n)
                    .map(|_| Record {
                        key: None,
                        value: Some(value.clone()),
                        headers: BTreeMap::new(),
                        timestamp: now,
                    })
                    .collect();
                let t = Instant::now();
                pc.produce(records, Compression::NoCompression)
                    .await
                    .map_err(|e| anyhow::anyhow!("produce to {p}: {e}"))?;
                let _ = lat.record(t.elapsed().as_micros() as u64);
                sent += n;
            }
            Ok::<_, anyhow::Error>((pc, lat))
        }));
    }
    let mut clients = Vec::new();
    let mut lat = histogram();
    for t in tasks {
        let (pc, h) = t.await??;
        let _ = lat.add(&h);
        clients.push(pc);
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "rskafka: {total} msgs x {} B, {} partitions, batches of {}, acks=all",
        a.record_size, a.partitions, a.batch
    );
    println!(
        "produce: {:.0} msgs/s, {:.1} MB/s in {took:.2} s, errors 0",
        total as f64 / took,
        total as f64 * a.record_size as f64 / took / 1e6
    );
    println!("produce request latency: {}", percentiles(&lat, true));
    let start = Instant::now();
    let mut reads = Vec::new();
    for pc in clients {
        reads.push(tokio::spawn(async move {
            let mut offset = 0i64;
            let mut got = 0u64;
            let deadline = Instant::now() + Duration::from_secs(300);
            while got < per_partition && Instant::now() < deadline {
                let (records, _hw) = pc
                    .fetch_records(offset, 1..4 * 1024 * 1024, 500)
                    .await
                    .map_err(|e| anyhow::anyhow!("fetch: {e}"))?;
                for r in records {
                    if r.offset >= offset {
                        offset = r.offset + 1;
                        got += 1;
                    }
                }
            }
            Ok::<_, anyhow::Error>(got)
        }));
    }
    let mut got = 0;
    for r in reads {
        got += r.await??;
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "consume: {:.0} msgs/s in {took:.2} s, missing {}",
        got as f64 / took,
        total.saturating_sub(got)
    );
    server_usage(a.server_pid, cpu_before);
    Ok(())
}

//! `bench txn`: transactional produce throughput against idempotent produce in the same run
//! (librdkafka through `rdkafka`). `--producers` producers on their own threads, acks=all,
//! records spread over the topic's partitions; each transaction sends `n` records, flushes
//! and commits. Transactions are latency-bound (librdkafka waits a 1 ms timer before
//! AddPartitionsToTxn, then the produce and EndTxn round trips), so several producers, as
//! a Streams application's threads are, overlap each other's waits.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use std::time::{Duration, Instant};

/// Transaction workload options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic (created if missing).
    #[arg(long, default_value = "bench-txn")]
    topic: String,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Records per measured run.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Records per transaction, one run each.
    #[arg(long, value_delimiter = ',', default_values_t = vec![100u64, 1000])]
    txn_sizes: Vec<u64>,
    /// linger.ms of every producer of the run.
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
    /// batch.size of every producer (librdkafka's default).
    #[arg(long, default_value_t = 1_000_000)]
    batch_size: u64,
    /// Concurrent producers (threads), in both the idempotent and the transactional runs.
    #[arg(long, default_value_t = 1)]
    producers: u64,
}

fn producer(a: &Args, transactional_id: Option<&str>) -> anyhow::Result<BaseProducer> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &a.bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", a.linger_ms.to_string())
        .set("batch.size", a.batch_size.to_string())
        .set("queue.buffering.max.messages", "1000000");
    if let Some(id) = transactional_id {
        c.set("transactional.id", id);
    }
    // BaseProducer, polled here (see the flush loop in `run`).
    let p: BaseProducer = c.create()?;
    if transactional_id.is_some() {
        p.init_transactions(Duration::from_secs(30))?;
    }
    Ok(p)
}

fn send(p: &BaseProducer, a: &Args, i: u64, payload: &[u8]) {
    let partition = (i % a.partitions.max(1) as u64) as i32;
    let mut rec = BaseRecord::<(), [u8]>::to(&a.topic)
        .partition(partition)
        .payload(payload);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((_, r)) => {
                // Queue full: let deliveries drain.
                rec = r;
                p.poll(Duration::from_millis(1));
            }
        }
    }
}

fn report(what: &str, a: &Args, elapsed: Duration, baseline: Option<f64>) -> f64 {
    let rate = a.messages as f64 / elapsed.as_secs_f64();
    let mb = rate * a.record_size as f64 / 1e6;
    match baseline {
        Some(b) => println!(
            "{what}: {rate:.0} msgs/s, {mb:.1} MB/s in {:.2} s ({:.0}% of idempotent)",
            elapsed.as_secs_f64(),
            100.0 * rate / b
        ),
        None => println!(
            "{what}: {rate:.0} msgs/s, {mb:.1} MB/s in {:.2} s",
            elapsed.as_secs_f64()
        ),
    }
    rate
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(admin.create_topics(
        &[NewTopic::new(
            &a.topic,
            a.partitions,
            TopicReplication::Fixed(1),
        )],
        &AdminOptions::new(),
    ))?;
    println!(
        "txn: {} msgs x {} B over {} partitions, acks=all, linger.ms={}, {} producer(s)",
        a.messages, a.record_size, a.partitions, a.linger_ms, a.producers
    );
    let a = &a;
    let workers = a.producers.max(1);
    let share = a.messages / workers;

    let start = Instant::now();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..workers)
            .map(|w| s.spawn(move || idempotent_worker(a, w * share, share)))
            .collect();
        hs.into_iter()
            .try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("worker panicked"))?)
    })?;
    let base = report("idempotent", a, start.elapsed(), None);

    for &n in &a.txn_sizes {
        let start = Instant::now();
        let per: Vec<(Duration, Duration, u64)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..workers)
                .map(|w| s.spawn(move || txn_worker(a, n, w, w * share, share)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().map_err(|_| anyhow::anyhow!("worker panicked"))?)
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
        let elapsed = start.elapsed();
        let (flush_t, commit_t, txns) = per.iter().fold(
            (Duration::ZERO, Duration::ZERO, 0u64),
            |(f, c, t), (f2, c2, t2)| (f + *f2, c + *c2, t + t2),
        );
        println!(
            "  per transaction: flush {:.1} ms, commit {:.1} ms",
            flush_t.as_secs_f64() * 1e3 / txns.max(1) as f64,
            commit_t.as_secs_f64() * 1e3 / txns.max(1) as f64
        );
        report(&format!("transactions of {n}"), a, elapsed, Some(base));
    }
    Ok(())
}

fn idempotent_worker(a: &Args, first: u64, count: u64) -> anyhow::Result<()> {
    let payload = vec![b'x'; a.record_size];
    let p = producer(a, None)?;
    for i in first..first + count {
        send(&p, a, i, &payload);
    }
    p.flush(Duration::from_secs(120))?;
    Ok(())
}

/// Sends `count` records in transactions of `n`; returns the time spent flushing and
/// committing and the number of transactions.
fn txn_worker(
    a: &Args,
    n: u64,
    worker: u64,
    first: u64,
    count: u64,
) -> anyhow::Result<(Duration, Duration, u64)> {
    let payload = vec![b'x'; a.record_size];
    let id = format!("bench-txn-{}-{n}-{worker}", std::process::id());
    let p = producer(a, Some(&id))?;
    let mut i = first;
    let (mut flush_t, mut commit_t, mut txns) = (Duration::ZERO, Duration::ZERO, 0u64);
    while i < first + count {
        p.begin_transaction()?;
        let end = (i + n.max(1)).min(first + count);
        while i < end {
            send(&p, a, i, &payload);
            i += 1;
        }
        let t0 = Instant::now();
        // rdkafka's flush() polls in 100 ms steps once librdkafka's own flush(0) times
        // out: one flush(0) sends what lingers at once, then a short poll loop waits only
        // for the deliveries themselves.
        let _ = p.flush(Duration::ZERO);
        let deadline = Instant::now() + Duration::from_secs(60);
        while p.in_flight_count() > 0 && Instant::now() < deadline {
            p.poll(Duration::from_millis(1));
        }
        let t1 = Instant::now();
        p.commit_transaction(Duration::from_secs(60))?;
        flush_t += t1 - t0;
        commit_t += t1.elapsed();
        txns += 1;
    }
    Ok((flush_t, commit_t, txns))
}

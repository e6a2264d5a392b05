//! The Kafka workload: N producers and M consumers over P partitions.

use crate::report::{cpu_seconds, histogram, percentiles, server_usage};
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, TopicPartitionList};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kafka workload options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic (created with --partitions if absent).
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Replication factor of the topic when it is created.
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Producer clients.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumer clients (one group, partitions split among them); 0 for produce only.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Messages in total.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Producer batch.size in bytes.
    #[arg(long, default_value_t = 65536)]
    batch_size: usize,
    /// Producer linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "1")]
    acks: String,
    /// Compression codec: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Target rate in messages per second over all producers; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Server process id, to report its CPU seconds and peak RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Produce everything first, then consume it (each phase timed, and the server's CPU
    /// reported, on its own) instead of consuming while producing.
    #[arg(long)]
    sequential: bool,
    /// security.protocol: plaintext, ssl, sasl_plaintext or sasl_ssl.
    #[arg(long, default_value = "plaintext")]
    security_protocol: String,
    /// SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) for the sasl_* protocols.
    #[arg(long, default_value = "SCRAM-SHA-512")]
    sasl_mechanism: String,
    /// SASL user name.
    #[arg(long, default_value = "admin")]
    sasl_username: String,
    /// SASL password.
    #[arg(long, default_value = "admin-secret")]
    sasl_password: String,
    /// CA certificate (PEM) that signs the server's certificate, for ssl and sasl_ssl.
    #[arg(long)]
    ssl_ca_location: Option<String>,
}

/// A client configuration with the bootstrap servers and the security settings.
fn base(a: &Args) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &a.bootstrap)
        .set("security.protocol", &a.security_protocol);
    if a.security_protocol.starts_with("sasl") {
        c.set("sasl.mechanism", &a.sasl_mechanism)
            .set("sasl.username", &a.sasl_username)
            .set("sasl.password", &a.sasl_password);
    }
    if let Some(ca) = &a.ssl_ca_location {
        c.set("ssl.ca.location", ca);
    }
    c
}

struct Latency {
    ack: Mutex<Histogram<u64>>,
    errors: AtomicU64,
}

struct Ctx(Arc<Latency>);

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, r: &DeliveryResult<'_>, intended: Self::DeliveryOpaque) {
        match r {
            Ok(_) => {
                let us = intended.elapsed().as_micros().max(1) as u64;
                if let Ok(mut h) = self.0.ack.lock() {
                    let _ = h.record(us.min(60_000_000));
                }
            }
            Err(_) => {
                self.0.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn create_topic(a: &Args) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base(a).create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _ = rt.block_on(admin.create_topics(
        &[NewTopic::new(
            &a.topic,
            a.partitions,
            TopicReplication::Fixed(a.replication_factor),
        )],
        &AdminOptions::new(),
    ))?;
    Ok(())
}

fn produce(
    a: &Args,
    index: usize,
    count: u64,
    start: Instant,
    lat: Arc<Latency>,
) -> anyhow::Result<()> {
    let p: BaseProducer<Ctx> = base(a)
        .set("acks", &a.acks)
        .set("linger.ms", a.linger_ms.to_string())
        .set("batch.size", a.batch_size.to_string())
        .set("compression.codec", &a.compression)
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(Ctx(lat))?;
    let per_producer_rate = if a.rate > 0 {
        a.rate as f64 / a.producers as f64
    } else {
        0.0
    };
    let mut payload = vec![b'x'; a.record_size.max(8)];
    for i in 0..count {
        let intended = if per_producer_rate > 0.0 {
            let at = start + Duration::from_secs_f64(i as f64 / per_producer_rate);
            while Instant::now() < at {
                p.poll(Duration::ZERO);
                let left = at.saturating_duration_since(Instant::now());
                if left > Duration::from_micros(200) {
                    std::thread::sleep(left - Duration::from_micros(100));
                }
            }
            at
        } else {
            Instant::now()
        };
        // The first 8 bytes carry the intended send time for end-to-end latency.
        let wall = now_us().saturating_sub(intended.elapsed().as_micros() as u64);
        payload[..8].copy_from_slice(&wall.to_be_bytes());
        let mut record: BaseRecord<'_, (), [u8], Box<Instant>> =
            BaseRecord::with_opaque_to(&a.topic, Box::new(intended)).payload(&payload[..]);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    if !matches!(
                        e,
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull
                        )
                    ) {
                        anyhow::bail!("producer {index}: {e}");
                    }
                    record = r;
                    p.poll(Duration::from_millis(1));
                }
            }
        }
        if i % 1024 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(120))?;
    Ok(())
}

fn consume(
    a: &Args,
    index: usize,
    expected: Arc<AtomicU64>,
    e2e: Arc<Mutex<Histogram<u64>>>,
    from: Option<&[i64]>,
) -> anyhow::Result<()> {
    let c: BaseConsumer = base(a)
        .set("group.id", format!("bench-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        // librdkafka pauses a partition's fetching for this long whenever its local queue
        // holds queued.min.messages (default 1 s): with small records that stall, not the
        // server, would set the pace.
        .set("fetch.queue.backoff.ms", "5")
        .create()?;
    // Static assignment: consumer i reads partitions i, i + M, ...
    let mut tpl = TopicPartitionList::new();
    for p in (index as i32..a.partitions).step_by(a.consumers.max(1)) {
        let at = match from.and_then(|f| f.get(p as usize)) {
            Some(o) => rdkafka::Offset::Offset(*o),
            None => rdkafka::Offset::End,
        };
        tpl.add_partition_offset(&a.topic, p, at)?;
    }
    c.assign(&tpl)?;
    let mut local = histogram();
    let deadline = Instant::now() + Duration::from_secs(600);
    while expected.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m?;
            if let Some(v) = m.payload().filter(|v| v.len() >= 8) {
                let sent = u64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]);
                let _ = local.record(now_us().saturating_sub(sent).clamp(1, 60_000_000));
            }
            expected.fetch_sub(1, Ordering::Relaxed);
        }
    }
    if let Ok(mut h) = e2e.lock() {
        let _ = h.add(&local);
    }
    Ok(())
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    create_topic(&a)?;
    let lat = Arc::new(Latency {
        ack: Mutex::new(histogram()),
        errors: AtomicU64::new(0),
    });
    let e2e = Arc::new(Mutex::new(histogram()));
    let remaining = Arc::new(AtomicU64::new(a.messages));
    let a = Arc::new(a);
    if a.sequential {
        return run_sequential(&a, lat, e2e, remaining);
    }
    // Consumers first, positioned at the end, so they see exactly this run's messages.
    let mut consumers = Vec::new();
    for i in 0..a.consumers {
        let (a, rem, e2e) = (a.clone(), remaining.clone(), e2e.clone());
        consumers.push(std::thread::spawn(move || consume(&a, i, rem, e2e, None)));
    }
    if a.consumers > 0 {
        std::thread::sleep(Duration::from_secs(3)); // let assignments resolve End offsets
    }
    let cpu_before = a.server_pid.and_then(cpu_seconds);
    let start = Instant::now();
    produce_all(&a, &lat, start)?;
    let produced_in = start.elapsed();
    for c in consumers {
        c.join()
            .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    }
    let total_in = start.elapsed();
    println!(
        "kafka: {} msgs x {} B, {} producers, {} consumers, {} partitions, acks={}, compression={}, rate={}",
        a.messages, a.record_size, a.producers, a.consumers, a.partitions, a.acks, a.compression,
        if a.rate == 0 { "max".to_string() } else { a.rate.to_string() }
    );
    print_produce(&a, &lat, produced_in);
    if a.consumers > 0 {
        print_consume(a.messages, &remaining, total_in, "end to end");
        if let Ok(h) = e2e.lock() {
            println!("end-to-end latency: {}", percentiles(&h, false));
        }
    }
    server_usage(a.server_pid, cpu_before);
    Ok(())
}

/// Runs the producers (each on its own thread) until every message is acknowledged.
fn produce_all(a: &Arc<Args>, lat: &Arc<Latency>, start: Instant) -> anyhow::Result<()> {
    let mut producers = Vec::new();
    for i in 0..a.producers {
        let count = a.messages / a.producers as u64
            + u64::from((i as u64) < a.messages % a.producers as u64);
        let (a, lat) = (a.clone(), lat.clone());
        producers.push(std::thread::spawn(move || {
            produce(&a, i, count, start, lat)
        }));
    }
    for p in producers {
        p.join()
            .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    }
    Ok(())
}

fn print_produce(a: &Args, lat: &Latency, produced_in: Duration) {
    let mb = a.messages as f64 * a.record_size as f64 / 1e6;
    println!(
        "produce: {:.0} msgs/s, {:.1} MB/s in {:.2} s, errors {}",
        a.messages as f64 / produced_in.as_secs_f64(),
        mb / produced_in.as_secs_f64(),
        produced_in.as_secs_f64(),
        lat.errors.load(Ordering::Relaxed)
    );
    if let Ok(h) = lat.ack.lock() {
        println!("ack latency: {}", percentiles(&h, true));
    }
}

/// Produce, then consume from where the run started: each phase's rate and server CPU alone.
fn run_sequential(
    a: &Arc<Args>,
    lat: Arc<Latency>,
    e2e: Arc<Mutex<Histogram<u64>>>,
    remaining: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let probe: BaseConsumer = base(a).create()?;
    let mut starts = Vec::new();
    for p in 0..a.partitions {
        let (_, high) = probe.fetch_watermarks(&a.topic, p, Duration::from_secs(10))?;
        starts.push(high);
    }
    let cpu_before = a.server_pid.and_then(cpu_seconds);
    let start = Instant::now();
    produce_all(a, &lat, start)?;
    let produced_in = start.elapsed();
    println!(
        "kafka: {} msgs x {} B, {} producers, then {} consumers, {} partitions, acks={}, compression={}",
        a.messages, a.record_size, a.producers, a.consumers, a.partitions, a.acks, a.compression
    );
    print_produce(a, &lat, produced_in);
    server_usage(a.server_pid, cpu_before);
    if a.consumers == 0 {
        return Ok(());
    }
    let cpu_before = a.server_pid.and_then(cpu_seconds);
    let start = Instant::now();
    let mut consumers = Vec::new();
    for i in 0..a.consumers {
        let (a, rem, e2e, starts) = (a.clone(), remaining.clone(), e2e.clone(), starts.clone());
        consumers.push(std::thread::spawn(move || {
            consume(&a, i, rem, e2e, Some(&starts))
        }));
    }
    for c in consumers {
        c.join()
            .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    }
    let took = start.elapsed();
    print_consume(a.messages, &remaining, took, "after producing");
    server_usage(a.server_pid, cpu_before);
    Ok(())
}

/// The consume line: what arrived of `messages` (`remaining` were never seen) over `took`.
fn print_consume(messages: u64, remaining: &AtomicU64, took: Duration, how: &str) {
    let left = remaining.load(Ordering::Relaxed);
    println!(
        "consume: {:.0} msgs/s in {:.2} s ({how}), missing {left}",
        (messages - left) as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
    );
}

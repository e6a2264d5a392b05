//! `bench`: drives a running server and prints throughput, acknowledgement latency and
//! end-to-end latency percentiles, plus the server's CPU seconds and peak RSS.
//!
//! Latencies are measured from each message's *intended* send time (start + i / rate), so a
//! stall delays every later message's clock instead of hiding (no coordinated omission).
//! The Kafka workload uses librdkafka through the `rdkafka` crate, a third-party client.

mod cleaner;
mod kafka;
mod report;
mod rocketmq;
mod rskafka_bench;
mod txn;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Benchmark a running gateway (or any Kafka broker)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Kafka protocol workload (librdkafka producers and consumers).
    Kafka(kafka::Args),
    /// RocketMQ protocol workload (rocketmq-client-rust sync senders and a push consumer).
    Rocketmq(rocketmq::Args),
    /// Kafka protocol workload through rskafka (for brokers librdkafka cannot talk to).
    KafkaRs(rskafka_bench::Args),
    /// The log cleaner's throughput on one compacted partition (in process, no server).
    Cleaner(cleaner::Args),
    /// Transactional produce against idempotent produce (librdkafka).
    Txn(txn::Args),
}

fn main() -> anyhow::Result<()> {
    // The clients' own logs, on request (e.g. BENCH_LOG=warn).
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    match Cli::parse().cmd {
        Cmd::Kafka(a) => kafka::run(a),
        Cmd::Rocketmq(a) => rocketmq::run(a),
        Cmd::KafkaRs(a) => rskafka_bench::run(a),
        Cmd::Cleaner(a) => cleaner::run(a),
        Cmd::Txn(a) => txn::run(a),
    }
}

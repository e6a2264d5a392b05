//! `gateway`: one server that speaks the Kafka wire protocol and the RocketMQ remoting
//! protocol over one storage core.

mod admin;
mod auth;
mod broker;
mod cleaner;
mod cluster;
mod config;
mod connections;
mod dynamic_config;
mod group_offsets;
mod kafka;
mod kafka_client;
mod meta_file;
mod metrics_http;
mod mirror;
mod net;
mod producer_ids;
mod rocketmq;
mod server;
mod topics;
mod txn;

/// mimalloc: the request paths allocate many small, short-lived buffers (headers, property
/// maps, response frames); measured with `bench rocketmq` it costs less CPU than glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use std::path::PathBuf;

/// Command line. Every flag maps to a config key; `--set` reaches any key.
#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "Kafka- and RocketMQ-compatible message broker"
)]
struct Cli {
    /// TOML config file with Kafka's setting names (nested tables or dotted keys).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Data directory (Kafka's `log.dirs`). Default: ./data
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Kafka listener, HOST:PORT (port 0 picks a free port). Default: 0.0.0.0:9092
    #[arg(long)]
    kafka_addr: Option<String>,
    /// RocketMQ name-server listener, HOST:PORT. Default: 0.0.0.0:9876
    #[arg(long)]
    namesrv_addr: Option<String>,
    /// RocketMQ broker listener, HOST:PORT. Default: 0.0.0.0:10911
    #[arg(long)]
    broker_addr: Option<String>,
    /// Prometheus metrics listener (path /metrics), HOST:PORT. Default: 0.0.0.0:9464
    #[arg(long)]
    metrics_addr: Option<String>,
    /// Admin HTTP API listener (`gateway mirror` talks to it), HOST:PORT. Default:
    /// 127.0.0.1:9644
    #[arg(long)]
    admin_addr: Option<String>,
    /// Set any config key, e.g. --set num.partitions=3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// A SCRAM credential stored at first start, with `kafka-storage format --add-scram`
    /// syntax: 'SCRAM-SHA-512=[name=admin,password=admin-secret]' (repeatable).
    #[arg(long = "add-scram", value_name = "CREDENTIAL")]
    add_scram: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Commands that talk to a running server instead of being one.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Mirror links: gateway mirror [--admin http://HOST:PORT] create|list|status|pause|resume|failover|delete|reverse
    Mirror(admin::cli::MirrorCli),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .init();
    let cli = Cli::parse();
    if let Some(Command::Mirror(m)) = cli.command {
        return admin::cli::run(m);
    }
    let mut cfg = match config::Config::load(cli.config.as_ref(), &cli.sets) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gateway: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(d) = cli.data_dir {
        cfg.set("log.dirs", d.display().to_string());
    }
    for (flag, key) in [
        (cli.kafka_addr, "kafka.listen"),
        (cli.namesrv_addr, "rocketmq.namesrv.listen"),
        (cli.broker_addr, "rocketmq.broker.listen"),
        (cli.metrics_addr, "metrics.listen"),
        (cli.admin_addr, "admin.listen"),
    ] {
        if let Some(v) = flag {
            cfg.set(key, v);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gateway: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(cfg, cli.add_scram)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "gateway stopped");
            eprintln!("gateway: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

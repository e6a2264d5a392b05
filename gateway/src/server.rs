//! Server start-up: opens storage, binds every listener, prints the ready line, runs the
//! background maintenance, and shuts down cleanly on SIGTERM / SIGINT.

use crate::broker::{Advertised, Broker, Limits};
use crate::config::Config;
use crate::dynamic_config::DynamicConfig;
use crate::kafka::group::{GroupConfig, GroupCoordinator};
use crate::kafka::FetchSessions;
use crate::producer_ids::ProducerIds;
use anyhow::Context;
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::Duration;
use storage::Store;
use tokio::net::TcpListener;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The cluster id, generated once and kept in `meta/cluster.id` (Kafka's meta.properties).
fn cluster_id(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join("meta").join("cluster.id");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if !s.is_empty() {
            return Ok(s.to_string());
        }
    }
    // Kafka cluster ids are 22-character URL-safe base64 of a UUID.
    let id: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(22)
        .collect();
    std::fs::write(&path, &id)?;
    Ok(id)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Parses the PLAINTEXT entry of `advertised.listeners` (`PLAINTEXT://host:port`).
fn advertised_from_config(cfg: &Config) -> Option<Advertised> {
    let v = cfg.get("advertised.listeners")?;
    v.split(',').find_map(|l| {
        let rest = l.trim().split_once("://")?.1;
        let (host, port) = rest.rsplit_once(':')?;
        Some(Advertised {
            host: host.to_string(),
            port: port.parse().ok()?,
        })
    })
}

/// Runs the server until a shutdown signal.
pub(crate) async fn run(cfg: Config) -> anyhow::Result<()> {
    let data_dir = cfg.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let metrics = crate::metrics_http::install()?;

    let kafka_listener = TcpListener::bind(cfg.addr("kafka.listen")?)
        .await
        .context("binding the Kafka listener")?;
    let namesrv_listener = TcpListener::bind(cfg.addr("rocketmq.namesrv.listen")?)
        .await
        .context("binding the RocketMQ name-server listener")?;
    let broker_listener = TcpListener::bind(cfg.addr("rocketmq.broker.listen")?)
        .await
        .context("binding the RocketMQ broker listener")?;
    let metrics_listener = TcpListener::bind(cfg.addr("metrics.listen")?)
        .await
        .context("binding the metrics listener")?;
    let kafka_addr = kafka_listener.local_addr()?;

    let dynamic = DynamicConfig::open(data_dir.join("meta").join("broker-dynamic.json"));
    let mut log_defaults = cfg.broker_log_defaults();
    log_defaults.extend(dynamic.all());
    let started = std::time::Instant::now();
    let store = Arc::new(
        Store::open(&data_dir, log_defaults)
            .with_context(|| format!("opening storage in {}", data_dir.display()))?,
    );
    tracing::info!(
        topics = store.topics().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "storage recovered"
    );

    let advertised = advertised_from_config(&cfg).unwrap_or_else(|| Advertised {
        host: if kafka_addr.ip().is_unspecified() {
            hostname()
        } else {
            kafka_addr.ip().to_string()
        },
        port: kafka_addr.port() as i32,
    });
    let namesrv_addr = namesrv_listener.local_addr()?;
    let rmq_broker_addr = broker_listener.local_addr()?;
    let rmq_advertised = match cfg
        .get("rocketmq.broker.advertised")
        .filter(|s| !s.is_empty())
    {
        Some(a) => a
            .parse()
            .with_context(|| format!("rocketmq.broker.advertised={a} is not HOST:PORT"))?,
        None if rmq_broker_addr.ip().is_unspecified() => std::net::SocketAddr::new(
            std::net::IpAddr::from([127, 0, 0, 1]),
            rmq_broker_addr.port(),
        ),
        None => rmq_broker_addr,
    };

    // The stand-in listener only matters in a cluster.
    let standby_listener = match cfg.get("rocketmq.standby.listen").filter(|s| {
        !s.is_empty()
            && cfg
                .get("controller.quorum.voters")
                .is_some_and(|v| !v.trim().is_empty())
    }) {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("binding the RocketMQ standby listener on {a}"))?,
        ),
        None => None,
    };
    let standby_addr = match &standby_listener {
        Some(l) => {
            let a = l.local_addr()?;
            if a.ip().is_unspecified() {
                std::net::SocketAddr::new(rmq_advertised.ip(), a.port())
            } else {
                a
            }
        }
        None => rmq_advertised,
    };

    let cluster = match cfg
        .get("controller.quorum.voters")
        .filter(|v| !v.trim().is_empty())
    {
        None => None,
        Some(v) => {
            let voters = crate::cluster::parse_voters(v)?;
            let node_id = cfg.node_id();
            let listen = match cfg.get("controller.listen").filter(|s| !s.is_empty()) {
                Some(a) => a.to_string(),
                None => voters
                    .get(&(node_id as u64))
                    .cloned()
                    .with_context(|| {
                        format!("node.id {node_id} is not in controller.quorum.voters and controller.listen is not set")
                    })?,
            };
            let listener = TcpListener::bind(&listen)
                .await
                .with_context(|| format!("binding the controller listener on {listen}"))?;
            let controller_addr = voters
                .get(&(node_id as u64))
                .cloned()
                .unwrap_or_else(|| listen.clone());
            let info = crate::cluster::state::NodeInfo {
                id: node_id,
                host: advertised.host.clone(),
                kafka_port: advertised.port,
                rocketmq_addr: rmq_advertised.to_string(),
                rocketmq_name: crate::rocketmq::broker_name(&cfg, node_id),
                rocketmq_standby_addr: standby_listener
                    .as_ref()
                    .map(|_| standby_addr.to_string())
                    .unwrap_or_default(),
                controller_addr,
                rack: cfg
                    .get("broker.rack")
                    .filter(|r| !r.is_empty())
                    .map(str::to_string),
            };
            Some(crate::cluster::Cluster::start(&cfg, store.clone(), info, listener).await?)
        }
    };
    let groups = GroupCoordinator::new(
        GroupConfig {
            initial_rebalance_delay_ms: cfg.int("group.initial.rebalance.delay.ms")?.max(0) as u64,
            min_session_timeout_ms: cfg.int("group.min.session.timeout.ms")? as i32,
            max_session_timeout_ms: cfg.int("group.max.session.timeout.ms")? as i32,
            max_size: cfg.int("group.max.size")? as i32,
        },
        store.clone(),
    );
    let broker = Arc::new(Broker {
        node_id: cfg.node_id(),
        cluster_id: cluster_id(&data_dir)?,
        rack: cfg
            .get("broker.rack")
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        advertised: RwLock::new(advertised),
        limits: Limits {
            max_request_bytes: cfg.int("socket.request.max.bytes")?.max(1024) as usize,
        },
        fetch_sessions: FetchSessions::new(
            cfg.int("max.incremental.fetch.session.cache.slots")?.max(0) as usize,
        ),
        producer_ids: ProducerIds::open(
            data_dir.join("meta").join("producer-id-block"),
            // Node-unique ranges in a cluster (ids stay below 2^63 for node ids under 2^22).
            if cluster.is_some() {
                (cfg.node_id() as i64) << 40
            } else {
                0
            },
        )?,
        groups,
        dynamic,
        store: store.clone(),
        config: cfg.clone(),
        cluster: cluster.clone(),
    });

    tokio::spawn(crate::kafka::serve(broker.clone(), kafka_listener));
    crate::rocketmq::start(
        broker.clone(),
        rmq_advertised,
        namesrv_listener,
        broker_listener,
        standby_listener.map(|l| (l, standby_addr)),
    );
    let metrics_addr = metrics_listener.local_addr()?;
    tokio::spawn(crate::metrics_http::serve(
        metrics.clone(),
        metrics_listener,
    ));

    let retention_every = cfg.int("log.retention.check.interval.ms")?.max(10) as u64;
    {
        let store = store.clone();
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            let mut last_retention = std::time::Instant::now();
            loop {
                tick.tick().await;
                let retention = last_retention.elapsed() >= Duration::from_millis(retention_every);
                if retention {
                    last_retention = std::time::Instant::now();
                }
                let s = store.clone();
                let _ =
                    tokio::task::spawn_blocking(move || s.maintenance(now_ms(), retention)).await;
                crate::kafka::record_partition_metrics(&broker);
                metrics.run_upkeep();
            }
        });
    }

    // Tests and scripts read this line to learn the bound ports.
    if let Some(c) = &cluster {
        println!(
            "gateway ready kafka={kafka_addr} namesrv={namesrv_addr} broker={rmq_broker_addr} metrics={metrics_addr} node={} controller={}",
            c.node_id, c.info.controller_addr
        );
    } else {
        println!(
            "gateway ready kafka={kafka_addr} namesrv={namesrv_addr} broker={rmq_broker_addr} metrics={metrics_addr}"
        );
    }
    tracing::info!(kafka = %kafka_addr, metrics = %metrics_addr, node_id = broker.node_id, "gateway ready");

    shutdown_signal().await;
    tracing::info!("shutting down");
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.close()).await??;
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

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

/// First-start SCRAM credentials (`--add-scram`): stored once, so a restart with the same
/// flags neither changes nor resets a password changed since.
async fn bootstrap_scram(broker: &Arc<Broker>, values: &[String]) -> anyhow::Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let mut creds = Vec::new();
    for v in values {
        creds.push(crate::auth::parse_add_scram(v)?);
    }
    let marker = broker
        .store
        .data_dir()
        .join("meta")
        .join("scram-bootstrapped");
    if marker.exists() {
        return Ok(());
    }
    let change = crate::auth::state::SecurityChange::BootstrapScram(creds);
    crate::auth::audit_change(
        "bootstrap",
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        &change,
    );
    if broker.cluster.is_none() {
        broker
            .change_security(change)
            .await
            .context("storing --add-scram credentials")?;
        std::fs::write(&marker, b"")?;
        return Ok(());
    }
    // In a cluster the quorum may not have a controller yet: keep proposing until it does.
    // Every node may propose the same users; the first credential stored for a user wins.
    let broker = broker.clone();
    tokio::spawn(async move {
        loop {
            match broker.change_security(change.clone()).await {
                Ok(()) => {
                    if let Err(e) = std::fs::write(&marker, b"") {
                        tracing::warn!(error = %e, "cannot record that --add-scram ran");
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "--add-scram credentials not stored yet; retrying")
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    Ok(())
}

/// Runs the server until a shutdown signal.
pub(crate) async fn run(cfg: Config, cli_scram: Vec<String>) -> anyhow::Result<()> {
    let data_dir = cfg.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let metrics = crate::metrics_http::install()?;

    let host = hostname();
    let mut kafka_listeners = Vec::new();
    for spec in crate::auth::listeners::kafka_listeners(&cfg)? {
        let tcp = TcpListener::bind(spec.bind).await.with_context(|| {
            format!("binding the Kafka listener {} on {}", spec.name, spec.bind)
        })?;
        let local = tcp.local_addr()?;
        let l = crate::kafka::session::KafkaListener::build(&cfg, spec, local, &host)
            .context("configuring a Kafka listener")?;
        kafka_listeners.push((Arc::new(l), tcp));
    }
    crate::auth::tls::spawn_reloader();
    // The inter-broker listener: what other nodes connect to (replica fetches).
    let inter_broker = match cfg
        .get("inter.broker.listener.name")
        .filter(|s| !s.trim().is_empty())
    {
        Some(n) => kafka_listeners
            .iter()
            .find(|(l, _)| l.name.eq_ignore_ascii_case(n.trim()))
            .map(|(l, _)| l.clone())
            .with_context(|| format!("inter.broker.listener.name={n} is not in listeners"))?,
        None => kafka_listeners
            .first()
            .map(|(l, _)| l.clone())
            .context("no Kafka listener")?,
    };
    let clustered = cfg
        .get("controller.quorum.voters")
        .is_some_and(|v| !v.trim().is_empty());
    if clustered && inter_broker.protocol.sasl() {
        anyhow::bail!(
            "inter-broker listener {} uses SASL: nodes authenticate to each other with TLS certificates (cluster.ssl.*), use a PLAINTEXT or SSL listener",
            inter_broker.name
        );
    }
    // The ready line's `kafka=` field: the first PLAINTEXT listener, else the first one.
    let kafka_addr = kafka_listeners
        .iter()
        .find(|(l, _)| l.protocol == crate::auth::listeners::SecurityProtocol::Plaintext)
        .or_else(|| kafka_listeners.first())
        .map(|(l, _)| l.local)
        .context("no Kafka listener")?;
    let namesrv_listener = TcpListener::bind(cfg.addr("rocketmq.namesrv.listen")?)
        .await
        .context("binding the RocketMQ name-server listener")?;
    let broker_listener = TcpListener::bind(cfg.addr("rocketmq.broker.listen")?)
        .await
        .context("binding the RocketMQ broker listener")?;
    let metrics_listener = TcpListener::bind(cfg.addr("metrics.listen")?)
        .await
        .context("binding the metrics listener")?;
    let admin_listener = crate::admin::bind(&cfg).await?;

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

    let advertised = Advertised {
        host: inter_broker.advertised.0.clone(),
        port: inter_broker.advertised.1,
    };
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

    let security = crate::auth::Security::open(&cfg, clustered)?;
    let mirrors = crate::mirror::Mirrors::open(&cfg, clustered)?;
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
                listeners: kafka_listeners
                    .iter()
                    .map(|(l, _)| (l.name.clone(), l.advertised.clone()))
                    .collect(),
            };
            Some(
                crate::cluster::Cluster::start(
                    &cfg,
                    store.clone(),
                    info,
                    listener,
                    security.clone(),
                    mirrors.clone(),
                    (inter_broker.name.clone(), inter_broker.protocol.tls()),
                )
                .await?,
            )
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
        txns: crate::txn::Transactions::new(cfg.int("transaction.max.timeout.ms")?.max(1)),
        store: store.clone(),
        config: cfg.clone(),
        cluster: cluster.clone(),
        security: security.clone(),
        connections: crate::connections::Connections::new(&cfg)?,
        cluster_trust: match cfg
            .get("cluster.ssl.truststore.location")
            .filter(|s| !s.trim().is_empty())
        {
            Some(p) => Some(crate::auth::tls::ClusterTrust::load(std::path::Path::new(
                p,
            ))?),
            None => None,
        },
        listeners: kafka_listeners.iter().map(|(l, _)| l.clone()).collect(),
        quotas: crate::auth::quota::Quotas::new(
            Duration::from_secs(cfg.int("quota.window.size.seconds")?.max(1) as u64),
            cfg.int("quota.window.num")?.max(2) as u64,
        ),
        mirrors: mirrors.clone(),
        rocketmq_online: RwLock::new(None),
    });
    mirrors.start(&broker);
    bootstrap_scram(&broker, &cli_scram).await?;

    let mut listener_fields = Vec::new();
    for (l, tcp) in kafka_listeners {
        listener_fields.push(format!(
            "listener.{}={}://{}",
            l.name,
            l.protocol.name(),
            l.local
        ));
        tokio::spawn(crate::kafka::listener::serve(broker.clone(), l, tcp));
    }
    crate::rocketmq::start(
        broker.clone(),
        rmq_advertised,
        namesrv_listener,
        broker_listener,
        standby_listener.map(|l| (l, standby_addr)),
    )?;
    let metrics_addr = metrics_listener.local_addr()?;
    let metrics_tls = if cfg.bool("metrics.ssl.enable")? {
        let files = crate::auth::tls::TlsFiles::from_config_for(&cfg, "METRICS", false)?;
        Some(crate::auth::tls::ReloadingServer::new("METRICS", files)?)
    } else {
        None
    };
    tokio::spawn(crate::metrics_http::serve(
        metrics.clone(),
        metrics_listener,
        metrics_tls,
    ));

    let admin_addr = match admin_listener {
        Some(l) => {
            let addr = l.local_addr()?;
            let tls = if cfg.bool("admin.ssl.enable")? {
                let files = crate::auth::tls::TlsFiles::from_config_for(&cfg, "ADMIN", false)?;
                Some(crate::auth::tls::ReloadingServer::new("ADMIN", files)?)
            } else {
                None
            };
            tokio::spawn(crate::admin::serve(broker.clone(), l, tls));
            addr.to_string()
        }
        None => "none".to_string(),
    };

    if cfg.bool("log.cleaner.enable")? {
        let every = Duration::from_millis(cfg.int("log.cleaner.backoff.ms")?.max(10) as u64);
        let rate = cfg
            .get("log.cleaner.io.max.bytes.per.second")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::INFINITY);
        tokio::spawn(crate::cleaner::run(store.clone(), every, rate));
    }

    {
        let every = cfg
            .int("transaction.abort.timed.out.transaction.cleanup.interval.ms")?
            .max(10) as u64;
        tokio::spawn(crate::txn::expiry::run(
            broker.clone(),
            Duration::from_millis(every),
        ));
    }

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

    // Tests and scripts read this line to learn the bound ports; every Kafka listener is
    // named with its security protocol (`listener.NAME=PROTOCOL://host:port`).
    let listeners = listener_fields.join(" ");
    if let Some(c) = &cluster {
        println!(
            "gateway ready kafka={kafka_addr} namesrv={namesrv_addr} broker={rmq_broker_addr} metrics={metrics_addr} admin={admin_addr} node={} controller={} {listeners}",
            c.node_id, c.info.controller_addr
        );
    } else {
        println!(
            "gateway ready kafka={kafka_addr} namesrv={namesrv_addr} broker={rmq_broker_addr} metrics={metrics_addr} admin={admin_addr} {listeners}"
        );
    }
    tracing::info!(kafka = %kafka_addr, metrics = %metrics_addr, node_id = broker.node_id, "gateway ready");

    shutdown_signal().await;
    tracing::info!("shutting down");
    if let Some(c) = &broker.cluster {
        if cfg.bool("controlled.shutdown.enable")? {
            c.controlled_shutdown().await;
        }
    }
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

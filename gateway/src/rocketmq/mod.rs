//! The RocketMQ 4.x remoting front end, in both roles: name server (routes, cluster info,
//! topic lists, KV config) and broker (send, pull, offsets, heartbeats, admin). Every node
//! answers both from the same metadata and storage, so there is no separate name-server tier.
//!
//! Unlike Kafka, RocketMQ matches responses by `opaque` and clients keep many long-polling
//! pulls in flight on one connection, so each request runs as its own task and responses go
//! out as they complete.

// Handlers return their error *response* as the Err side; it is built once per failed request.
#![allow(clippy::result_large_err)]

pub(crate) mod acl;
mod acl_config;
mod admin;
mod clients;
mod convert;
pub(crate) mod delay;
mod heartbeat;
mod lock;
mod namesrv;
mod offsets;
mod pull;
mod query;
mod queues;
mod retry;
mod send;
pub(crate) mod transaction;

use crate::broker::Broker;
use bytes::{Bytes, BytesMut};
use clients::{Clients, ConnHandle};
use codecs::rocketmq::codes::{request as rq, response as rs};
use codecs::rocketmq::{self as rmq, RemotingCommand};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Growth step of a request buffer while its bytes arrive.
const READ_CHUNK: usize = 256 * 1024;

/// Which listener a connection came in on (both answer every request; the role only
/// labels logs and metrics).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    NameServer,
    Broker,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::NameServer => "namesrv",
            Role::Broker => "broker",
        }
    }
}

/// This node's RocketMQ broker name: `rocketmq.broker.name`, else `broker-<node id>`.
pub(crate) fn broker_name(cfg: &crate::config::Config, node_id: i32) -> String {
    cfg.get("rocketmq.broker.name")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("broker-{node_id}"))
}

/// RocketMQ identity and state of this node.
pub(crate) struct RocketMq {
    pub(crate) broker: Arc<Broker>,
    pub(crate) clients: Clients,
    pub(crate) locks: lock::Locks,
    pub(crate) kv: namesrv::KvConfig,
    pub(crate) transactions: transaction::Transactions,
    pub(crate) delay_levels: Vec<u64>,
    pub(crate) delay_wakeup: tokio::sync::Notify,
    pub(crate) cluster: String,
    pub(crate) broker_name: String,
    /// Address clients use for the broker role.
    pub(crate) broker_addr: SocketAddr,
    pub(crate) auto_create: bool,
    /// The stand-in instance: serves the queues of the dead broker this node stands in for
    /// (see `queues.rs`), on its own listener.
    pub(crate) standby: bool,
    pub(crate) max_frame: usize,
    next_conn: AtomicU64,
    next_opaque: AtomicI32,
    pub(crate) started: Instant,
    /// `rocketmq.acl.enable`: the accounts of `plain_acl.yml`.
    pub(crate) acl: Option<Arc<acl::PlainAccounts>>,
    /// `rocketmq.tls.server.mode` and its key material.
    tls: Tls,
}

/// RocketMQ's `tls.server.mode`: plaintext only, both on one port (told apart by the first
/// byte), or TLS only.
#[derive(Clone)]
pub(crate) enum Tls {
    Disabled,
    Permissive(Arc<crate::auth::tls::ReloadingServer>),
    Enforcing(Arc<crate::auth::tls::ReloadingServer>),
}

impl Tls {
    /// From `rocketmq.tls.server.mode` and the `ssl.*` key material (listener name
    /// `rocketmq` for `listener.name.rocketmq.*` overrides).
    pub(crate) fn from_config(cfg: &crate::config::Config) -> anyhow::Result<Self> {
        let mode = cfg
            .get("rocketmq.tls.server.mode")
            .unwrap_or("disabled")
            .trim()
            .to_ascii_lowercase();
        let server = || -> anyhow::Result<Arc<crate::auth::tls::ReloadingServer>> {
            let files = crate::auth::tls::TlsFiles::from_config_for(cfg, "ROCKETMQ", false)?;
            Ok(crate::auth::tls::ReloadingServer::new("ROCKETMQ", files)?)
        };
        Ok(match mode.as_str() {
            "disabled" => Self::Disabled,
            "permissive" => Self::Permissive(server()?),
            "enforcing" => Self::Enforcing(server()?),
            other => anyhow::bail!(
                "rocketmq.tls.server.mode={other}: expected disabled, permissive or enforcing"
            ),
        })
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Permissive(_) => "permissive",
            Self::Enforcing(_) => "enforcing",
        }
    }
}

impl RocketMq {
    pub(crate) fn new(
        broker: Arc<Broker>,
        broker_addr: SocketAddr,
        standby: bool,
        acl: Option<Arc<acl::PlainAccounts>>,
        tls: Tls,
    ) -> Arc<Self> {
        let cfg = &broker.config;
        let broker_name = broker_name(cfg, broker.node_id);
        Arc::new(Self {
            cluster: cfg
                .get("rocketmq.cluster.name")
                .unwrap_or("DefaultCluster")
                .to_string(),
            broker_name,
            broker_addr,
            standby,
            auto_create: cfg
                .bool("rocketmq.auto.create.topic.enable")
                .unwrap_or(true),
            max_frame: cfg
                .int("rocketmq.max.frame.bytes")
                .unwrap_or(rmq::frame::DEFAULT_MAX_FRAME_BYTES as i64)
                .max(1024) as usize,
            clients: Clients::default(),
            locks: lock::Locks::default(),
            kv: namesrv::KvConfig::open(
                broker
                    .store
                    .data_dir()
                    .join("meta")
                    .join("rocketmq-kv.json"),
            ),
            transactions: transaction::Transactions::default(),
            delay_levels: delay::level_delays(
                cfg.get("messageDelayLevel")
                    .unwrap_or(delay::DEFAULT_LEVELS),
            ),
            delay_wakeup: tokio::sync::Notify::new(),
            next_conn: AtomicU64::new(1),
            next_opaque: AtomicI32::new(1),
            started: Instant::now(),
            acl,
            tls,
            broker,
        })
    }

    /// Sends a broker-initiated oneway request (notifications, transaction check-backs).
    pub(crate) fn push(&self, conn: &ConnHandle, mut cmd: RemotingCommand) {
        cmd.opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        cmd.set_oneway(true);
        if conn.tx.try_send(rmq::encode(&cmd)).is_err() {
            tracing::warn!(peer = %conn.peer, code = cmd.code, "client connection busy or closed; notification dropped");
        }
    }

    /// Tells every member of the groups that membership changed.
    pub(crate) fn notify_groups_changed(&self, groups: &[String]) {
        for g in groups {
            for conn in self.clients.consumer_conns(g) {
                let cmd = RemotingCommand::new_request(
                    rq::NOTIFY_CONSUMER_IDS_CHANGED,
                    Default::default(),
                )
                .with_ext("consumerGroup", g);
                self.push(&conn, cmd);
            }
        }
    }
}

/// Starts both RocketMQ listeners and the background services (delayed delivery,
/// transaction check-back, client expiry).
pub(crate) fn start(
    broker: Arc<Broker>,
    advertised: SocketAddr,
    namesrv: TcpListener,
    broker_listener: TcpListener,
    standby: Option<(TcpListener, SocketAddr)>,
) -> anyhow::Result<()> {
    let cfg = &broker.config;
    let acl = if cfg.bool("rocketmq.acl.enable")? {
        let path = match cfg
            .get("rocketmq.acl.file")
            .filter(|p| !p.trim().is_empty())
        {
            Some(p) => std::path::PathBuf::from(p),
            None => broker.store.data_dir().join("plain_acl.yml"),
        };
        let accounts = acl::PlainAccounts::open(path)?;
        accounts.watch();
        Some(accounts)
    } else {
        None
    };
    let tls = Tls::from_config(cfg)?;
    let rmq = RocketMq::new(broker.clone(), advertised, false, acl.clone(), tls.clone());
    // Mirror links leave the offsets of groups with consumers online alone.
    let weak = Arc::downgrade(&rmq);
    *broker.rocketmq_online.write() = Some(Arc::new(move |group: &str| {
        weak.upgrade()
            .is_some_and(|r| !r.clients.consumer_conns(group).is_empty())
    }));
    tokio::spawn(serve(rmq.clone(), namesrv, Role::NameServer));
    tokio::spawn(serve(rmq.clone(), broker_listener, Role::Broker));
    run_broker_duties(rmq);
    if let Some((listener, addr)) = standby {
        let srmq = RocketMq::new(broker, addr, true, acl, tls);
        tokio::spawn(serve(srmq.clone(), listener, Role::Broker));
        run_broker_duties(srmq);
    }
    Ok(())
}

/// A broker's background work: delayed delivery, transaction check-backs, client expiry.
fn run_broker_duties(rmq: Arc<RocketMq>) {
    let broker = &rmq.broker;
    let check_interval = broker
        .config
        .int("rocketmq.transaction.check.interval.ms")
        .unwrap_or(60_000)
        .max(100) as u64;
    let tx_timeout = broker
        .config
        .int("rocketmq.transaction.timeout.ms")
        .unwrap_or(6_000)
        .max(0) as u64;
    tokio::spawn(delay::run(rmq.clone()));
    tokio::spawn(transaction::run(
        rmq.clone(),
        std::time::Duration::from_millis(check_interval),
        std::time::Duration::from_millis(tx_timeout),
    ));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            tick.tick().await;
            let changed = rmq
                .clients
                .remove_where(|_, seen| seen.elapsed() > clients::CLIENT_EXPIRY);
            rmq.notify_groups_changed(&changed);
        }
    });
}

/// Accepts connections on one RocketMQ listener.
pub(crate) async fn serve(rmq: Arc<RocketMq>, listener: TcpListener, role: Role) {
    loop {
        let slot = rmq.broker.connections.slot().await;
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(permit) = rmq.broker.connections.admit(slot, peer.ip(), role.label())
                else {
                    continue;
                };
                let rmq = rmq.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    metrics::gauge!("rocketmq_connections", "role" => role.label()).increment(1.0);
                    let id = rmq.next_conn.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = accept(&rmq, stream, peer, role, id).await {
                        tracing::warn!(%peer, role = role.label(), error = %e, "closing RocketMQ connection");
                    }
                    let changed = rmq.clients.remove_where(|c, _| c.id == id);
                    rmq.notify_groups_changed(&changed);
                    metrics::gauge!("rocketmq_connections", "role" => role.label()).decrement(1.0);
                });
            }
            Err(e) => {
                tracing::error!(error = %e, role = role.label(), "RocketMQ accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Sets up one accepted connection: TLS as `rocketmq.tls.server.mode` says (permissive tells
/// a TLS ClientHello from a remoting frame by its first byte, as RocketMQ does).
async fn accept(
    rmq: &Arc<RocketMq>,
    stream: TcpStream,
    peer: SocketAddr,
    role: Role,
    id: u64,
) -> Result<(), rmq::RocketMqError> {
    let _ = stream.set_nodelay(true);
    let tls = match &rmq.tls {
        Tls::Disabled => None,
        Tls::Enforcing(t) => Some(t.clone()),
        Tls::Permissive(t) => {
            let mut first = [0u8; 2];
            let n =
                tokio::time::timeout(std::time::Duration::from_secs(30), stream.peek(&mut first))
                    .await
                    .unwrap_or(Ok(0))
                    .unwrap_or(0);
            crate::auth::tls::looks_like_tls(&first[..n]).then(|| t.clone())
        }
    };
    match tls {
        None => {
            let (rd, wr) = stream.into_split();
            connection(rmq, rd, wr, peer, role, id).await
        }
        Some(t) => {
            let handshake = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                t.acceptor().accept(stream),
            )
            .await;
            match handshake {
                Ok(Ok(s)) => {
                    let (rd, wr) = tokio::io::split(s);
                    connection(rmq, rd, wr, peer, role, id).await
                }
                Ok(Err(e)) => {
                    metrics::counter!("tls_handshake_failures_total", "listener" => role.label(), "reason" => "handshake").increment(1);
                    tracing::warn!(%peer, role = role.label(), mode = rmq.tls.label(), error = %e, "TLS handshake failed");
                    Ok(())
                }
                Err(_) => {
                    metrics::counter!("tls_handshake_failures_total", "listener" => role.label(), "reason" => "timeout").increment(1);
                    tracing::warn!(%peer, role = role.label(), "TLS handshake timed out");
                    Ok(())
                }
            }
        }
    }
}

async fn connection<R, W>(
    rmq: &Arc<RocketMq>,
    rd: R,
    mut wr: W,
    peer: SocketAddr,
    role: Role,
    id: u64,
) -> Result<(), rmq::RocketMqError>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut rd = tokio::io::BufReader::with_capacity(crate::net::READ_BUFFER, rd);
    let (tx, mut rx) = mpsc::channel::<Bytes>(1024);
    let writer = tokio::spawn(async move {
        let mut next = rx.recv().await;
        while let Some(buf) = next {
            match crate::net::write_batch(&mut wr, buf, || rx.try_recv().ok()).await {
                Ok(Some(held)) => next = Some(held),
                Ok(None) => next = rx.recv().await,
                Err(_) => break,
            }
        }
        let _ = wr.shutdown().await;
    });
    let conn = ConnHandle { id, peer, tx };
    let result = async {
        loop {
            let mut prefix = [0u8; 4];
            if rd.read_exact(&mut prefix).await.is_err() {
                return Ok(());
            }
            if crate::auth::tls::looks_like_tls(&prefix) {
                metrics::counter!("tls_handshake_failures_total", "listener" => role.label(), "reason" => "tls_on_plaintext").increment(1);
                tracing::warn!(%peer, role = role.label(), "TLS handshake on a plaintext RocketMQ port; closing");
                return Ok(());
            }
            let size = rmq::frame_size(prefix, rmq.max_frame)?;
            let mut buf = BytesMut::with_capacity(size.min(READ_CHUNK));
            while buf.len() < size {
                buf.reserve((size - buf.len()).min(READ_CHUNK));
                let want = (size - buf.len()) as u64;
                match (&mut rd).take(want).read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => {}
                }
            }
            let cmd = rmq::decode(buf.freeze())?;
            if cmd.is_response() {
                // Answers to our oneway pushes never come; anything else is ignored.
                tracing::debug!(%peer, code = cmd.code, opaque = cmd.opaque, "ignoring response from client");
                continue;
            }
            // Sends on one node answer without waiting on anything but the append: they run
            // right here, which saves a task and a cross-thread wake-up per message. Every
            // other request (pulls wait for messages, cluster sends wait for replicas) is
            // its own task.
            let inline = rmq.broker.cluster.is_none()
                && matches!(
                    cmd.code,
                    rmq::codes::request::SEND_MESSAGE
                        | rmq::codes::request::SEND_MESSAGE_V2
                        | rmq::codes::request::SEND_BATCH_MESSAGE
                );
            if inline {
                process(rmq, &conn, role, cmd).await;
            } else {
                let rmq = rmq.clone();
                let conn = conn.clone();
                tokio::spawn(async move { process(&rmq, &conn, role, cmd).await });
            }
        }
    }
    .await;
    drop(conn);
    let _ = writer.await;
    result
}

/// Handles one request and queues its answer (none for oneway requests).
async fn process(rmq: &Arc<RocketMq>, conn: &ConnHandle, role: Role, cmd: RemotingCommand) {
    let started = Instant::now();
    let code = cmd.code;
    let oneway = cmd.is_oneway();
    let opaque = cmd.opaque;
    let serialize = cmd.serialize_type;
    let name = rmq::codes::request_name(code);
    let principal = match acl::check(rmq.acl.as_deref(), &rmq.broker.security, &cmd, conn.peer) {
        Ok(p) => p,
        Err(refusal) => {
            metrics::counter!("rocketmq_auth_failures_total", "code" => name).increment(1);
            tracing::warn!(target: "audit", peer = %conn.peer, code, name, access_key = cmd.ext("AccessKey").unwrap_or(""), remark = %refusal.remark, "RocketMQ request refused");
            if !oneway {
                let mut resp = reply(refusal.code, refusal.remark);
                resp.opaque = opaque;
                resp.flag |= rmq::frame::FLAG_RESPONSE;
                resp.serialize_type = serialize;
                let _ = conn.tx.send(rmq::encode(&resp)).await;
            }
            return;
        }
    };
    let sent_bytes = match code {
        rq::SEND_MESSAGE | rq::SEND_MESSAGE_V2 | rq::SEND_BATCH_MESSAGE => cmd.body.len(),
        _ => 0,
    };
    let mut resp = handle(rmq, conn, role, cmd).await;
    // The byte-rate quotas of the principal: a send or pull over its quota is answered
    // after the throttle time (RocketMQ has no throttle field).
    let (kind, amount) = if sent_bytes > 0 {
        (Some(crate::auth::quota::Kind::Produce), sent_bytes)
    } else if code == rq::PULL_MESSAGE {
        (Some(crate::auth::quota::Kind::Fetch), resp.body.len())
    } else {
        (None, 0)
    };
    if let Some(kind) = kind.filter(|_| amount > 0 && resp.code == rs::SUCCESS) {
        let snap = rmq.broker.security.snapshot();
        let ms = rmq.broker.quotas.record(
            &snap.state,
            kind,
            crate::auth::principal::name_of(&principal),
            "",
            amount as f64,
        );
        if ms > 0 {
            metrics::counter!("rocketmq_throttled_requests_total", "code" => name).increment(1);
            tokio::time::sleep(std::time::Duration::from_millis(ms as u64)).await;
        }
    }
    metrics::counter!("rocketmq_requests_total", "code" => name).increment(1);
    metrics::histogram!("rocketmq_request_duration_seconds", "code" => name)
        .record(started.elapsed().as_secs_f64());
    if oneway {
        // Nobody hears a oneway request's answer: an error must at least be logged.
        if resp.code != rs::SUCCESS {
            tracing::warn!(peer = %conn.peer, code, name, response = resp.code, remark = ?resp.remark, "oneway request failed");
        }
        return;
    }
    if resp.code != rs::SUCCESS {
        metrics::counter!("rocketmq_request_errors_total", "code" => name).increment(1);
    }
    resp.opaque = opaque;
    resp.flag |= rmq::frame::FLAG_RESPONSE;
    resp.serialize_type = serialize;
    let _ = conn.tx.send(rmq::encode(&resp)).await;
}

/// Gives this broker a system or group topic (retry, DLQ, schedule, half) with at least
/// `queues` queues of its own.
pub(crate) async fn ensure_topic(rmq: &RocketMq, topic: &str, queues: i32) -> Result<(), String> {
    if rmq.queue_partitions(topic).len() as i32 >= queues {
        return Ok(());
    }
    if rmq.standby {
        return Err(format!(
            "{topic}: a stand-in broker does not create queues for the broker it replaces"
        ));
    }
    rmq.broker
        .ensure_queues(topic, queues)
        .await
        .map_err(|e| e.to_string())
}

/// A response with a code and remark.
pub(crate) fn reply(code: i32, remark: impl Into<String>) -> RemotingCommand {
    RemotingCommand::new_response(code, 0, Some(remark.into()))
}

/// A SUCCESS response without remark.
pub(crate) fn ok() -> RemotingCommand {
    RemotingCommand::new_response(rs::SUCCESS, 0, None)
}

/// Dispatches one request to its handler.
async fn handle(
    rmq: &Arc<RocketMq>,
    conn: &ConnHandle,
    role: Role,
    cmd: RemotingCommand,
) -> RemotingCommand {
    let code = cmd.code;
    tracing::debug!(peer = %conn.peer, role = role.label(), code, name = rmq::codes::request_name(code), ext = ?cmd.ext_fields, "request");
    let resp = match code {
        rq::GET_ROUTEINFO_BY_TOPIC => namesrv::route(rmq, &cmd),
        rq::GET_BROKER_CLUSTER_INFO => namesrv::cluster_info(rmq),
        rq::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => namesrv::topic_list(rmq),
        rq::GET_KV_CONFIG => namesrv::get_kv_config(rmq, &cmd),
        rq::PUT_KV_CONFIG => namesrv::put_kv_config(rmq, &cmd),
        rq::DELETE_KV_CONFIG => namesrv::delete_kv_config(rmq, &cmd),
        rq::REGISTER_BROKER | rq::UNREGISTER_BROKER => ok(),
        rq::SEND_MESSAGE | rq::SEND_MESSAGE_V2 | rq::SEND_BATCH_MESSAGE => {
            send::send(rmq, conn, cmd).await
        }
        rq::PULL_MESSAGE => pull::pull(rmq, cmd).await,
        rq::QUERY_CONSUMER_OFFSET => offsets::query_consumer_offset(rmq, &cmd),
        rq::UPDATE_CONSUMER_OFFSET => offsets::update_consumer_offset(rmq, &cmd).await,
        rq::GET_MAX_OFFSET => offsets::max_offset(rmq, &cmd),
        rq::GET_MIN_OFFSET => offsets::min_offset(rmq, &cmd),
        rq::SEARCH_OFFSET_BY_TIMESTAMP => offsets::search_by_timestamp(rmq, &cmd),
        rq::GET_EARLIEST_MSG_STORETIME => offsets::earliest_store_time(rmq, &cmd),
        rq::HEART_BEAT => heartbeat::heartbeat(rmq, conn, &cmd).await,
        rq::UNREGISTER_CLIENT => heartbeat::unregister(rmq, &cmd),
        rq::GET_CONSUMER_LIST_BY_GROUP => heartbeat::consumer_list(rmq, &cmd),
        rq::CONSUMER_SEND_MSG_BACK => retry::send_back(rmq, &cmd).await,
        rq::END_TRANSACTION => transaction::end(rmq, conn, &cmd).await,
        rq::QUERY_MESSAGE => query::query(rmq, &cmd),
        rq::VIEW_MESSAGE_BY_ID => query::view_by_id(rmq, &cmd),
        rq::LOCK_BATCH_MQ => lock::lock(rmq, &cmd),
        rq::UNLOCK_BATCH_MQ => lock::unlock(rmq, &cmd),
        rq::UPDATE_AND_CREATE_TOPIC => admin::create_topic(rmq, &cmd).await,
        rq::DELETE_TOPIC_IN_BROKER | rq::DELETE_TOPIC_IN_NAMESRV => {
            admin::delete_topic(rmq, &cmd).await
        }
        rq::GET_BROKER_RUNTIME_INFO => admin::runtime_info(rmq),
        rq::GET_ALL_TOPIC_CONFIG => admin::all_topic_config(rmq),
        rq::GET_CONSUMER_CONNECTION_LIST => admin::consumer_connections(rmq, &cmd),
        rq::GET_CONSUME_STATS => admin::consume_stats(rmq, &cmd),
        rq::GET_TOPIC_STATS_INFO => admin::topic_stats(rmq, &cmd),
        rq::QUERY_TOPIC_CONSUME_BY_WHO => admin::consumed_by(rmq, &cmd),
        rq::UPDATE_AND_CREATE_ACL_CONFIG => acl_config::update_account(rmq, &cmd, conn.peer).await,
        rq::DELETE_ACL_CONFIG => acl_config::delete_account(rmq, &cmd, conn.peer).await,
        rq::GET_BROKER_CLUSTER_ACL_INFO => acl_config::acl_info(rmq),
        rq::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG => {
            acl_config::update_global_white(rmq, &cmd, conn.peer).await
        }
        rq::GET_BROKER_CLUSTER_ACL_CONFIG => acl_config::acl_config(rmq),
        _ => {
            tracing::info!(peer = %conn.peer, role = role.label(), code, name = rmq::codes::request_name(code), "request code not supported");
            reply(
                rs::REQUEST_CODE_NOT_SUPPORTED,
                format!(" request type {code} not supported"),
            )
        }
    };
    if resp.code != rs::SUCCESS {
        tracing::debug!(peer = %conn.peer, code, response = resp.code, remark = ?resp.remark, "request answered with an error");
    }
    resp
}

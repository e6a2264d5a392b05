//! Cluster mode: the metadata quorum (openraft over the controller port), the controller's
//! duties (node liveness, elections through applied commands), the local materialisation of
//! the metadata into the storage core, and partition replication.
//!
//! Without `controller.quorum.voters` the server runs as the single-node default and none of
//! this starts.

pub(crate) mod fetcher;
mod liveness;
pub(crate) mod raft_store;
pub(crate) mod replica;
pub(crate) mod rpc;
pub(crate) mod state;
pub(crate) mod throttle;

use crate::config::Config;
use anyhow::Context;
use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use raft_store::{LogStore, NodeId, StateMachine, TypeConfig};
use replica::ReplicaManager;
use rpc::{Request, Response, RpcClient, WriteReply};
use state::{ClusterState, Command, NodeInfo, Outcome};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{Store, TopicMeta};
use tokio::net::TcpListener;

pub(crate) type Raft = openraft::Raft<TypeConfig>;

/// Why a metadata change did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClusterError {
    #[error("no controller reachable within {0:?}")]
    NoController(Duration),
    #[error("metadata quorum failed: {0}")]
    Raft(String),
    #[error("committed change not applied on this node within {0:?}")]
    NotApplied(Duration),
}

/// Timing knobs (Kafka's names).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    pub(crate) heartbeat: Duration,
    pub(crate) session_timeout: Duration,
    pub(crate) replica_lag_max: Duration,
    /// Preferred-leader rebalance period, if enabled.
    pub(crate) rebalance: Option<Duration>,
}

/// Parses `controller.quorum.voters` (`id@host:port,...`).
pub(crate) fn parse_voters(v: &str) -> anyhow::Result<BTreeMap<NodeId, String>> {
    let mut out = BTreeMap::new();
    for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = part.split_once('@').with_context(|| {
            format!("controller.quorum.voters entry {part:?} is not id@host:port")
        })?;
        let id: NodeId = id
            .parse()
            .with_context(|| format!("controller.quorum.voters id {id:?} is not a number"))?;
        out.insert(id, addr.to_string());
    }
    Ok(out)
}

/// One node's view of and part in the cluster.
pub(crate) struct Cluster {
    pub(crate) node_id: i32,
    pub(crate) raft: Raft,
    sm: StateMachine,
    voters: BTreeMap<NodeId, String>,
    pub(crate) info: NodeInfo,
    pub(crate) timings: Timings,
    store: Arc<Store>,
    pub(crate) replicas: Arc<ReplicaManager>,
    /// Controller only: heartbeats and probes of the other nodes.
    pub(crate) liveness: liveness::Liveness,
    /// Nodes this node found refusing connections (see [`liveness::Refusals`]).
    pub(crate) refusals: liveness::Refusals,
    /// Serialises materialisation of the metadata into the store.
    reconcile_lock: tokio::sync::Mutex<()>,
    /// Set once this node has applied the metadata up to a write of its own committed after
    /// it started: until then its applied state may be stale (a restarted node replays an old
    /// log), so it neither takes partition roles nor describes leaders to clients.
    caught_up: std::sync::atomic::AtomicBool,
    /// Set by a controlled shutdown: heartbeats stop, so the node is not registered again.
    stopping: std::sync::atomic::AtomicBool,
    /// Connection to the controller for forwarded writes and heartbeats.
    leader_client: tokio::sync::Mutex<Option<(NodeId, RpcClient)>>,
    /// Takes the applied security metadata.
    security: Arc<crate::auth::Security>,
    /// Takes the applied mirror links.
    mirrors: Arc<crate::mirror::Mirrors>,
    /// Node-to-node mutual TLS, when configured.
    pub(crate) tls: Option<crate::auth::tls::ClusterTls>,
    /// The Kafka listener nodes fetch from each other on, and whether it is TLS.
    pub(crate) inter_broker: (String, bool),
}

impl Cluster {
    /// Starts the node's part of the quorum and its background duties.
    pub(crate) async fn start(
        cfg: &Config,
        store: Arc<Store>,
        info: NodeInfo,
        listener: TcpListener,
        security: Arc<crate::auth::Security>,
        mirrors: Arc<crate::mirror::Mirrors>,
        inter_broker: (String, bool),
    ) -> anyhow::Result<Arc<Self>> {
        let tls = crate::auth::tls::ClusterTls::from_config(cfg)?;
        if inter_broker.1 && tls.is_none() {
            anyhow::bail!(
                "the inter-broker listener {} is SSL: set cluster.ssl.keystore.location and cluster.ssl.truststore.location",
                inter_broker.0
            );
        }
        let tls_client = tls.as_ref().map(|t| t.client.clone());
        let voters = parse_voters(cfg.get("controller.quorum.voters").unwrap_or(""))?;
        let node_id = info.id;
        let dir = cfg.data_dir().join("meta").join("raft");
        let log = LogStore::open(&dir)?;
        let sm = StateMachine::open(&dir, store.clone())?;
        let election = cfg.int("controller.quorum.election.timeout.ms")?.max(50) as u64;
        let raft_config = openraft::Config {
            cluster_name: "gateway-metadata".into(),
            heartbeat_interval: (election / 4).max(10),
            election_timeout_min: election,
            election_timeout_max: 2 * election,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 200,
            ..Default::default()
        };
        let raft_config = Arc::new(raft_config.validate().context("raft config")?);
        let raft = Raft::new(
            node_id as NodeId,
            raft_config,
            rpc::NetworkFactory {
                tls: tls_client.clone(),
            },
            log,
            sm.clone(),
        )
        .await
        .context("starting the metadata quorum")?;
        let timings = Timings {
            heartbeat: Duration::from_millis(
                cfg.int("broker.heartbeat.interval.ms")?.max(10) as u64
            ),
            session_timeout: Duration::from_millis(
                cfg.int("broker.session.timeout.ms")?.max(100) as u64
            ),
            replica_lag_max: Duration::from_millis(
                cfg.int("replica.lag.time.max.ms")?.max(100) as u64
            ),
            rebalance: cfg.bool("auto.leader.rebalance.enable")?.then(|| {
                Duration::from_secs(
                    cfg.int("leader.imbalance.check.interval.seconds")
                        .unwrap_or(300)
                        .max(1) as u64,
                )
            }),
        };
        let cluster = Arc::new(Self {
            node_id,
            raft: raft.clone(),
            sm,
            voters: voters.clone(),
            info,
            timings,
            store: store.clone(),
            replicas: Arc::new(ReplicaManager::new(node_id, store, timings)),
            liveness: Default::default(),
            refusals: Default::default(),
            reconcile_lock: tokio::sync::Mutex::new(()),
            caught_up: std::sync::atomic::AtomicBool::new(false),
            stopping: std::sync::atomic::AtomicBool::new(false),
            leader_client: tokio::sync::Mutex::new(None),
            security,
            mirrors,
            tls,
            inter_broker,
        });
        tokio::spawn(rpc::serve(cluster.clone(), listener));
        let is_voter = voters.contains_key(&(node_id as NodeId));
        if is_voter && !raft.is_initialized().await.unwrap_or(true) {
            let members: BTreeMap<NodeId, BasicNode> = voters
                .iter()
                .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                .collect();
            // Every voter proposes the same initial membership; openraft accepts that.
            if let Err(e) = raft.initialize(members).await {
                tracing::debug!(error = %e, "metadata quorum already initialised");
            }
        }
        {
            let c = cluster.clone();
            let joining = !is_voter && !raft.is_initialized().await.unwrap_or(true);
            tokio::spawn(async move {
                if joining {
                    c.join().await;
                }
                // A registration committed now, and applied here, proves this node's state
                // is at least as new as the quorum's at this moment.
                loop {
                    match c.propose(Command::RegisterNode(c.info.clone())).await {
                        Ok(_) => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "registration not committed yet; retrying")
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                c.caught_up
                    .store(true, std::sync::atomic::Ordering::Release);
                tracing::info!(
                    node = c.node_id,
                    "metadata caught up; taking partition roles"
                );
                c.reconcile().await;
            });
        }
        tokio::spawn(cluster.clone().heartbeat_loop());
        tokio::spawn(cluster.clone().controller_loop());
        tokio::spawn(cluster.clone().reconcile_loop());
        replica::start(cluster.clone());
        Ok(cluster)
    }

    /// The client side of node-to-node TLS, if configured.
    pub(crate) fn tls_client(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.as_ref().map(|t| t.client.clone())
    }

    /// The applied metadata.
    pub(crate) fn state(&self) -> Arc<ClusterState> {
        self.sm.current()
    }

    /// Whether this node's applied metadata is known to be current (see `caught_up`).
    pub(crate) fn is_caught_up(&self) -> bool {
        self.caught_up.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The current controller (Raft leader), if known.
    pub(crate) fn controller_id(&self) -> Option<i32> {
        let m = self.raft.metrics();
        let m = m.borrow();
        match m.current_leader {
            // A restarted node recovers its own committed vote and names itself leader
            // before it has won anything; only an actual leader may act as controller.
            Some(l) if l == self.node_id as NodeId && !m.state.is_leader() => None,
            l => l.map(|l| l as i32),
        }
    }

    pub(crate) fn is_controller(&self) -> bool {
        self.controller_id() == Some(self.node_id)
    }

    /// Commits a change through the controller (forwarding from any node) and waits until it
    /// is applied and materialised here.
    pub(crate) async fn propose(&self, cmd: Command) -> Result<Outcome, ClusterError> {
        let limit = Duration::from_secs(15);
        let deadline = Instant::now() + limit;
        loop {
            let reply = match self.controller_id() {
                Some(l) if l == self.node_id => self.write_as_leader(cmd.clone()).await,
                Some(l) => self.forward(l as NodeId, Request::Write(cmd.clone())).await,
                None => WriteReply::NotLeader,
            };
            match reply {
                WriteReply::Done { index, outcome } => {
                    if !self.wait_applied(index, deadline).await {
                        return Err(ClusterError::NotApplied(limit));
                    }
                    if !matches!(
                        cmd,
                        Command::CommitOffsets { .. }
                            | Command::DeleteOffsets { .. }
                            | Command::Txn { .. }
                    ) {
                        self.reconcile().await;
                    }
                    return Ok(outcome);
                }
                WriteReply::Failed(e) => return Err(ClusterError::Raft(e)),
                WriteReply::NotLeader => {}
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::NoController(limit));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn forward(&self, leader: NodeId, req: Request) -> WriteReply {
        let Some(addr) = self.voters.get(&leader).cloned() else {
            return WriteReply::NotLeader;
        };
        let mut slot = self.leader_client.lock().await;
        if slot.as_ref().is_none_or(|(id, _)| *id != leader) {
            *slot = Some((leader, RpcClient::new(addr, self.tls_client())));
        }
        let Some((_, client)) = slot.as_mut() else {
            return WriteReply::NotLeader;
        };
        match client.call(&req, Duration::from_secs(5)).await {
            Ok(Response::Write(r)) => r,
            Ok(_) => WriteReply::Failed("unexpected controller reply".into()),
            Err(e) => {
                tracing::debug!(leader, error = %e, "forwarding to the controller failed");
                WriteReply::NotLeader
            }
        }
    }

    /// Writes through the local Raft instance, which must be the leader.
    pub(crate) async fn write_as_leader(&self, cmd: Command) -> WriteReply {
        match self.raft.client_write(cmd).await {
            Ok(r) => WriteReply::Done {
                index: r.log_id.index,
                outcome: r.data,
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => WriteReply::NotLeader,
            Err(e) => WriteReply::Failed(e.to_string()),
        }
    }

    /// Waits until this node applied `index`; false if the deadline passed first.
    async fn wait_applied(&self, index: u64, deadline: Instant) -> bool {
        let mut rx = self.sm.subscribe_applied();
        while self.sm.applied_index() < index {
            if Instant::now() >= deadline {
                return false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
        }
        true
    }

    /// Controller side of a new node's join: adds it to the metadata quorum as a learner
    /// (a broker that replicates the metadata log but does not vote).
    pub(crate) async fn add_learner(&self, id: NodeId, addr: String) -> WriteReply {
        if !self.is_controller() {
            return WriteReply::NotLeader;
        }
        if self.voters.contains_key(&id) {
            return WriteReply::Failed(format!("node {id} is a voter, not a new node"));
        }
        match self.raft.add_learner(id, BasicNode { addr }, false).await {
            Ok(r) => {
                tracing::info!(node = id, "node joined the metadata quorum as a learner");
                WriteReply::Done {
                    index: r.log_id.index,
                    outcome: state::Outcome::Ok,
                }
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => WriteReply::NotLeader,
            Err(e) => WriteReply::Failed(e.to_string()),
        }
    }

    /// A node outside `controller.quorum.voters` asks the voters, one after another, until the
    /// controller adds it as a learner.
    async fn join(&self) {
        let mut clients: Vec<(NodeId, RpcClient)> = self
            .voters
            .iter()
            .map(|(id, addr)| (*id, RpcClient::new(addr.clone(), self.tls_client())))
            .collect();
        let req = Request::Join {
            id: self.node_id as NodeId,
            addr: self.info.controller_addr.clone(),
        };
        loop {
            for (voter, c) in clients.iter_mut() {
                match c.call(&req, Duration::from_secs(5)).await {
                    Ok(Response::Write(WriteReply::Done { .. })) => return,
                    Ok(Response::Write(WriteReply::Failed(e))) => {
                        tracing::warn!(voter = *voter, error = %e, "join refused")
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Kafka's controlled shutdown: before the process stops, this node is fenced through the
    /// controller, which moves the leadership of its partitions to in-sync replicas and takes
    /// it out of every ISR. Clients then get NOT_LEADER_OR_FOLLOWER and move to the new
    /// leaders at once, instead of finding a dead connection and waiting for the node to be
    /// declared dead. Skipped when no other node is alive to take over; bounded, so a cluster
    /// without a quorum does not keep a node from stopping.
    pub(crate) async fn controlled_shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
        let others = self
            .state()
            .nodes
            .values()
            .filter(|n| !n.fenced && n.info.id != self.node_id)
            .count();
        if others == 0 {
            tracing::info!(
                node = self.node_id,
                "controlled shutdown: no other live node; stopping"
            );
            return;
        }
        let started = Instant::now();
        let fenced = tokio::time::timeout(
            Duration::from_secs(5),
            self.propose(Command::FenceNode { id: self.node_id }),
        )
        .await;
        match fenced {
            Ok(Ok(_)) => tracing::info!(
                node = self.node_id,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "controlled shutdown: leadership moved to the other replicas"
            ),
            Ok(Err(e)) => {
                tracing::warn!(node = self.node_id, error = %e, "controlled shutdown failed; stopping anyway")
            }
            Err(_) => tracing::warn!(
                node = self.node_id,
                "controlled shutdown timed out after 5 s; stopping anyway"
            ),
        }
        // Requests that were waiting on this node's followers are answered (as no longer the
        // leader) before the connections close.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Controller side of a heartbeat: remembers the node and (re)registers it if the
    /// metadata does not show it alive with these endpoints.
    pub(crate) async fn on_heartbeat(&self, info: NodeInfo) -> bool {
        if !self.is_controller() {
            return false;
        }
        self.liveness.heartbeat(info.id);
        let known = self.state().nodes.get(&info.id).cloned();
        if known.is_none_or(|n| n.fenced || n.info != info) {
            let id = info.id;
            match self.write_as_leader(Command::RegisterNode(info)).await {
                WriteReply::Done { .. } => tracing::info!(node = id, "node registered"),
                _ => return false,
            }
        }
        true
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.timings.heartbeat);
        // Its own connection: a heartbeat must never queue behind a forwarded write that is
        // waiting for a commit, or a busy node would be fenced.
        let mut slot: Option<(NodeId, RpcClient)> = None;
        loop {
            tick.tick().await;
            if self.stopping.load(std::sync::atomic::Ordering::Acquire) {
                continue;
            }
            match self.controller_id() {
                Some(l) if l == self.node_id => {
                    self.on_heartbeat(self.info.clone()).await;
                }
                Some(l) => {
                    let Some(addr) = self.voters.get(&(l as NodeId)).cloned() else {
                        continue;
                    };
                    if slot.as_ref().is_none_or(|(id, _)| *id != l as NodeId) {
                        slot = Some((l as NodeId, RpcClient::new(addr, self.tls_client())));
                    }
                    if let Some((_, c)) = slot.as_mut() {
                        let _ = c
                            .call(
                                &Request::Heartbeat(self.info.clone()),
                                self.timings.heartbeat * 4,
                            )
                            .await;
                    }
                }
                None => {}
            }
        }
    }

    /// While this node is the controller: fences nodes whose heartbeats stopped, and (with
    /// `auto.leader.rebalance.enable`) moves leadership back to preferred replicas.
    async fn controller_loop(self: Arc<Self>) {
        let mut was_controller = false;
        let mut last_rebalance = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.liveness.woken() => {}
            }
            let controller = self.is_controller();
            metrics::gauge!("cluster_is_controller").set(if controller { 1.0 } else { 0.0 });
            metrics::gauge!("cluster_controller_id").set(self.controller_id().unwrap_or(-1) as f64);
            {
                let st = self.state();
                let live = st.nodes.values().filter(|n| !n.fenced).count();
                metrics::gauge!("cluster_live_nodes").set(live as f64);
                metrics::gauge!("cluster_fenced_nodes").set((st.nodes.len() - live) as f64);
            }
            if !controller {
                was_controller = false;
                continue;
            }
            if !was_controller {
                self.liveness.reset(self.state().nodes.keys().copied());
                was_controller = true;
                metrics::counter!("cluster_controller_elections_total").increment(1);
                tracing::info!(node = self.node_id, "became controller");
            }
            let state = self.state();
            let live: Vec<&state::NodeState> = state
                .nodes
                .values()
                .filter(|n| !n.fenced && n.info.id != self.node_id)
                .collect();
            let stale = live.iter().filter(|n| {
                self.liveness
                    .expired(n.info.id, self.timings.session_timeout)
            });
            for n in stale {
                let id = n.info.id;
                tracing::warn!(node = id, "node missed its heartbeats; fencing it");
                metrics::counter!("cluster_nodes_fenced_total", "reason" => "session").increment(1);
                let _ = self.write_as_leader(Command::FenceNode { id }).await;
            }
            let probes =
                live.iter()
                    .filter(|n| self.liveness.take_probe(n.info.id, self.timings.heartbeat))
                    .map(|n| async move {
                        (n.info.id, liveness::refused(&n.info.controller_addr).await)
                    });
            for (id, refused) in futures::future::join_all(probes).await {
                if refused {
                    self.refusals.refused(id);
                    tracing::warn!(
                        node = id,
                        "node's controller port refuses connections (process gone); fencing it"
                    );
                    metrics::counter!("cluster_nodes_fenced_total", "reason" => "refused")
                        .increment(1);
                    let _ = self.write_as_leader(Command::FenceNode { id }).await;
                }
            }
            self.quorum_elections().await;
            if let Some(every) = self.timings.rebalance {
                if last_rebalance.elapsed() >= every {
                    last_rebalance = Instant::now();
                    self.rebalance_leaders().await;
                }
            }
        }
    }

    /// (latest leader epoch, log end offset) of this node's replica of a partition.
    pub(crate) fn log_end(&self, topic: &str, partition: i32) -> Option<(i32, i64)> {
        let log = self.store.partition(topic, partition).ok()?;
        Some((log.latest_epoch().unwrap_or(-1), log.log_end_offset()))
    }

    /// Quorum-policy partitions without a leader (DLedger's rule): once a majority of the
    /// assigned replicas answer, the one whose log is the most up to date (latest epoch, then
    /// log end) leads, so every record a majority acknowledged survives. Ties go to the dead
    /// broker's stand-in, then to replica order.
    async fn quorum_elections(&self) {
        let state = self.state();
        let stand_ins = state.stand_ins();
        for (name, t) in state.topics.iter().filter(|(_, t)| t.quorum_policy()) {
            for (i, p) in t.partitions.iter().enumerate() {
                if p.leader != state::NO_LEADER {
                    continue;
                }
                let majority = p.replicas.len() / 2 + 1;
                let mut ends: Vec<(i32, (i32, i64))> = Vec::new();
                for r in &p.replicas {
                    let Some(n) = state.nodes.get(r).filter(|n| !n.fenced) else {
                        continue;
                    };
                    let end = if *r == self.node_id {
                        self.log_end(name, i as i32)
                    } else {
                        let mut c =
                            RpcClient::new(n.info.controller_addr.clone(), self.tls_client());
                        let req = Request::LogEnd {
                            topic: name.clone(),
                            partition: i as i32,
                        };
                        match c.call(&req, Duration::from_secs(2)).await {
                            Ok(Response::LogEnd(e)) => e,
                            _ => None,
                        }
                    };
                    if let Some(e) = end {
                        ends.push((*r, e));
                    }
                }
                if ends.len() < majority {
                    continue;
                }
                let best = ends.iter().map(|(_, e)| *e).max();
                let stand_in = p.replicas.first().and_then(|f| stand_ins.get(f));
                let winner = ends
                    .iter()
                    .filter(|(_, e)| Some(*e) == best)
                    .map(|(r, _)| *r)
                    .min_by_key(|r| (Some(r) != stand_in, p.replicas.iter().position(|x| x == r)));
                let Some(winner) = winner else { continue };
                let cmd = Command::ElectLeader {
                    topic: name.clone(),
                    partition: i as i32,
                    preferred: false,
                    target: Some(winner),
                };
                if let WriteReply::Done {
                    outcome: Outcome::Ok,
                    ..
                } = self.write_as_leader(cmd).await
                {
                    tracing::info!(topic = %name, partition = i, leader = winner, ends = ?ends, "quorum election");
                }
            }
        }
    }

    /// Preferred-leader election for every partition whose preferred replica is alive, in
    /// sync and not leading.
    async fn rebalance_leaders(&self) {
        let state = self.state();
        for (name, t) in &state.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                let Some(pref) = p.replicas.first() else {
                    continue;
                };
                let live = state.nodes.get(pref).is_some_and(|n| !n.fenced);
                if p.leader != *pref && live && p.isr.contains(pref) {
                    let cmd = Command::ElectLeader {
                        topic: name.clone(),
                        partition: i as i32,
                        preferred: true,
                        target: None,
                    };
                    if let WriteReply::Done {
                        outcome: Outcome::Ok,
                        ..
                    } = self.write_as_leader(cmd).await
                    {
                        metrics::counter!("cluster_preferred_elections_total").increment(1);
                        tracing::info!(topic = %name, partition = i, leader = pref, "preferred leader restored");
                    }
                }
            }
        }
    }

    async fn reconcile_loop(self: Arc<Self>) {
        let mut rx = self.sm.subscribe();
        loop {
            self.reconcile().await;
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Makes the local store and replica roles match the applied metadata.
    pub(crate) async fn reconcile(&self) {
        let _g = self.reconcile_lock.lock().await;
        let state = self.state();
        self.security.install(&state.security);
        self.mirrors.install(&state.mirror);
        let store = self.store.clone();
        let st = state.clone();
        let res = tokio::task::spawn_blocking(move || -> storage::Result<()> {
            for (name, t) in &st.topics {
                let meta = TopicMeta {
                    name: name.clone(),
                    id: t.id,
                    partitions: t.partitions.len() as i32,
                    replication_factor: t.replication_factor(),
                    configs: t.configs.clone(),
                    internal: t.internal,
                    code: t.code,
                    attributes: t.attributes.clone(),
                };
                store.adopt_topic(&meta)?;
            }
            for t in store.topics() {
                if !st.topics.contains_key(&t.meta.name) {
                    store.delete_topic(&t.meta.name)?;
                }
            }
            Ok(())
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "applying metadata to the store failed"),
            Err(e) => tracing::error!(error = %e, "metadata reconcile task failed"),
        }
        if self.is_caught_up() {
            self.replicas.apply(&state);
        }
    }

    /// The node coordinating a consumer group: a live node chosen by the key's hash, so every
    /// node gives the same answer.
    pub(crate) fn coordinator_for(&self, key: &str) -> Option<NodeInfo> {
        let live = self.live_nodes();
        if live.is_empty() {
            return None;
        }
        // Java's String.hashCode, so the choice is stable across versions of this server.
        let h = key
            .encode_utf16()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
        let i = (h as i64).rem_euclid(live.len() as i64) as usize;
        live.get(i).cloned()
    }

    /// Nodes that are not fenced, by id: what Metadata and DescribeCluster list as brokers.
    pub(crate) fn live_nodes(&self) -> Vec<NodeInfo> {
        self.state()
            .nodes
            .values()
            .filter(|n| !n.fenced)
            .map(|n| n.info.clone())
            .collect()
    }

    /// Address of a node's inter-broker listener, from the metadata.
    pub(crate) fn kafka_addr(&self, id: i32) -> Option<String> {
        self.state()
            .nodes
            .get(&id)
            .and_then(|n| n.info.endpoint(&self.inter_broker.0))
            .map(|(host, port)| format!("{host}:{port}"))
    }
}

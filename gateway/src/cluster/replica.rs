//! Partition replication on one node: which local partitions it leads or follows, the
//! followers' progress a leader tracks, the high watermark derived from the ISR, ISR shrink and
//! expand, and waiting for acks=all.

use super::state::{ClusterState, Command, Outcome};
use super::throttle::{self, Throttle};
use super::{Cluster, Timings};
use dashmap::DashMap;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{PartitionLog, Store};
use tokio::sync::watch;

/// A follower's position as its fetches report it.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Its log end offset (the offset it fetched from), -1 until its first fetch.
    leo: i64,
    /// Last time it was known to have everything the leader had.
    caught_up: Instant,
    /// The leader's log end and the time of its previous fetch (Kafka's rule: reaching what
    /// the leader had at the previous fetch counts as caught up as of that fetch).
    prev_leader_end: i64,
    prev_fetch: Instant,
}

impl Progress {
    /// A follower not heard from yet: it has one lag period from now to fetch.
    fn unknown(now: Instant) -> Self {
        Self {
            leo: -1,
            caught_up: now,
            prev_leader_end: -1,
            prev_fetch: now,
        }
    }
}

/// The replication view of one local partition.
#[derive(Debug, Clone)]
pub(crate) struct PartState {
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) replicas: Vec<i32>,
    pub(crate) isr: Vec<i32>,
    pub(crate) min_isr: usize,
    progress: HashMap<i32, Progress>,
    isr_change_pending: bool,
    /// Follower: the log must be truncated to where it diverges from the leader's before
    /// fetching (after every leader change).
    pub(crate) needs_truncation: bool,
    /// This node's replica of the partition is listed in the topic's
    /// `leader.replication.throttled.replicas` (leader side) ...
    pub(crate) leader_throttled: bool,
    /// ... or `follower.replication.throttled.replicas` (follower side).
    pub(crate) follower_throttled: bool,
}

impl PartState {
    /// This node leads at `epoch` (-1: any epoch), or why not.
    fn check_leader(&self, me: i32, epoch: i32) -> Result<(), Refusal> {
        if self.leader != me {
            return Err(Refusal::NotLeader);
        }
        if epoch >= 0 && epoch < self.leader_epoch {
            return Err(Refusal::FencedEpoch);
        }
        if epoch > self.leader_epoch {
            return Err(Refusal::UnknownEpoch);
        }
        Ok(())
    }
}

/// One partition this node holds a replica of.
pub(crate) struct Partition {
    pub(crate) topic: String,
    pub(crate) index: i32,
    pub(crate) log: Arc<PartitionLog>,
    st: Mutex<PartState>,
    /// Bumped on every leadership or ISR change, so acks=all waiters re-check.
    changed: watch::Sender<u64>,
}

/// Why a request cannot be served by this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotLeader,
    FencedEpoch,
    UnknownEpoch,
    NotEnoughReplicas,
    NotEnoughReplicasAfterAppend,
    TimedOut,
}

impl Refusal {
    pub(crate) fn code(self) -> i16 {
        match self {
            Refusal::NotLeader => ResponseError::NotLeaderOrFollower.code(),
            Refusal::FencedEpoch => ResponseError::FencedLeaderEpoch.code(),
            Refusal::UnknownEpoch => ResponseError::UnknownLeaderEpoch.code(),
            Refusal::NotEnoughReplicas => ResponseError::NotEnoughReplicas.code(),
            Refusal::NotEnoughReplicasAfterAppend => {
                ResponseError::NotEnoughReplicasAfterAppend.code()
            }
            Refusal::TimedOut => ResponseError::RequestTimedOut.code(),
        }
    }
}

impl Partition {
    /// A copy of the replication state.
    pub(crate) fn state(&self) -> PartState {
        self.st.lock().clone()
    }

    /// Checks that this node leads the partition at `epoch` (-1: any epoch).
    pub(crate) fn check_leader(&self, me: i32, epoch: i32) -> Result<(), Refusal> {
        self.st.lock().check_leader(me, epoch)
    }

    /// Leader: recomputes the high watermark as the smallest log end in the ISR.
    pub(crate) fn update_high_watermark(&self, me: i32) {
        if !self.log.is_replicated() {
            return;
        }
        let st = self.st.lock();
        if st.leader != me {
            return;
        }
        let mut hw = self.log.log_end_offset();
        for r in st.isr.iter().filter(|r| **r != me) {
            hw = hw.min(st.progress.get(r).map(|p| p.leo).unwrap_or(-1));
        }
        if hw >= 0 {
            self.log.set_high_watermark(hw);
        }
    }

    /// Leader: a follower fetched from `offset`.
    pub(crate) fn on_follower_fetch(
        &self,
        me: i32,
        replica: i32,
        epoch: i32,
        offset: i64,
    ) -> Result<(), Refusal> {
        {
            let mut st = self.st.lock();
            st.check_leader(me, epoch)?;
            if !st.replicas.contains(&replica) {
                return Err(Refusal::NotLeader);
            }
            let now = Instant::now();
            let end = self.log.log_end_offset();
            let p = st
                .progress
                .entry(replica)
                .or_insert_with(|| Progress::unknown(now));
            let advanced = offset > p.leo;
            p.leo = offset;
            if offset >= end {
                p.caught_up = now;
            } else if p.prev_leader_end >= 0 && offset >= p.prev_leader_end {
                p.caught_up = p.caught_up.max(p.prev_fetch);
            }
            p.prev_leader_end = end;
            p.prev_fetch = now;
            if advanced {
                // Quorum waiters count follower positions, not only the high watermark.
                self.changed.send_modify(|v| *v += 1);
            }
        }
        self.update_high_watermark(me);
        Ok(())
    }

    /// Leader: whether replication to `replica` falls under the leader-side throttle (the
    /// partition is listed for this node and the replica is out of sync).
    pub(crate) fn leader_throttles(&self, replica: i32) -> bool {
        let st = self.st.lock();
        st.leader_throttled && !st.isr.contains(&replica)
    }

    /// Follower: whether this node's fetching falls under the follower-side throttle.
    pub(crate) fn follower_throttled(&self, me: i32) -> bool {
        let st = self.st.lock();
        st.follower_throttled && !st.isr.contains(&me)
    }

    /// Leader, acks=all: fails before the append if the ISR is below `min.insync.replicas`.
    pub(crate) fn check_min_isr(&self) -> Result<(), Refusal> {
        let st = self.st.lock();
        if st.isr.len() < st.min_isr {
            return Err(Refusal::NotEnoughReplicas);
        }
        Ok(())
    }

    /// Leader, acks=all: waits until the high watermark passes `end` (every ISR member has
    /// the records), failing if leadership is lost, the ISR falls below
    /// `min.insync.replicas`, or `timeout` passes.
    pub(crate) async fn wait_replicated(
        &self,
        me: i32,
        end: i64,
        timeout: Duration,
    ) -> Result<(), Refusal> {
        self.wait_for(me, timeout, |st| {
            if self.log.high_watermark() >= end {
                return Some(Ok(()));
            }
            (st.isr.len() < st.min_isr).then_some(Err(Refusal::NotEnoughReplicasAfterAppend))
        })
        .await
    }

    /// Waits until `log end` reaches `end` counted on a `quorum` of replicas (leader
    /// included): the DLedger-style acknowledgement of the `quorum` policy.
    pub(crate) async fn wait_quorum(
        &self,
        me: i32,
        end: i64,
        timeout: Duration,
    ) -> Result<(), Refusal> {
        self.wait_for(me, timeout, |st| {
            let need = st.replicas.len() / 2 + 1;
            let have = 1 + st
                .replicas
                .iter()
                .filter(|r| **r != me)
                .filter(|r| st.progress.get(r).is_some_and(|p| p.leo >= end))
                .count();
            (have >= need || self.log.high_watermark() >= end).then_some(Ok(()))
        })
        .await
    }

    /// Leader: re-evaluates `done` whenever the high watermark or a follower's progress
    /// moves, until it decides, leadership (or its epoch) changes, or `timeout` passes.
    async fn wait_for(
        &self,
        me: i32,
        timeout: Duration,
        mut done: impl FnMut(&PartState) -> Option<Result<(), Refusal>>,
    ) -> Result<(), Refusal> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut hw = self.log.subscribe();
        let mut changed = self.changed.subscribe();
        let epoch = self.st.lock().leader_epoch;
        loop {
            {
                let st = self.st.lock();
                let verdict = done(&st);
                // What is already replicated stays acknowledged whatever happens next.
                if let Some(Ok(())) = verdict {
                    return Ok(());
                }
                if st.leader != me || st.leader_epoch != epoch {
                    return Err(Refusal::NotLeader);
                }
                if let Some(r) = verdict {
                    return r;
                }
            }
            tokio::select! {
                _ = hw.changed() => {}
                _ = changed.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Err(Refusal::TimedOut),
            }
        }
    }

    /// Follower: whether the log must first be truncated, and clears the flag.
    pub(crate) fn take_truncation(&self) -> bool {
        std::mem::replace(&mut self.st.lock().needs_truncation, false)
    }

    /// Follower: asks for truncation before the next fetch.
    pub(crate) fn request_truncation(&self) {
        self.st.lock().needs_truncation = true;
    }
}

/// All partitions this node holds replicas of.
pub(crate) struct ReplicaManager {
    node_id: i32,
    store: Arc<Store>,
    timings: Timings,
    parts: DashMap<(String, i32), Arc<Partition>>,
    /// Bumped whenever the set of followed partitions or their leaders change.
    pub(crate) followed: watch::Sender<u64>,
    /// Bytes this node serves to throttled replicas that are out of sync.
    pub(crate) leader_quota: Throttle,
    /// Bytes this node fetches for its throttled, out-of-sync replicas.
    pub(crate) follower_quota: Throttle,
}

impl ReplicaManager {
    pub(crate) fn new(node_id: i32, store: Arc<Store>, timings: Timings) -> Self {
        let (followed, _) = watch::channel(0);
        Self {
            node_id,
            store,
            timings,
            parts: DashMap::new(),
            followed,
            leader_quota: Throttle::new("leader.replication.throttled.rate", "leader"),
            follower_quota: Throttle::new("follower.replication.throttled.rate", "follower"),
        }
    }

    /// The local replica of a partition, if this node holds one.
    pub(crate) fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.parts
            .get(&(topic.to_string(), partition))
            .map(|p| p.clone())
    }

    /// Partitions this node follows, with their leaders.
    pub(crate) fn followed_by_leader(&self) -> HashMap<i32, Vec<Arc<Partition>>> {
        let mut out: HashMap<i32, Vec<Arc<Partition>>> = HashMap::new();
        for p in self.parts.iter() {
            let st = p.st.lock();
            if st.leader != self.node_id && st.leader >= 0 {
                out.entry(st.leader).or_default().push(p.clone());
            }
        }
        out
    }

    /// Leader counts for metrics: (led, under-replicated, offline among led or followed).
    pub(crate) fn summary(&self) -> (usize, usize, usize) {
        let (mut led, mut under, mut offline) = (0, 0, 0);
        for p in self.parts.iter() {
            let st = p.st.lock();
            if st.leader == self.node_id {
                led += 1;
                if st.isr.len() < st.replicas.len() {
                    under += 1;
                }
            } else if st.leader < 0 {
                offline += 1;
            }
        }
        (led, under, offline)
    }

    /// Takes over leadership and ISR from applied metadata.
    pub(crate) fn apply(&self, state: &ClusterState) {
        let me = self.node_id;
        let mut seen = std::collections::HashSet::new();
        let mut roles_changed = false;
        for (name, t) in &state.topics {
            let min_isr = t
                .configs
                .get("min.insync.replicas")
                .and_then(|v| v.parse::<usize>().ok())
                .or_else(|| {
                    self.store
                        .broker_setting("min.insync.replicas")
                        .and_then(|v| v.parse().ok())
                })
                .unwrap_or(1);
            for (i, ps) in t.partitions.iter().enumerate() {
                let i = i as i32;
                if !ps.replicas.contains(&me) {
                    continue;
                }
                let Ok(log) = self.store.partition(name, i) else {
                    continue;
                };
                let key = (name.clone(), i);
                seen.insert(key.clone());
                let existing = self.parts.get(&key).map(|p| p.clone());
                let part = match existing {
                    Some(p) if Arc::ptr_eq(&p.log, &log) => p,
                    _ => {
                        let (changed, _) = watch::channel(0);
                        let p = Arc::new(Partition {
                            topic: name.clone(),
                            index: i,
                            log: log.clone(),
                            st: Mutex::new(PartState {
                                leader: i32::MIN,
                                leader_epoch: -1,
                                replicas: Vec::new(),
                                isr: Vec::new(),
                                min_isr,
                                progress: HashMap::new(),
                                isr_change_pending: false,
                                needs_truncation: false,
                                leader_throttled: false,
                                follower_throttled: false,
                            }),
                            changed,
                        });
                        self.parts.insert(key.clone(), p.clone());
                        p
                    }
                };
                let mut st = part.st.lock();
                let new_role = st.leader != ps.leader || st.leader_epoch != ps.leader_epoch;
                let isr_changed = st.isr != ps.isr;
                st.min_isr = min_isr;
                st.leader_throttled = throttle::lists(
                    t.configs.get("leader.replication.throttled.replicas"),
                    i,
                    me,
                );
                st.follower_throttled = throttle::lists(
                    t.configs.get("follower.replication.throttled.replicas"),
                    i,
                    me,
                );
                st.replicas = ps.replicas.clone();
                st.isr = ps.isr.clone();
                if isr_changed {
                    st.isr_change_pending = false;
                }
                if new_role {
                    roles_changed = true;
                    st.leader = ps.leader;
                    st.leader_epoch = ps.leader_epoch;
                    // Every follower gets one lag period from this takeover to fetch.
                    let now = Instant::now();
                    st.progress = ps
                        .replicas
                        .iter()
                        .filter(|r| **r != me)
                        .map(|r| (*r, Progress::unknown(now)))
                        .collect();
                    st.isr_change_pending = false;
                    part.log.set_leader_epoch(ps.leader_epoch.max(0));
                    if ps.leader == me {
                        part.log.set_replicated(ps.replicas.len() > 1);
                        st.needs_truncation = false;
                        tracing::info!(topic = %name, partition = i, epoch = ps.leader_epoch, "leading partition");
                    } else {
                        part.log.set_replicated(true);
                        st.needs_truncation = true;
                    }
                }
                drop(st);
                if new_role || isr_changed {
                    part.changed.send_modify(|v| *v += 1);
                    part.update_high_watermark(me);
                }
            }
        }
        let gone: Vec<(String, i32)> = self
            .parts
            .iter()
            .filter(|p| !seen.contains(p.key()))
            .map(|p| p.key().clone())
            .collect();
        for k in gone {
            if let Some((_, p)) = self.parts.remove(&k) {
                p.st.lock().leader = i32::MIN;
                p.changed.send_modify(|v| *v += 1);
                roles_changed = true;
            }
        }
        if roles_changed {
            self.followed.send_modify(|v| *v += 1);
        }
    }

    /// Leader: ISR changes due now (shrink lagging members, expand caught-up ones).
    fn isr_changes(&self) -> Vec<(Arc<Partition>, Vec<i32>, i32)> {
        let me = self.node_id;
        let lag = self.timings.replica_lag_max;
        let mut out = Vec::new();
        for p in self.parts.iter() {
            let mut st = p.st.lock();
            if st.leader != me || st.isr_change_pending {
                continue;
            }
            let hw = p.log.high_watermark();
            let mut isr: Vec<i32> = st
                .isr
                .iter()
                .copied()
                .filter(|r| {
                    *r == me
                        || st
                            .progress
                            .get(r)
                            .is_some_and(|pr| pr.caught_up.elapsed() <= lag)
                })
                .collect();
            for r in st.replicas.iter() {
                if !isr.contains(r)
                    && st
                        .progress
                        .get(r)
                        .is_some_and(|pr| pr.leo >= hw && pr.caught_up.elapsed() <= lag)
                {
                    isr.push(*r);
                }
            }
            isr.sort_by_key(|r| st.replicas.iter().position(|x| x == r));
            if isr != st.isr {
                st.isr_change_pending = true;
                out.push((p.clone(), isr, st.leader_epoch));
            }
        }
        out
    }
}

/// Starts the background replication duties: ISR maintenance and follower fetchers.
pub(crate) fn start(cluster: Arc<Cluster>) {
    let c = cluster.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            let rm = &c.replicas;
            for (part, isr, epoch) in rm.isr_changes() {
                let shrink = isr.len() < part.st.lock().isr.len();
                let cmd = Command::AlterIsr {
                    topic: part.topic.clone(),
                    partition: part.index,
                    leader: rm.node_id,
                    leader_epoch: epoch,
                    isr: isr.clone(),
                };
                let c2 = c.clone();
                tokio::spawn(async move {
                    let res = c2.propose(cmd).await;
                    match &res {
                        Ok(Outcome::Ok) => {
                            if shrink {
                                metrics::counter!("cluster_isr_shrinks_total").increment(1);
                            } else {
                                metrics::counter!("cluster_isr_expands_total").increment(1);
                            }
                            tracing::info!(topic = %part.topic, partition = part.index, ?isr, "ISR changed");
                        }
                        other => {
                            tracing::warn!(topic = %part.topic, partition = part.index, ?isr, result = ?other, "ISR change refused");
                        }
                    }
                    part.st.lock().isr_change_pending = false;
                });
            }
            let (led, under, offline) = rm.summary();
            metrics::gauge!("cluster_partitions_led").set(led as f64);
            metrics::gauge!("cluster_under_replicated_partitions").set(under as f64);
            metrics::gauge!("cluster_offline_partitions").set(offline as f64);
        }
    });
    super::fetcher::start(cluster);
}

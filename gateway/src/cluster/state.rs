//! The replicated cluster metadata: nodes, topics, partition assignment, leaders, ISR and leader
//! epochs. Every change is a [`Command`] committed through the Raft log and applied here in the
//! same order on every node, so `apply` must be deterministic.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// No leader (every eligible replica is down).
pub(crate) const NO_LEADER: i32 = -1;

/// A node as registered with the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeInfo {
    pub(crate) id: i32,
    /// Advertised Kafka endpoint.
    pub(crate) host: String,
    pub(crate) kafka_port: i32,
    /// Advertised RocketMQ broker endpoint (`host:port`).
    pub(crate) rocketmq_addr: String,
    /// RocketMQ broker name (`broker-<id>` unless configured).
    #[serde(default)]
    pub(crate) rocketmq_name: String,
    /// The second RocketMQ broker endpoint through which this node stands in for a dead
    /// broker (`rocketmq.standby.listen`); empty when it has none.
    #[serde(default)]
    pub(crate) rocketmq_standby_addr: String,
    /// Controller (Raft and internal RPC) endpoint (`host:port`).
    pub(crate) controller_addr: String,
    pub(crate) rack: Option<String>,
    /// Advertised endpoint of every Kafka listener by name (Metadata answers with the
    /// endpoints of the listener a request came in on). `host`/`kafka_port` are the
    /// inter-broker listener's.
    #[serde(default)]
    pub(crate) listeners: BTreeMap<String, (String, i32)>,
}

impl NodeInfo {
    /// The node's endpoint on a listener; `None` if it has no listener of that name (a node
    /// registered before listeners were recorded answers on its one endpoint).
    pub(crate) fn endpoint(&self, listener: &str) -> Option<(String, i32)> {
        if self.listeners.is_empty() {
            return Some((self.host.clone(), self.kafka_port));
        }
        self.listeners.get(listener).cloned()
    }
}

/// A node and whether it may lead partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeState {
    pub(crate) info: NodeInfo,
    /// Fenced nodes missed their heartbeats: they lead nothing and are out of every ISR.
    pub(crate) fenced: bool,
}

/// One partition's replicas and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartitionState {
    /// Assigned replicas; the first is the preferred leader.
    pub(crate) replicas: Vec<i32>,
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    /// Bumped on every change of leader or ISR (Kafka's partition epoch).
    pub(crate) partition_epoch: i32,
    pub(crate) isr: Vec<i32>,
    /// Replicas a reassignment is adding (empty when none is in progress).
    #[serde(default)]
    pub(crate) adding: Vec<i32>,
    /// Replicas a reassignment will remove once every target replica is in sync.
    #[serde(default)]
    pub(crate) removing: Vec<i32>,
}

impl PartitionState {
    /// Whether a reassignment is in progress.
    pub(crate) fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replica set a reassignment moves to: `replicas` without `removing`.
    fn target(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .filter(|r| !self.removing.contains(r))
            .copied()
            .collect()
    }

    /// Finishes a reassignment once every target replica is in the ISR (Kafka's rule):
    /// the removed replicas leave the replica set and the ISR, and a removed leader hands
    /// over to the first in-sync target replica.
    fn try_complete_reassignment(&mut self, live: &BTreeSet<i32>) {
        if !self.reassigning() {
            return;
        }
        let target = self.target();
        if !target.iter().all(|r| self.isr.contains(r)) {
            return;
        }
        self.settle(target, live);
    }

    /// Ends a reassignment with `replicas` as the replica set: the others leave the ISR, and
    /// a leader that is no longer a replica hands over to the first live in-sync one.
    fn settle(&mut self, replicas: Vec<i32>, live: &BTreeSet<i32>) {
        self.replicas = replicas;
        self.isr.retain(|r| self.replicas.contains(r));
        self.adding.clear();
        self.removing.clear();
        if !self.replicas.contains(&self.leader) {
            self.leader = self
                .replicas
                .iter()
                .find(|r| self.isr.contains(r) && live.contains(r))
                .copied()
                .unwrap_or(NO_LEADER);
            self.leader_epoch += 1;
        }
        self.partition_epoch += 1;
    }
}

/// A topic in the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicState {
    pub(crate) id: Uuid,
    /// Small cluster-wide number (RocketMQ commit-log offsets and message ids use it).
    pub(crate) code: u32,
    pub(crate) partitions: Vec<PartitionState>,
    pub(crate) configs: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) internal: bool,
}

impl TopicState {
    /// Whether a replica outside the ISR may become leader (`unclean.leader.election.enable`).
    fn unclean_allowed(&self) -> bool {
        self.configs
            .get("unclean.leader.election.enable")
            .is_some_and(|v| v == "true")
    }

    /// Whether RocketMQ sends are acknowledged by a majority of replicas (`quorum`): such a
    /// partition's leader is chosen by comparing the replicas' logs, not from the ISR.
    pub(crate) fn quorum_policy(&self) -> bool {
        self.configs
            .get("replication.policy")
            .is_some_and(|v| v == "quorum")
    }

    /// Replication factor (replicas of partition 0).
    pub(crate) fn replication_factor(&self) -> i16 {
        self.partitions
            .first()
            .map(|p| p.replicas.len() as i16)
            .unwrap_or(1)
    }
}

/// The whole replicated metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClusterState {
    pub(crate) nodes: BTreeMap<i32, NodeState>,
    pub(crate) topics: BTreeMap<String, TopicState>,
    /// Rotates the first replica of new topics so leadership spreads.
    pub(crate) next_start: u32,
    /// ACLs, SCRAM credentials and quotas.
    #[serde(default)]
    pub(crate) security: crate::auth::state::SecurityState,
    /// Mirror links.
    #[serde(default)]
    pub(crate) mirror: crate::mirror::link::MirrorState,
}

/// A change to the metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Command {
    /// A node (re)announces itself; unfences it and elects it where partitions had no leader.
    RegisterNode(NodeInfo),
    /// A node missed its heartbeats.
    FenceNode {
        id: i32,
    },
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        attributes: BTreeMap<String, String>,
        /// Explicit assignment (CreateTopics with replica assignments), else spread by rack.
        assignment: Option<Vec<Vec<i32>>>,
        /// RocketMQ creation on a broker: that node is every new partition's first replica.
        #[serde(default)]
        preferred: Option<i32>,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        total: i32,
        /// As for CreateTopic: the first replica of every new partition.
        #[serde(default)]
        preferred: Option<i32>,
    },
    SetConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    SetAttributes {
        name: String,
        attributes: BTreeMap<String, String>,
        /// A mirror topic's failover: each listed partition's leader epoch becomes at least
        /// this (and is bumped in any case), above the epochs of the batches it mirrored.
        #[serde(default)]
        epoch_floors: BTreeMap<i32, i32>,
    },
    /// ElectLeaders: `preferred` moves leadership to the first assigned replica if it is live
    /// and in sync; otherwise (unclean) a leaderless partition takes any live replica.
    ElectLeader {
        topic: String,
        partition: i32,
        preferred: bool,
        /// Quorum-policy election: the controller found this live replica's log the most
        /// up to date among a majority of the replicas; it leads.
        #[serde(default)]
        target: Option<i32>,
    },
    /// AlterPartitionReassignments for one partition: move to `target`, or cancel the
    /// reassignment in progress (`None`).
    Reassign {
        topic: String,
        partition: i32,
        target: Option<Vec<i32>>,
    },
    /// Committed consumer offsets of a group (Kafka OffsetCommit, RocketMQ
    /// UPDATE_CONSUMER_OFFSET). They are not part of this state: applying writes them to every
    /// node's offset journal (see `raft_store`), so the group's coordinator may die.
    CommitOffsets {
        group: String,
        offsets: Vec<OffsetEntry>,
    },
    /// Removes a group's offsets: the listed partitions, or all of them (`None`).
    DeleteOffsets {
        group: String,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// A transactional id's coordinator state changed (`None`: removed). Like offsets, not
    /// part of this state: applied to every node's transaction table, so another node can
    /// take over coordinating the id.
    Txn {
        id: String,
        meta: Option<storage::TxnMeta>,
    },
    /// ACLs, credentials or quotas changed.
    Security(crate::auth::state::SecurityChange),
    /// A mirror link changed.
    Mirror(crate::mirror::link::LinkChange),
    /// A leader reports a new ISR (shrink or expand), fenced by its epochs.
    AlterIsr {
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
    },
}

/// One committed consumer offset, as replicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OffsetEntry {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: String,
    pub(crate) commit_ms: i64,
}

impl From<(String, i32, storage::CommittedOffset)> for OffsetEntry {
    fn from((topic, partition, c): (String, i32, storage::CommittedOffset)) -> Self {
        Self {
            topic,
            partition,
            offset: c.offset,
            leader_epoch: c.leader_epoch,
            metadata: c.metadata,
            commit_ms: c.commit_ms,
        }
    }
}

impl From<OffsetEntry> for (String, i32, storage::CommittedOffset) {
    fn from(e: OffsetEntry) -> Self {
        (
            e.topic,
            e.partition,
            storage::CommittedOffset {
                offset: e.offset,
                leader_epoch: e.leader_epoch,
                metadata: e.metadata,
                commit_ms: e.commit_ms,
            },
        )
    }
}

/// What applying a command returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Outcome {
    Ok,
    /// Rejected: Kafka error code and message.
    Rejected(i16, String),
}

const TOPIC_EXISTS: i16 = 36;
const UNKNOWN_TOPIC: i16 = 3;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_PARTITIONS: i16 = 37;
const FENCED_LEADER_EPOCH: i16 = 74;
const INVALID_REQUEST: i16 = 42;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

fn rejected(code: i16, msg: impl Into<String>) -> Outcome {
    Outcome::Rejected(code, msg.into())
}

impl ClusterState {
    fn live_nodes(&self) -> Vec<&NodeState> {
        self.nodes.values().filter(|n| !n.fenced).collect()
    }

    /// Ids of the nodes that are not fenced.
    pub(crate) fn live_ids(&self) -> BTreeSet<i32> {
        self.live_nodes().iter().map(|n| n.info.id).collect()
    }

    /// Which live node stands in for each fenced node's RocketMQ broker: for the dead nodes in
    /// id order, the next live node (cyclically after it) that has a standby endpoint and is
    /// not standing in for another broker already.
    pub(crate) fn stand_ins(&self) -> BTreeMap<i32, i32> {
        let mut free: Vec<i32> = self
            .live_nodes()
            .iter()
            .filter(|n| !n.info.rocketmq_standby_addr.is_empty())
            .map(|n| n.info.id)
            .collect();
        let mut out = BTreeMap::new();
        for dead in self.nodes.values().filter(|n| n.fenced).map(|n| n.info.id) {
            if free.is_empty() {
                break;
            }
            let pick = free.iter().position(|id| *id > dead).unwrap_or(0);
            out.insert(dead, free.remove(pick));
        }
        out
    }

    /// Rack-aware round robin (Kafka's): nodes are interleaved rack by rack, then replica j of
    /// partition p goes to the node `start + p + j` places along that list.
    ///
    /// With `preferred`, that node is every partition's first replica and the followers
    /// rotate over the others (a RocketMQ broker's own queues).
    fn assign(
        &mut self,
        partitions: i32,
        first: i32,
        rf: i16,
        preferred: Option<i32>,
    ) -> Result<Vec<Vec<i32>>, Outcome> {
        let live = self.live_nodes();
        if rf < 1 || rf as usize > live.len() {
            return Err(rejected(
                INVALID_REPLICATION_FACTOR,
                format!(
                    "replication factor {rf} is not between 1 and the {} available nodes",
                    live.len()
                ),
            ));
        }
        let mut by_rack: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for n in &live {
            by_rack
                .entry(n.info.rack.clone().unwrap_or_default())
                .or_default()
                .push(n.info.id);
        }
        let mut order = Vec::with_capacity(live.len());
        let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
        for i in 0..deepest {
            for ids in by_rack.values() {
                if let Some(id) = ids.get(i) {
                    order.push(*id);
                }
            }
        }
        let n = order.len();
        let start = self.next_start as usize;
        self.next_start = self.next_start.wrapping_add(1);
        if let Some(k) = preferred {
            if !order.contains(&k) {
                return Err(rejected(
                    INVALID_REPLICA_ASSIGNMENT,
                    format!("node {k} is not alive"),
                ));
            }
            let others: Vec<i32> = order.iter().copied().filter(|id| *id != k).collect();
            return Ok((first..first + partitions)
                .map(|p| {
                    let mut r = vec![k];
                    r.extend(
                        (0..rf as usize - 1)
                            .map(|j| others[(start + p as usize + j) % others.len()]),
                    );
                    r
                })
                .collect());
        }
        Ok((first..first + partitions)
            .map(|p| {
                (0..rf as usize)
                    .map(|j| order[(start + p as usize + j) % n])
                    .collect()
            })
            .collect())
    }

    fn next_code(&self) -> u32 {
        let used: BTreeSet<u32> = self.topics.values().map(|t| t.code).collect();
        (1..).find(|c| !used.contains(c)).unwrap_or(u32::MAX)
    }

    fn new_partitions(assignment: Vec<Vec<i32>>) -> Vec<PartitionState> {
        assignment
            .into_iter()
            .map(|replicas| PartitionState {
                leader: replicas.first().copied().unwrap_or(NO_LEADER),
                leader_epoch: 0,
                partition_epoch: 0,
                isr: replicas.clone(),
                replicas,
                adding: Vec::new(),
                removing: Vec::new(),
            })
            .collect()
    }

    /// Applies one command.
    pub(crate) fn apply(&mut self, cmd: Command) -> Outcome {
        match cmd {
            Command::Security(change) => {
                self.security.apply(change);
                Outcome::Ok
            }
            Command::Mirror(change) => {
                self.mirror.apply(change);
                Outcome::Ok
            }
            Command::RegisterNode(info) => {
                let id = info.id;
                self.nodes.insert(
                    id,
                    NodeState {
                        info,
                        fenced: false,
                    },
                );
                self.on_node_up(id);
                Outcome::Ok
            }
            Command::FenceNode { id } => {
                match self.nodes.get_mut(&id) {
                    Some(n) if !n.fenced => n.fenced = true,
                    _ => return Outcome::Ok,
                }
                self.on_node_down(id);
                Outcome::Ok
            }
            Command::CreateTopic {
                name,
                id,
                partitions,
                replication_factor,
                configs,
                attributes,
                assignment,
                preferred,
            } => {
                if self.topics.contains_key(&name) {
                    return rejected(TOPIC_EXISTS, format!("Topic '{name}' already exists."));
                }
                if partitions < 1 {
                    return rejected(INVALID_PARTITIONS, "partitions must be at least 1");
                }
                let assignment = match assignment {
                    Some(a) => {
                        if a.len() != partitions as usize
                            || a.iter().any(|r| {
                                r.is_empty()
                                    || r.iter().any(|n| !self.nodes.contains_key(n))
                                    || r.iter().collect::<BTreeSet<_>>().len() != r.len()
                            })
                        {
                            return rejected(
                                INVALID_REPLICA_ASSIGNMENT,
                                "replica assignment names unknown or repeated nodes",
                            );
                        }
                        a
                    }
                    None => match self.assign(partitions, 0, replication_factor, preferred) {
                        Ok(a) => a,
                        Err(o) => return o,
                    },
                };
                let code = self.next_code();
                self.topics.insert(
                    name,
                    TopicState {
                        id,
                        code,
                        partitions: Self::new_partitions(assignment),
                        configs,
                        attributes,
                        internal: false,
                    },
                );
                Outcome::Ok
            }
            Command::DeleteTopic { name } => match self.topics.remove(&name) {
                Some(_) => Outcome::Ok,
                None => rejected(UNKNOWN_TOPIC, format!("Topic '{name}' does not exist.")),
            },
            Command::CreatePartitions {
                name,
                total,
                preferred,
            } => {
                let Some(t) = self.topics.get(&name) else {
                    return rejected(UNKNOWN_TOPIC, format!("Topic '{name}' does not exist."));
                };
                let have = t.partitions.len() as i32;
                if total <= have {
                    return rejected(
                        INVALID_PARTITIONS,
                        format!("Topic currently has {have} partitions, {total} would not be an increase."),
                    );
                }
                let rf = t.replication_factor();
                let extra = match self.assign(total - have, have, rf, preferred) {
                    Ok(a) => a,
                    Err(o) => return o,
                };
                if let Some(t) = self.topics.get_mut(&name) {
                    t.partitions.extend(Self::new_partitions(extra));
                }
                Outcome::Ok
            }
            Command::SetConfigs { name, configs } => match self.topics.get_mut(&name) {
                Some(t) => {
                    t.configs = configs;
                    // Enabling unclean election can bring a leaderless partition back.
                    for id in self.live_ids() {
                        self.on_node_up(id);
                    }
                    Outcome::Ok
                }
                None => rejected(UNKNOWN_TOPIC, format!("Topic '{name}' does not exist.")),
            },
            Command::SetAttributes {
                name,
                attributes,
                epoch_floors,
            } => match self.topics.get_mut(&name) {
                Some(t) => {
                    t.attributes = attributes;
                    for (i, floor) in epoch_floors {
                        if let Some(p) = t.partitions.get_mut(i as usize) {
                            p.leader_epoch = (p.leader_epoch + 1).max(floor);
                        }
                    }
                    Outcome::Ok
                }
                None => rejected(UNKNOWN_TOPIC, format!("Topic '{name}' does not exist.")),
            },
            Command::ElectLeader {
                topic,
                partition,
                preferred,
                target,
            } => {
                let live = self.live_ids();
                let Some(p) = self
                    .topics
                    .get_mut(&topic)
                    .and_then(|t| t.partitions.get_mut(partition as usize))
                else {
                    return rejected(UNKNOWN_TOPIC, "unknown partition");
                };
                if let Some(t) = target {
                    if p.leader != NO_LEADER {
                        return rejected(ELECTION_NOT_NEEDED, "the partition has a leader");
                    }
                    if !p.replicas.contains(&t) || !live.contains(&t) {
                        return rejected(
                            ELIGIBLE_LEADERS_NOT_AVAILABLE,
                            format!("{t} is not a live replica"),
                        );
                    }
                    p.leader = t;
                    if !p.isr.contains(&t) {
                        p.isr.push(t);
                        let order = p.replicas.clone();
                        p.isr.sort_by_key(|r| order.iter().position(|x| x == r));
                    }
                } else if preferred {
                    let Some(pref) = p.replicas.first().copied() else {
                        return rejected(PREFERRED_LEADER_NOT_AVAILABLE, "no replicas");
                    };
                    if p.leader == pref {
                        return rejected(
                            ELECTION_NOT_NEEDED,
                            "the preferred replica leads already",
                        );
                    }
                    if !live.contains(&pref) || !p.isr.contains(&pref) {
                        return rejected(
                            PREFERRED_LEADER_NOT_AVAILABLE,
                            format!("preferred replica {pref} is not alive and in sync"),
                        );
                    }
                    p.leader = pref;
                } else {
                    if p.leader >= 0 {
                        return rejected(ELECTION_NOT_NEEDED, "the partition has a leader");
                    }
                    match p.replicas.iter().find(|r| live.contains(r)).copied() {
                        Some(l) => {
                            p.leader = l;
                            if !p.isr.contains(&l) {
                                p.isr = vec![l];
                            }
                        }
                        None => return rejected(ELIGIBLE_LEADERS_NOT_AVAILABLE, "no live replica"),
                    }
                }
                p.leader_epoch += 1;
                p.partition_epoch += 1;
                Outcome::Ok
            }
            Command::Reassign {
                topic,
                partition,
                target,
            } => self.reassign(&topic, partition, target),
            // Applied to the offset journals by the state machine, not to this state.
            Command::CommitOffsets { .. } | Command::DeleteOffsets { .. } | Command::Txn { .. } => {
                Outcome::Ok
            }
            Command::AlterIsr {
                topic,
                partition,
                leader,
                leader_epoch,
                isr,
            } => {
                let live = self.live_ids();
                let Some(p) = self
                    .topics
                    .get_mut(&topic)
                    .and_then(|t| t.partitions.get_mut(partition as usize))
                else {
                    return rejected(UNKNOWN_TOPIC, "unknown partition");
                };
                if p.leader != leader || p.leader_epoch != leader_epoch {
                    return rejected(FENCED_LEADER_EPOCH, "stale leader or epoch");
                }
                if !isr.contains(&leader)
                    || isr
                        .iter()
                        .any(|r| !p.replicas.contains(r) || !live.contains(r))
                {
                    return rejected(
                        INVALID_REQUEST,
                        "ISR must hold the leader and live replicas",
                    );
                }
                if p.isr != isr {
                    p.isr = isr;
                    p.partition_epoch += 1;
                }
                p.try_complete_reassignment(&live);
                Outcome::Ok
            }
        }
    }

    /// Starts, changes or cancels a partition reassignment. As in Kafka, the replica set
    /// becomes target + (original - target) while the added replicas catch up; it shrinks
    /// to the target once they are all in the ISR.
    fn reassign(&mut self, topic: &str, partition: i32, target: Option<Vec<i32>>) -> Outcome {
        let live = self.live_ids();
        let known: BTreeSet<i32> = self.nodes.keys().copied().collect();
        let Some(p) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(partition as usize))
        else {
            return rejected(UNKNOWN_TOPIC, "unknown topic or partition");
        };
        // The replicas before any reassignment in progress.
        let original: Vec<i32> = p
            .replicas
            .iter()
            .filter(|r| !p.adding.contains(r))
            .copied()
            .collect();
        let Some(target) = target else {
            if !p.reassigning() {
                return rejected(
                    NO_REASSIGNMENT_IN_PROGRESS,
                    format!("no reassignment of {topic}-{partition} is in progress"),
                );
            }
            p.settle(original, &live);
            return Outcome::Ok;
        };
        if target.is_empty()
            || target.iter().collect::<BTreeSet<_>>().len() != target.len()
            || target.iter().any(|r| !known.contains(r))
        {
            return rejected(
                INVALID_REPLICA_ASSIGNMENT,
                format!("replicas {target:?} must be distinct registered nodes"),
            );
        }
        p.adding = target
            .iter()
            .filter(|r| !original.contains(r))
            .copied()
            .collect();
        p.removing = original
            .iter()
            .filter(|r| !target.contains(r))
            .copied()
            .collect();
        let mut replicas = target.clone();
        replicas.extend(p.removing.iter().copied());
        p.replicas = replicas;
        // Replicas dropped by a changed reassignment leave the ISR too.
        p.isr.retain(|r| p.replicas.contains(r));
        p.partition_epoch += 1;
        if p.reassigning() {
            p.try_complete_reassignment(&live);
        }
        if p.leader == NO_LEADER || !p.replicas.contains(&p.leader) {
            // Only possible when a changed reassignment dropped the leader.
            p.leader = p
                .replicas
                .iter()
                .find(|r| p.isr.contains(r) && live.contains(r))
                .copied()
                .unwrap_or(NO_LEADER);
            p.leader_epoch += 1;
        }
        Outcome::Ok
    }

    /// A node left: it drops out of every ISR (unless it is the last member, which Kafka keeps
    /// so a clean election can wait for it), and partitions it led elect a new leader from the
    /// ISR, or from any live replica where unclean election is enabled.
    fn on_node_down(&mut self, id: i32) {
        let live = self.live_ids();
        // The dead node's own partitions (its RocketMQ queues) go to its stand-in when it is
        // in sync, so one node serves that broker's queues.
        let stand_in = self.stand_ins().get(&id).copied();
        for t in self.topics.values_mut() {
            let unclean = t.unclean_allowed();
            let quorum = t.quorum_policy();
            for p in t.partitions.iter_mut() {
                if !p.replicas.contains(&id) {
                    continue;
                }
                let mut changed = false;
                if p.isr.contains(&id) && p.isr.len() > 1 {
                    p.isr.retain(|r| *r != id);
                    changed = true;
                }
                if p.leader == id && quorum {
                    // A majority may hold acknowledged records the ISR's first member lacks:
                    // the controller compares the replicas' logs and elects (ElectLeader with
                    // a target).
                    p.leader = NO_LEADER;
                    p.leader_epoch += 1;
                    changed = true;
                } else if p.leader == id {
                    let preferred =
                        stand_in.filter(|s| p.replicas.first() == Some(&id) && p.isr.contains(s));
                    let next = preferred.or_else(|| {
                        p.replicas
                            .iter()
                            .find(|r| p.isr.contains(r) && live.contains(r))
                            .copied()
                    });
                    match next {
                        Some(l) => p.leader = l,
                        None if unclean => {
                            match p.replicas.iter().find(|r| live.contains(r)).copied() {
                                Some(l) => {
                                    p.leader = l;
                                    p.isr = vec![l];
                                }
                                None => p.leader = NO_LEADER,
                            }
                        }
                        None => p.leader = NO_LEADER,
                    }
                    p.leader_epoch += 1;
                    changed = true;
                }
                if changed {
                    p.partition_epoch += 1;
                }
            }
        }
    }

    /// A node came (back): leaderless partitions it may lead elect it.
    fn on_node_up(&mut self, id: i32) {
        for t in self.topics.values_mut() {
            let unclean = t.unclean_allowed();
            let quorum = t.quorum_policy();
            for p in t.partitions.iter_mut() {
                if quorum || p.leader != NO_LEADER || !p.replicas.contains(&id) {
                    continue;
                }
                if p.isr.contains(&id) {
                    p.leader = id;
                } else if unclean {
                    p.leader = id;
                    p.isr = vec![id];
                } else {
                    continue;
                }
                p.leader_epoch += 1;
                p.partition_epoch += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i32, rack: &str) -> Command {
        Command::RegisterNode(NodeInfo {
            id,
            host: "127.0.0.1".into(),
            kafka_port: 9000 + id,
            rocketmq_addr: format!("127.0.0.1:{}", 10000 + id),
            rocketmq_name: format!("broker-{id}"),
            rocketmq_standby_addr: format!("127.0.0.1:{}", 12000 + id),
            controller_addr: format!("127.0.0.1:{}", 11000 + id),
            rack: Some(rack.into()),
            listeners: BTreeMap::new(),
        })
    }

    fn create(name: &str, partitions: i32, rf: i16) -> Command {
        Command::CreateTopic {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor: rf,
            configs: BTreeMap::new(),
            attributes: BTreeMap::new(),
            assignment: None,
            preferred: None,
        }
    }

    #[test]
    fn assignment_spreads_leaders_and_racks() {
        let mut s = ClusterState::default();
        for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b")] {
            assert_eq!(s.apply(node(id, rack)), Outcome::Ok);
        }
        assert_eq!(s.apply(create("t", 4, 2)), Outcome::Ok);
        let t = &s.topics["t"];
        let leaders: BTreeSet<i32> = t.partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders.len(), 4);
        for p in &t.partitions {
            let racks: BTreeSet<_> = p
                .replicas
                .iter()
                .map(|r| s.nodes[r].info.rack.clone())
                .collect();
            assert_eq!(racks.len(), 2, "replicas {:?} share a rack", p.replicas);
            assert_eq!(p.isr, p.replicas);
        }
        assert!(matches!(
            s.apply(create("u", 1, 5)),
            Outcome::Rejected(INVALID_REPLICATION_FACTOR, _)
        ));
        assert!(matches!(
            s.apply(create("t", 1, 1)),
            Outcome::Rejected(TOPIC_EXISTS, _)
        ));
    }

    #[test]
    fn reassignment_adds_then_removes_and_can_be_cancelled() {
        let mut s = ClusterState::default();
        for id in 1..=4 {
            s.apply(node(id, "r"));
        }
        s.apply(Command::CreateTopic {
            name: "t".into(),
            id: Uuid::new_v4(),
            partitions: 2,
            replication_factor: 2,
            configs: BTreeMap::new(),
            attributes: BTreeMap::new(),
            assignment: Some(vec![vec![1, 2], vec![1, 2]]),
            preferred: None,
        });
        let reassign = |target: Option<Vec<i32>>, partition| Command::Reassign {
            topic: "t".into(),
            partition,
            target,
        };
        // Move partition 0 from [1, 2] to [3, 1]: 3 is added, 2 stays until 3 is in sync.
        assert_eq!(s.apply(reassign(Some(vec![3, 1]), 0)), Outcome::Ok);
        let p = s.topics["t"].partitions[0].clone();
        assert_eq!(
            (p.replicas, p.adding, p.removing),
            (vec![3, 1, 2], vec![3], vec![2])
        );
        assert_eq!((p.leader, p.isr), (1, vec![1, 2]));
        let isr = |isr: Vec<i32>| Command::AlterIsr {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            isr,
        };
        assert_eq!(s.apply(isr(vec![1, 2, 3])), Outcome::Ok);
        let p = s.topics["t"].partitions[0].clone();
        assert!(!p.reassigning());
        assert_eq!((p.replicas, p.isr, p.leader), (vec![3, 1], vec![1, 3], 1));
        // Moving the leader away hands leadership to an in-sync target replica.
        assert_eq!(s.apply(reassign(Some(vec![3]), 0)), Outcome::Ok);
        let p = s.topics["t"].partitions[0].clone();
        assert_eq!((p.replicas, p.leader, p.leader_epoch), (vec![3], 3, 1));
        // Cancelling restores the original replicas; nothing to cancel is an error.
        assert_eq!(s.apply(reassign(Some(vec![4, 2]), 1)), Outcome::Ok);
        assert_eq!(s.topics["t"].partitions[1].replicas, vec![4, 2, 1]);
        assert_eq!(s.apply(reassign(None, 1)), Outcome::Ok);
        let p = s.topics["t"].partitions[1].clone();
        // As in KRaft, the reverted set keeps the merged order (target first).
        assert_eq!((p.replicas, p.isr, p.leader), (vec![2, 1], vec![1, 2], 1));
        assert!(matches!(
            s.apply(reassign(None, 1)),
            Outcome::Rejected(NO_REASSIGNMENT_IN_PROGRESS, _)
        ));
        assert!(matches!(
            s.apply(reassign(Some(vec![9]), 1)),
            Outcome::Rejected(INVALID_REPLICA_ASSIGNMENT, _)
        ));
    }

    #[test]
    fn a_dead_brokers_partitions_go_to_its_stand_in() {
        let mut s = ClusterState::default();
        for id in 1..=4 {
            s.apply(node(id, "r"));
        }
        s.apply(create("t", 8, 3));
        s.apply(Command::FenceNode { id: 2 });
        assert_eq!(s.stand_ins(), BTreeMap::from([(2, 3)]));
        for p in &s.topics["t"].partitions {
            if p.replicas[0] == 2 && p.isr.contains(&3) {
                assert_eq!(p.leader, 3, "{p:?}");
            }
            assert_ne!(p.leader, 2);
        }
        // A second failure: the next free stand-in after it, wrapping around.
        s.apply(Command::FenceNode { id: 4 });
        assert_eq!(s.stand_ins(), BTreeMap::from([(2, 3), (4, 1)]));
        // The broker returns: it needs no stand-in any more.
        s.apply(node(2, "r"));
        assert_eq!(s.stand_ins(), BTreeMap::from([(4, 1)]));
    }

    #[test]
    fn quorum_partitions_wait_for_the_controllers_log_comparison() {
        let mut s = ClusterState::default();
        for id in 1..=3 {
            s.apply(node(id, "r"));
        }
        s.apply(Command::CreateTopic {
            name: "q".into(),
            id: Uuid::new_v4(),
            partitions: 1,
            replication_factor: 3,
            configs: BTreeMap::from([("replication.policy".into(), "quorum".into())]),
            attributes: BTreeMap::new(),
            assignment: Some(vec![vec![1, 2, 3]]),
            preferred: None,
        });
        s.apply(Command::FenceNode { id: 1 });
        let p = s.topics["q"].partitions[0].clone();
        assert_eq!((p.leader, p.leader_epoch), (NO_LEADER, 1));
        // A node coming back does not take it either: only the comparison elects.
        s.apply(node(1, "r"));
        assert_eq!(s.topics["q"].partitions[0].leader, NO_LEADER);
        s.apply(Command::FenceNode { id: 1 });
        let elect = |target| Command::ElectLeader {
            topic: "q".into(),
            partition: 0,
            preferred: false,
            target: Some(target),
        };
        assert!(matches!(
            s.apply(elect(1)),
            Outcome::Rejected(ELIGIBLE_LEADERS_NOT_AVAILABLE, _)
        ));
        assert_eq!(s.apply(elect(3)), Outcome::Ok);
        let p = s.topics["q"].partitions[0].clone();
        assert_eq!((p.leader, p.leader_epoch), (3, 2));
        assert!(matches!(
            s.apply(elect(2)),
            Outcome::Rejected(ELECTION_NOT_NEEDED, _)
        ));
    }

    #[test]
    fn failover_is_clean_unless_allowed() {
        let mut s = ClusterState::default();
        for id in 1..=3 {
            s.apply(node(id, "r"));
        }
        s.apply(create("t", 1, 3));
        let leader = s.topics["t"].partitions[0].leader;
        s.apply(Command::FenceNode { id: leader });
        let p = s.topics["t"].partitions[0].clone();
        assert_ne!(p.leader, leader);
        assert!(!p.isr.contains(&leader));
        assert_eq!(p.leader_epoch, 1);
        // The stale leader's ISR change is refused.
        assert!(matches!(
            s.apply(Command::AlterIsr {
                topic: "t".into(),
                partition: 0,
                leader,
                leader_epoch: 0,
                isr: vec![leader],
            }),
            Outcome::Rejected(FENCED_LEADER_EPOCH, _)
        ));
        // Shrink to the leader alone, then lose it: no clean candidate, no leader.
        let l2 = p.leader;
        assert_eq!(
            s.apply(Command::AlterIsr {
                topic: "t".into(),
                partition: 0,
                leader: l2,
                leader_epoch: 1,
                isr: vec![l2],
            }),
            Outcome::Ok
        );
        s.apply(Command::FenceNode { id: l2 });
        let p = s.topics["t"].partitions[0].clone();
        assert_eq!(p.leader, NO_LEADER);
        assert_eq!(p.isr, vec![l2]);
        // The old leader returns but is not in the ISR: still no leader.
        s.apply(node(leader, "r"));
        assert_eq!(s.topics["t"].partitions[0].leader, NO_LEADER);
        // The last ISR member returns: it leads again.
        s.apply(node(l2, "r"));
        let p = s.topics["t"].partitions[0].clone();
        assert_eq!(p.leader, l2);
        assert_eq!(p.leader_epoch, 3);
    }

    #[test]
    fn preferred_election_moves_leadership_back() {
        let mut s = ClusterState::default();
        for id in 1..=3 {
            s.apply(node(id, "r"));
        }
        s.apply(create("t", 1, 3));
        let pref = s.topics["t"].partitions[0].replicas[0];
        let elect = || Command::ElectLeader {
            topic: "t".into(),
            partition: 0,
            preferred: true,
            target: None,
        };
        assert!(matches!(
            s.apply(elect()),
            Outcome::Rejected(ELECTION_NOT_NEEDED, _)
        ));
        s.apply(Command::FenceNode { id: pref });
        assert!(matches!(
            s.apply(elect()),
            Outcome::Rejected(PREFERRED_LEADER_NOT_AVAILABLE, _)
        ));
        // Back, but not yet in the ISR.
        s.apply(node(pref, "r"));
        assert!(matches!(
            s.apply(elect()),
            Outcome::Rejected(PREFERRED_LEADER_NOT_AVAILABLE, _)
        ));
        let p = s.topics["t"].partitions[0].clone();
        let mut isr = p.isr.clone();
        isr.push(pref);
        s.apply(Command::AlterIsr {
            topic: "t".into(),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            isr,
        });
        assert_eq!(s.apply(elect()), Outcome::Ok);
        let p = s.topics["t"].partitions[0].clone();
        assert_eq!(p.leader, pref);
        assert_eq!(p.leader_epoch, 2);
    }

    #[test]
    fn unclean_election_takes_any_live_replica() {
        let mut s = ClusterState::default();
        for id in 1..=2 {
            s.apply(node(id, "r"));
        }
        s.apply(create("t", 1, 2));
        let p = s.topics["t"].partitions[0].clone();
        let (l, f) = (p.replicas[0], p.replicas[1]);
        s.apply(Command::AlterIsr {
            topic: "t".into(),
            partition: 0,
            leader: l,
            leader_epoch: 0,
            isr: vec![l],
        });
        s.apply(Command::FenceNode { id: l });
        assert_eq!(s.topics["t"].partitions[0].leader, NO_LEADER);
        let mut configs = BTreeMap::new();
        configs.insert("unclean.leader.election.enable".into(), "true".into());
        s.apply(Command::SetConfigs {
            name: "t".into(),
            configs,
        });
        let p = s.topics["t"].partitions[0].clone();
        assert_eq!(p.leader, f);
        assert_eq!(p.isr, vec![f]);
    }
}

//! The classic group state machine, after Apache Kafka 3.x's `GroupCoordinator.scala` and
//! `GroupMetadata.scala` (with the offset-commit rules of the newer `ClassicGroup`).
//!
//! Every group is an `Arc<Group>` in one map; its state sits behind its own `parking_lot`
//! mutex that is never held across an `.await`. Requests that must wait (JoinGroup until the
//! rebalance completes, SyncGroup of followers until the leader's assignment) park a oneshot
//! sender in their member and await the receiver after the lock is released. Every group has
//! one timer task that sleeps until the group's earliest deadline (member session expiry,
//! pending-member expiry, the (initial) delayed join, the pending-sync timeout, empty-group
//! clean-up) and is woken through a `Notify` when an earlier deadline appears.
//!
//! The coordinator is protocol agnostic: it picks a protocol supported by all members (Kafka's
//! vote) and passes member metadata and assignments through opaquely.

use bytes::{Buf, Bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;
use storage::Store;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

/// Group coordinator settings (Kafka's `group.*` broker configs).
#[derive(Debug, Clone)]
pub(crate) struct GroupConfig {
    pub(crate) initial_rebalance_delay_ms: u64,
    pub(crate) min_session_timeout_ms: i32,
    pub(crate) max_session_timeout_ms: i32,
    pub(crate) max_size: i32,
}

/// Error code of "no error".
pub(crate) const NONE: i16 = 0;

/// Kafka's `GroupCoordinator.NewMemberJoinTimeoutMs`: how long a new member may wait in a
/// JoinGroup before it is dropped.
const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How often an empty group without committed offsets is checked for removal (Kafka's
/// `offsets.retention.check.interval.ms` default).
const EMPTY_GROUP_CHECK_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// The protocol type of Kafka consumers.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(1 << 30)))
        .unwrap_or(now)
}

fn ms(v: i32) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

/// Kafka's group states, named as Kafka prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinedMember {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) metadata: Bytes,
}

/// Kafka's `JoinGroupResult`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinResult {
    pub(crate) members: Vec<JoinedMember>,
    pub(crate) member_id: String,
    pub(crate) generation_id: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader_id: String,
    pub(crate) skip_assignment: bool,
    pub(crate) error: i16,
}

impl JoinResult {
    pub(crate) fn error(member_id: impl Into<String>, error: ResponseError) -> Self {
        JoinResult {
            members: Vec::new(),
            member_id: member_id.into(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            skip_assignment: false,
            error: code(error),
        }
    }
}

/// Kafka's `SyncGroupResult`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncResult {
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) assignment: Bytes,
    pub(crate) error: i16,
}

impl SyncResult {
    pub(crate) fn error(error: ResponseError) -> Self {
        SyncResult {
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
            error: code(error),
        }
    }
}

/// A JoinGroup request as the coordinator sees it.
#[derive(Debug, Clone)]
pub(crate) struct JoinParams {
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    /// JoinGroup v4+ of a dynamic member: a new member first gets MEMBER_ID_REQUIRED.
    pub(crate) require_known_member_id: bool,
    /// JoinGroup v9+: a static leader rejoining a stable group may skip the assignment.
    pub(crate) support_skip_assignment: bool,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    pub(crate) protocol_type: String,
    pub(crate) protocols: Vec<(String, Bytes)>,
}

/// A SyncGroup request as the coordinator sees it.
#[derive(Debug, Clone)]
pub(crate) struct SyncParams {
    pub(crate) group_id: String,
    pub(crate) generation_id: i32,
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) assignments: Vec<(String, Bytes)>,
}

/// One member to remove in a LeaveGroup request, and the outcome.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeaveOutcome {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) error: i16,
}

/// A member in DescribeGroups.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MemberSummary {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) metadata: Bytes,
    pub(crate) assignment: Bytes,
}

/// A group in DescribeGroups (Kafka's `GroupSummary`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupSummary {
    pub(crate) state: &'static str,
    pub(crate) protocol_type: String,
    pub(crate) protocol: String,
    pub(crate) members: Vec<MemberSummary>,
}

/// A group in ListGroups (Kafka's `GroupOverview`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupOverview {
    pub(crate) group_id: String,
    pub(crate) protocol_type: String,
    pub(crate) state: &'static str,
}

enum Pending<T> {
    Ready(T),
    Wait(oneshot::Receiver<T>),
}

struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
    /// When the member's session expires unless it heartbeats (None: not watched).
    deadline: Option<Instant>,
    is_new: bool,
    /// Join order, for deterministic iteration.
    seq: u64,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(p, _)| p == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols.len() == protocols.len()
            && self
                .protocols
                .iter()
                .zip(protocols)
                .all(|((n1, m1), (n2, m2))| n1 == n2 && m1 == m2)
    }

    fn vote<'a>(&'a self, candidates: &HashSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|(p, _)| p.as_str())
            .find(|p| candidates.contains(p))
    }

    fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    fn awaiting_sync(&self) -> bool {
        self.sync_waiter.is_some()
    }

    /// Kafka's `MemberMetadata.hasSatisfiedHeartbeat` at expiry time: members parked in a
    /// rebalance are not expired, except new members (which may wait at most 5 minutes).
    fn exempt_from_expiry(&self) -> bool {
        !self.is_new && (self.awaiting_join() || self.awaiting_sync())
    }
}

enum JoinTimer {
    /// Kafka's `InitialDelayedJoin`: never completes early; on expiry it is extended while
    /// new members keep arriving, until the remaining rebalance time is used up.
    Initial {
        deadline: Instant,
        configured_ms: u64,
        delay_ms: u64,
        remaining_ms: u64,
    },
    /// Kafka's `DelayedJoin`: completes when every member has rejoined, or on expiry.
    Regular { deadline: Instant },
}

impl JoinTimer {
    fn deadline(&self) -> Instant {
        match self {
            JoinTimer::Initial { deadline, .. } | JoinTimer::Regular { deadline } => *deadline,
        }
    }
}

struct GroupInner {
    id: String,
    state: GroupState,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation_id: i32,
    leader_id: Option<String>,
    members: HashMap<String, Member>,
    /// group.instance.id -> member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pending_members: HashMap<String, Instant>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pending_sync: HashSet<String>,
    /// Kafka's `DelayedSync`: (deadline, generation).
    sync_deadline: Option<(Instant, i32)>,
    join_timer: Option<JoinTimer>,
    new_member_added: bool,
    next_seq: u64,
    /// When an empty group is next checked for removal.
    empty_check_at: Instant,
    /// Deadline the timer task sleeps until.
    armed: Option<Instant>,
    /// Whether the timer task must recompute its deadline.
    wake_needed: bool,
}

/// One group: its state and the timer task's wake-up.
struct Group {
    inner: Mutex<GroupInner>,
    wake: Notify,
}

impl Group {
    fn new(id: &str) -> Self {
        let now = Instant::now();
        Group {
            inner: Mutex::new(GroupInner {
                id: id.to_string(),
                state: GroupState::Empty,
                protocol_type: None,
                protocol_name: None,
                generation_id: 0,
                leader_id: None,
                members: HashMap::new(),
                static_members: HashMap::new(),
                pending_members: HashMap::new(),
                pending_sync: HashSet::new(),
                sync_deadline: None,
                join_timer: None,
                new_member_added: false,
                next_seq: 0,
                empty_check_at: after(now, EMPTY_GROUP_CHECK_INTERVAL),
                armed: None,
                wake_needed: true,
            }),
            wake: Notify::new(),
        }
    }

    /// Runs `f` under the group lock, then wakes the timer task if a deadline earlier than
    /// the one it sleeps on was set.
    fn with<R>(&self, f: impl FnOnce(&mut GroupInner) -> R) -> R {
        let (r, wake) = {
            let mut g = self.inner.lock();
            let r = f(&mut g);
            (r, std::mem::take(&mut g.wake_needed))
        };
        if wake {
            self.wake.notify_one();
        }
        r
    }
}

impl GroupInner {
    fn arm(&mut self, deadline: Instant) {
        if self.armed.is_none_or(|a| deadline < a) {
            self.wake_needed = true;
        }
    }

    fn transition(&mut self, to: GroupState, now: Instant) {
        self.state = to;
        if to == GroupState::Empty {
            self.empty_check_at = after(now, EMPTY_GROUP_CHECK_INTERVAL);
            let at = self.empty_check_at;
            self.arm(at);
        }
    }

    fn has(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    fn ordered_ids(&self) -> Vec<String> {
        let mut v: Vec<(&u64, &String)> = self.members.values().map(|m| (&m.seq, &m.id)).collect();
        v.sort();
        v.into_iter().map(|(_, id)| id.clone()).collect()
    }

    fn ordered_members(&self) -> Vec<&Member> {
        let mut v: Vec<&Member> = self.members.values().collect();
        v.sort_by_key(|m| m.seq);
        v
    }

    fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .fold(0, i32::max)
    }

    fn all_members_joined(&self) -> bool {
        self.members.values().all(Member::awaiting_join) && self.pending_members.is_empty()
    }

    fn num_awaiting_join(&self) -> usize {
        self.members.values().filter(|m| m.awaiting_join()).count()
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.state == GroupState::Empty {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols.iter().any(|(p, _)| {
                    self.members
                        .values()
                        .all(|m| m.protocols.iter().any(|(q, _)| q == p))
                })
        }
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member votes
    /// for its most preferred one; most votes wins (ties: the first voted for, in join order).
    fn select_protocol(&self) -> Option<String> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            let mut seen = HashSet::new();
            for (p, _) in &m.protocols {
                if seen.insert(p.as_str()) {
                    *counts.entry(p.as_str()).or_default() += 1;
                }
            }
        }
        let candidates: HashSet<&str> = counts
            .into_iter()
            .filter(|(_, c)| *c == n)
            .map(|(p, _)| p)
            .collect();
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for m in self.ordered_members() {
            if let Some(p) = m.vote(&candidates) {
                match votes.iter_mut().find(|(q, _)| *q == p) {
                    Some(e) => e.1 += 1,
                    None => votes.push((p, 1)),
                }
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (p, c) in votes {
            if best.is_none_or(|(_, bc)| c > bc) {
                best = Some((p, c));
            }
        }
        best.map(|(p, _)| p.to_string())
    }

    fn current_member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.ordered_members()
            .into_iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect()
    }

    fn add_member(&mut self, mut member: Member) {
        if let Some(inst) = &member.instance_id {
            self.static_members.insert(inst.clone(), member.id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.id.clone());
        }
        member.seq = self.next_seq;
        self.next_seq += 1;
        self.pending_members.remove(&member.id);
        self.members.insert(member.id.clone(), member);
    }

    /// Kafka's `GroupMetadata.remove`. A SyncGroup still parked by the member is answered
    /// with UNKNOWN_MEMBER_ID rather than left hanging.
    fn remove_member(&mut self, member_id: &str) {
        if let Some(mut m) = self.members.remove(member_id) {
            if let Some(inst) = &m.instance_id {
                self.static_members.remove(inst);
            }
            if let Some(tx) = m.sync_waiter.take() {
                let _ = tx.send(SyncResult::error(ResponseError::UnknownMemberId));
            }
        }
        if self.is_leader(member_id) {
            self.leader_id = self.ordered_ids().into_iter().next();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
    }

    fn update_member(
        &mut self,
        member_id: &str,
        protocols: Vec<(String, Bytes)>,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i32,
        waiter: Option<oneshot::Sender<JoinResult>>,
    ) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.protocols = protocols;
            m.rebalance_timeout_ms = rebalance_timeout_ms;
            m.session_timeout_ms = session_timeout_ms;
            m.join_waiter = waiter;
        }
    }

    fn invoke_join(&mut self, member_id: &str, result: JoinResult) {
        if let Some(tx) = self
            .members
            .get_mut(member_id)
            .and_then(|m| m.join_waiter.take())
        {
            let _ = tx.send(result);
        }
    }

    fn invoke_sync(&mut self, member_id: &str, result: SyncResult) -> bool {
        match self
            .members
            .get_mut(member_id)
            .and_then(|m| m.sync_waiter.take())
        {
            Some(tx) => {
                let _ = tx.send(result);
                true
            }
            None => false,
        }
    }

    fn reschedule_heartbeat(&mut self, member_id: &str, now: Instant) {
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        let d = after(now, ms(m.session_timeout_ms));
        m.deadline = Some(d);
        self.arm(d);
    }

    /// Kafka's `validateCurrentMember`.
    fn validate_current_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        if let Some(inst) = instance_id {
            match self.static_members.get(inst) {
                Some(current) if current != member_id => {
                    return Some(ResponseError::FencedInstanceId)
                }
                None => return Some(ResponseError::UnknownMemberId),
                Some(_) => {}
            }
        }
        if !self.has(member_id) {
            return Some(ResponseError::UnknownMemberId);
        }
        None
    }

    fn accept_joining_member(&self, member_id: &str, max_size: i32) -> bool {
        let max = usize::try_from(max_size).unwrap_or(0);
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(Member::awaiting_join)
                    || self.num_awaiting_join() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.has(member_id) || self.members.len() < max
            }
        }
    }

    fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }

    fn maybe_prepare_rebalance(&mut self, cfg: &GroupConfig, now: Instant) {
        if self.can_rebalance() {
            self.prepare_rebalance(cfg, now);
        }
    }

    fn prepare_rebalance(&mut self, cfg: &GroupConfig, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment_error(ResponseError::RebalanceInProgress, now);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let rebalance_ms = u64::try_from(self.rebalance_timeout_ms()).unwrap_or(0);
        let timer = if self.state == GroupState::Empty {
            let delay = cfg.initial_rebalance_delay_ms;
            JoinTimer::Initial {
                deadline: after(now, Duration::from_millis(delay)),
                configured_ms: delay,
                delay_ms: delay,
                remaining_ms: rebalance_ms.saturating_sub(delay),
            }
        } else {
            JoinTimer::Regular {
                deadline: after(now, Duration::from_millis(rebalance_ms)),
            }
        };
        self.arm(timer.deadline());
        self.join_timer = Some(timer);
        self.transition(GroupState::PreparingRebalance, now);
        tracing::info!(
            group = %self.id,
            generation = self.generation_id,
            "preparing to rebalance group"
        );
        self.try_complete_join(now);
    }

    /// Kafka's `DelayedJoin.tryComplete`: the initial delayed join never completes early.
    fn try_complete_join(&mut self, now: Instant) {
        if self.state == GroupState::PreparingRebalance
            && matches!(self.join_timer, Some(JoinTimer::Regular { .. }))
            && self.all_members_joined()
        {
            self.on_complete_join(now);
        }
    }

    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.clone() else {
            return false;
        };
        if self.members.get(&leader).is_some_and(Member::awaiting_join) {
            return true;
        }
        let joined = self
            .ordered_members()
            .into_iter()
            .find(|m| m.awaiting_join())
            .map(|m| m.id.clone());
        match joined {
            Some(id) => {
                self.leader_id = Some(id);
                true
            }
            None => false,
        }
    }

    fn on_complete_join(&mut self, now: Instant) {
        self.join_timer = None;
        let gone: Vec<String> = self
            .ordered_members()
            .into_iter()
            .filter(|m| !m.awaiting_join() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            tracing::info!(group = %self.id, member = %id, "removing member that did not rejoin");
            self.remove_member(&id);
        }
        if self.state == GroupState::Dead {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that did not rejoin are left: wait for them (or for their
            // sessions to expire) for another rebalance timeout.
            let d = after(now, ms(self.rebalance_timeout_ms()));
            self.join_timer = Some(JoinTimer::Regular { deadline: d });
            self.arm(d);
            return;
        }
        self.init_next_generation(now);
        if self.state == GroupState::Empty {
            tracing::info!(group = %self.id, generation = self.generation_id, "group is now empty");
            return;
        }
        tracing::info!(
            group = %self.id,
            generation = self.generation_id,
            members = self.members.len(),
            "stabilized group"
        );
        let leader = self.leader_id.clone().unwrap_or_default();
        let all = self.current_member_metadata();
        for id in self.ordered_ids() {
            let result = JoinResult {
                members: if id == leader {
                    all.clone()
                } else {
                    Vec::new()
                },
                member_id: id.clone(),
                generation_id: self.generation_id,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                leader_id: leader.clone(),
                skip_assignment: false,
                error: NONE,
            };
            self.invoke_join(&id, result);
            self.reschedule_heartbeat(&id, now);
            if let Some(m) = self.members.get_mut(&id) {
                m.is_new = false;
            }
            self.pending_sync.insert(id);
        }
        let d = after(now, ms(self.rebalance_timeout_ms()));
        self.sync_deadline = Some((d, self.generation_id));
        self.arm(d);
    }

    fn init_next_generation(&mut self, now: Instant) {
        self.generation_id = self.generation_id.wrapping_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now);
        } else {
            self.protocol_name = self.select_protocol();
            self.transition(GroupState::CompletingRebalance, now);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
    }

    fn reset_and_propagate_assignment_error(&mut self, error: ResponseError, now: Instant) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        self.propagate_assignment(code(error), now);
    }

    fn set_and_propagate_assignment(
        &mut self,
        mut assignment: HashMap<String, Bytes>,
        now: Instant,
    ) {
        for m in self.members.values_mut() {
            m.assignment = assignment.remove(&m.id).unwrap_or_default();
        }
        self.propagate_assignment(NONE, now);
    }

    fn propagate_assignment(&mut self, error: i16, now: Instant) {
        let (ptype, pname) = if error == NONE {
            (self.protocol_type.clone(), self.protocol_name.clone())
        } else {
            (None, None)
        };
        for id in self.ordered_ids() {
            let assignment = self
                .members
                .get(&id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default();
            let result = SyncResult {
                protocol_type: ptype.clone(),
                protocol_name: pname.clone(),
                assignment,
                error,
            };
            if self.invoke_sync(&id, result) {
                self.reschedule_heartbeat(&id, now);
            }
        }
    }

    /// Kafka's `removeMemberAndUpdateGroup`.
    fn remove_member_and_update_group(&mut self, member_id: &str, cfg: &GroupConfig, now: Instant) {
        self.invoke_join(
            member_id,
            JoinResult::error("", ResponseError::UnknownMemberId),
        );
        self.remove_member(member_id);
        match self.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(cfg, now)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
        }
    }

    fn remove_pending_member_and_update_group(&mut self, member_id: &str, now: Instant) {
        self.remove_member(member_id);
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(now);
        }
    }

    fn remove_pending_sync(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }

    fn new_member(
        p: &JoinParams,
        id: String,
        waiter: oneshot::Sender<JoinResult>,
        now: Instant,
    ) -> Member {
        Member {
            id,
            instance_id: p.group_instance_id.clone(),
            client_id: p.client_id.clone(),
            client_host: p.client_host.clone(),
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            session_timeout_ms: p.session_timeout_ms,
            protocol_type: p.protocol_type.clone(),
            protocols: p.protocols.clone(),
            assignment: Bytes::new(),
            join_waiter: Some(waiter),
            sync_waiter: None,
            deadline: Some(after(now, NEW_MEMBER_JOIN_TIMEOUT)),
            is_new: true,
            seq: 0,
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        p: &JoinParams,
        member_id: String,
        cfg: &GroupConfig,
        now: Instant,
    ) -> Pending<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let member = Self::new_member(p, member_id, tx, now);
        if let Some(d) = member.deadline {
            self.arm(d);
        }
        if self.state == GroupState::PreparingRebalance && self.generation_id == 0 {
            self.new_member_added = true;
        }
        self.add_member(member);
        self.maybe_prepare_rebalance(cfg, now);
        Pending::Wait(rx)
    }

    fn update_member_and_rebalance(
        &mut self,
        p: &JoinParams,
        cfg: &GroupConfig,
        now: Instant,
    ) -> Pending<JoinResult> {
        let (tx, rx) = oneshot::channel();
        self.update_member(
            &p.member_id,
            p.protocols.clone(),
            p.rebalance_timeout_ms,
            p.session_timeout_ms,
            Some(tx),
        );
        self.maybe_prepare_rebalance(cfg, now);
        Pending::Wait(rx)
    }

    /// Kafka's `replaceStaticMember`: the old member id is fenced.
    fn replace_static_member(&mut self, instance_id: &str, old_id: &str, new_id: &str) -> bool {
        let Some(mut m) = self.members.remove(old_id) else {
            return false;
        };
        if let Some(tx) = m.join_waiter.take() {
            let _ = tx.send(JoinResult::error(old_id, ResponseError::FencedInstanceId));
        }
        if let Some(tx) = m.sync_waiter.take() {
            let _ = tx.send(SyncResult::error(ResponseError::FencedInstanceId));
        }
        m.id = new_id.to_string();
        self.members.insert(new_id.to_string(), m);
        if self.is_leader(old_id) {
            self.leader_id = Some(new_id.to_string());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_string());
        }
        self.static_members
            .insert(instance_id.to_string(), new_id.to_string());
        true
    }

    fn update_static_member_and_rebalance(
        &mut self,
        p: &JoinParams,
        instance_id: &str,
        old_id: &str,
        new_id: String,
        cfg: &GroupConfig,
        now: Instant,
    ) -> Pending<JoinResult> {
        let current_leader = self.leader_id.clone().unwrap_or_default();
        if !self.replace_static_member(instance_id, old_id, &new_id) {
            return Pending::Ready(JoinResult::error("", ResponseError::UnknownMemberId));
        }
        self.reschedule_heartbeat(&new_id, now);
        let (tx, rx) = oneshot::channel();
        self.update_member(
            &new_id,
            p.protocols.clone(),
            p.rebalance_timeout_ms,
            p.session_timeout_ms,
            Some(tx),
        );
        match self.state {
            GroupState::Stable => {
                if self.select_protocol() == self.protocol_name {
                    tracing::info!(
                        group = %self.id,
                        instance = %instance_id,
                        "static member rejoined a stable group without rebalance"
                    );
                    let result = if p.support_skip_assignment {
                        let is_leader = self.is_leader(&new_id);
                        JoinResult {
                            members: if is_leader {
                                self.current_member_metadata()
                            } else {
                                Vec::new()
                            },
                            member_id: new_id.clone(),
                            generation_id: self.generation_id,
                            protocol_type: self.protocol_type.clone(),
                            protocol_name: self.protocol_name.clone(),
                            leader_id: self.leader_id.clone().unwrap_or_default(),
                            skip_assignment: is_leader,
                            error: NONE,
                        }
                    } else {
                        // Return the old leader id so a rejoining leader does not compute an
                        // assignment a stable group would ignore.
                        JoinResult {
                            members: Vec::new(),
                            member_id: new_id.clone(),
                            generation_id: self.generation_id,
                            protocol_type: self.protocol_type.clone(),
                            protocol_name: self.protocol_name.clone(),
                            leader_id: current_leader,
                            skip_assignment: false,
                            error: NONE,
                        }
                    };
                    self.invoke_join(&new_id, result);
                } else {
                    self.maybe_prepare_rebalance(cfg, now);
                }
            }
            GroupState::CompletingRebalance => self.prepare_rebalance(cfg, now),
            GroupState::PreparingRebalance => {}
            GroupState::Empty | GroupState::Dead => {
                self.invoke_join(
                    &new_id,
                    JoinResult::error("", ResponseError::UnknownMemberId),
                );
            }
        }
        Pending::Wait(rx)
    }

    fn join(&mut self, p: &JoinParams, cfg: &GroupConfig, now: Instant) -> Pending<JoinResult> {
        let result = if !self.accept_joining_member(&p.member_id, cfg.max_size) {
            self.remove_member(&p.member_id);
            Pending::Ready(JoinResult::error("", ResponseError::GroupMaxSizeReached))
        } else if p.member_id.is_empty() {
            self.join_new_member(p, cfg, now)
        } else {
            self.join_current_member(p, cfg, now)
        };
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(now);
        }
        result
    }

    fn join_new_member(
        &mut self,
        p: &JoinParams,
        cfg: &GroupConfig,
        now: Instant,
    ) -> Pending<JoinResult> {
        if self.state == GroupState::Dead {
            return Pending::Ready(JoinResult::error(
                "",
                ResponseError::CoordinatorNotAvailable,
            ));
        }
        if !self.supports_protocols(&p.protocol_type, &p.protocols) {
            return Pending::Ready(JoinResult::error(
                "",
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        let prefix = p.group_instance_id.as_deref().unwrap_or(&p.client_id);
        let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        match &p.group_instance_id {
            Some(inst) => match self.static_members.get(inst).cloned() {
                Some(old_id) => {
                    tracing::info!(
                        group = %self.id,
                        instance = %inst,
                        old = %old_id,
                        new = %new_id,
                        "static member rejoins with unknown member id; replacing"
                    );
                    self.update_static_member_and_rebalance(p, inst, &old_id, new_id, cfg, now)
                }
                None => self.add_member_and_rebalance(p, new_id, cfg, now),
            },
            None if p.require_known_member_id => {
                let d = after(now, ms(p.session_timeout_ms));
                self.pending_members.insert(new_id.clone(), d);
                self.arm(d);
                Pending::Ready(JoinResult::error(new_id, ResponseError::MemberIdRequired))
            }
            None => self.add_member_and_rebalance(p, new_id, cfg, now),
        }
    }

    fn join_current_member(
        &mut self,
        p: &JoinParams,
        cfg: &GroupConfig,
        now: Instant,
    ) -> Pending<JoinResult> {
        let member_id = p.member_id.as_str();
        if self.state == GroupState::Dead {
            return Pending::Ready(JoinResult::error(
                member_id,
                ResponseError::CoordinatorNotAvailable,
            ));
        }
        if !self.supports_protocols(&p.protocol_type, &p.protocols) {
            return Pending::Ready(JoinResult::error(
                member_id,
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        if self.pending_members.contains_key(member_id) && p.group_instance_id.is_none() {
            return self.add_member_and_rebalance(p, member_id.to_string(), cfg, now);
        }
        if let Some(e) = self.validate_current_member(member_id, p.group_instance_id.as_deref()) {
            return Pending::Ready(JoinResult::error(member_id, e));
        }
        let (matches, is_leader) = match self.members.get(member_id) {
            Some(m) => (m.matches(&p.protocols), self.is_leader(member_id)),
            None => {
                return Pending::Ready(JoinResult::error(member_id, ResponseError::UnknownMemberId))
            }
        };
        let current = |g: &GroupInner, members: Vec<JoinedMember>| JoinResult {
            members,
            member_id: member_id.to_string(),
            generation_id: g.generation_id,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            leader_id: g.leader_id.clone().unwrap_or_default(),
            skip_assignment: false,
            error: NONE,
        };
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(p, cfg, now),
            GroupState::CompletingRebalance => {
                if matches {
                    // Same metadata (the member probably lost the JoinGroup response): return
                    // the current generation.
                    let members = if is_leader {
                        self.current_member_metadata()
                    } else {
                        Vec::new()
                    };
                    Pending::Ready(current(self, members))
                } else {
                    self.update_member_and_rebalance(p, cfg, now)
                }
            }
            GroupState::Stable => {
                if is_leader || !matches {
                    // The leader may rejoin to force a rebalance (e.g. topic metadata changed).
                    self.update_member_and_rebalance(p, cfg, now)
                } else {
                    Pending::Ready(current(self, Vec::new()))
                }
            }
            GroupState::Empty | GroupState::Dead => {
                Pending::Ready(JoinResult::error(member_id, ResponseError::UnknownMemberId))
            }
        }
    }

    fn sync(&mut self, p: SyncParams, now: Instant) -> Pending<SyncResult> {
        if self.state == GroupState::Dead {
            return Pending::Ready(SyncResult::error(ResponseError::CoordinatorNotAvailable));
        }
        if let Some(e) = self.validate_current_member(&p.member_id, p.group_instance_id.as_deref())
        {
            return Pending::Ready(SyncResult::error(e));
        }
        if p.generation_id != self.generation_id {
            return Pending::Ready(SyncResult::error(ResponseError::IllegalGeneration));
        }
        if p.protocol_type.is_some() && p.protocol_type != self.protocol_type {
            return Pending::Ready(SyncResult::error(ResponseError::InconsistentGroupProtocol));
        }
        if p.protocol_name.is_some() && p.protocol_name != self.protocol_name {
            return Pending::Ready(SyncResult::error(ResponseError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Pending::Ready(SyncResult::error(ResponseError::UnknownMemberId))
            }
            GroupState::PreparingRebalance => {
                Pending::Ready(SyncResult::error(ResponseError::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&p.member_id) {
                    if let Some(old) = m.sync_waiter.replace(tx) {
                        let _ = old.send(SyncResult::error(ResponseError::RebalanceInProgress));
                    }
                }
                self.remove_pending_sync(&p.member_id);
                if self.is_leader(&p.member_id) {
                    tracing::info!(
                        group = %self.id,
                        generation = self.generation_id,
                        members = self.members.len(),
                        "assignment received from leader"
                    );
                    let mut assignment: HashMap<String, Bytes> = HashMap::new();
                    for (member, a) in p.assignments {
                        assignment.insert(member, a);
                    }
                    self.set_and_propagate_assignment(assignment, now);
                    self.transition(GroupState::Stable, now);
                }
                Pending::Wait(rx)
            }
            GroupState::Stable => {
                self.remove_pending_sync(&p.member_id);
                let assignment = self
                    .members
                    .get(&p.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                let result = SyncResult {
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment,
                    error: NONE,
                };
                self.reschedule_heartbeat(&p.member_id, now);
                Pending::Ready(result)
            }
        }
    }

    fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(e) = self.validate_current_member(member_id, instance_id) {
            return code(e);
        }
        if generation_id != self.generation_id {
            return code(ResponseError::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => code(ResponseError::UnknownMemberId),
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.reschedule_heartbeat(member_id, now);
                NONE
            }
            GroupState::PreparingRebalance => {
                self.reschedule_heartbeat(member_id, now);
                code(ResponseError::RebalanceInProgress)
            }
        }
    }

    fn leave(
        &mut self,
        leaving: Vec<(String, Option<String>)>,
        cfg: &GroupConfig,
        now: Instant,
    ) -> (i16, Vec<LeaveOutcome>) {
        if self.state == GroupState::Dead {
            return (code(ResponseError::CoordinatorNotAvailable), Vec::new());
        }
        let mut out = Vec::with_capacity(leaving.len());
        for (member_id, instance_id) in leaving {
            let error = if member_id.is_empty() {
                // Administrative removal by group.instance.id.
                match instance_id
                    .as_ref()
                    .and_then(|i| self.static_members.get(i).cloned())
                {
                    Some(current) => {
                        tracing::info!(group = %self.id, member = %current, "member left group");
                        self.remove_member_and_update_group(&current, cfg, now);
                        NONE
                    }
                    None => code(ResponseError::UnknownMemberId),
                }
            } else if self.pending_members.contains_key(&member_id) {
                self.remove_pending_member_and_update_group(&member_id, now);
                NONE
            } else {
                match self.validate_current_member(&member_id, instance_id.as_deref()) {
                    Some(e) => code(e),
                    None => {
                        tracing::info!(group = %self.id, member = %member_id, "member left group");
                        self.remove_member_and_update_group(&member_id, cfg, now);
                        NONE
                    }
                }
            };
            out.push(LeaveOutcome {
                member_id,
                group_instance_id: instance_id,
                error,
            });
        }
        (NONE, out)
    }

    /// ClassicGroup.validateOffsetCommit (plus the heartbeat refresh of Kafka 3.x).
    fn validate_commit(
        &mut self,
        member_id: &str,
        generation_id: i32,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            // Admin client or a consumer without group management.
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
            if let Some(e) = self.validate_current_member(member_id, instance_id) {
                return Err(e);
            }
            if generation_id != self.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
        } else if self.state != GroupState::Empty {
            // Only members may commit while the group has members.
            return Err(ResponseError::UnknownMemberId);
        }
        match self.state {
            GroupState::CompletingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::Stable | GroupState::PreparingRebalance => {
                self.reschedule_heartbeat(member_id, now);
                Ok(())
            }
            GroupState::Empty | GroupState::Dead => Ok(()),
        }
    }

    fn summary(&self) -> GroupSummary {
        let ptype = self.protocol_type.clone().unwrap_or_default();
        if self.state == GroupState::Stable {
            let protocol = self.protocol_name.clone().unwrap_or_default();
            GroupSummary {
                state: self.state.as_str(),
                protocol_type: ptype,
                members: self
                    .ordered_members()
                    .into_iter()
                    .map(|m| MemberSummary {
                        member_id: m.id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: m.metadata(&protocol),
                        assignment: m.assignment.clone(),
                    })
                    .collect(),
                protocol,
            }
        } else {
            GroupSummary {
                state: self.state.as_str(),
                protocol_type: ptype,
                protocol: String::new(),
                members: self
                    .ordered_members()
                    .into_iter()
                    .map(|m| MemberSummary {
                        member_id: m.id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: Bytes::new(),
                        assignment: Bytes::new(),
                    })
                    .collect(),
            }
        }
    }

    /// Topics the members subscribe to, when this is a consumer group with members.
    fn subscribed_topics(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return out;
        }
        for m in self.members.values() {
            let metadata = match &self.protocol_name {
                Some(p) => m.metadata(p),
                // No generation yet: use the member's preferred protocol.
                None => m
                    .protocols
                    .first()
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default(),
            };
            if let Some(topics) = decode_subscription_topics(&metadata) {
                out.extend(topics);
            }
        }
        out
    }

    fn empty_cleanup_eligible(&self) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && self.pending_members.is_empty()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |d: Instant| {
            if next.is_none_or(|n| d < n) {
                next = Some(d);
            }
        };
        for m in self.members.values() {
            if let Some(d) = m.deadline {
                consider(d);
            }
        }
        for d in self.pending_members.values() {
            consider(*d);
        }
        if let Some(t) = &self.join_timer {
            consider(t.deadline());
        }
        if let Some((d, _)) = self.sync_deadline {
            consider(d);
        }
        if self.empty_cleanup_eligible() {
            consider(self.empty_check_at);
        }
        next
    }

    /// Fires every deadline that has passed.
    fn on_timer(&mut self, cfg: &GroupConfig, now: Instant) {
        if self.state == GroupState::Dead {
            return;
        }
        // Pending members that never came back with their assigned id.
        let expired: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "pending member expired");
            self.remove_pending_member_and_update_group(&id, now);
        }
        // Session expiry.
        let mut expired: Vec<(u64, String)> = self
            .members
            .values()
            .filter(|m| m.deadline.is_some_and(|d| d <= now))
            .map(|m| (m.seq, m.id.clone()))
            .collect();
        expired.sort();
        for (_, id) in expired {
            let Some(m) = self.members.get_mut(&id) else {
                continue;
            };
            if m.deadline.is_none_or(|d| d > now) {
                continue;
            }
            if m.exempt_from_expiry() {
                m.deadline = None;
                continue;
            }
            tracing::info!(group = %self.id, member = %id, "member session expired; removing it from the group");
            self.remove_member_and_update_group(&id, cfg, now);
        }
        // Members that never sent SyncGroup.
        if let Some((d, generation)) = self.sync_deadline {
            if d <= now {
                self.sync_deadline = None;
                self.on_expire_pending_sync(generation, cfg, now);
            }
        }
        // The (initial) delayed join.
        if self.state == GroupState::PreparingRebalance {
            if let Some(t) = self.join_timer.take() {
                if t.deadline() > now {
                    self.join_timer = Some(t);
                } else {
                    match t {
                        JoinTimer::Initial {
                            configured_ms,
                            delay_ms,
                            remaining_ms,
                            ..
                        } if self.new_member_added && remaining_ms != 0 => {
                            self.new_member_added = false;
                            let delay = configured_ms.min(remaining_ms);
                            let remaining = remaining_ms.saturating_sub(delay_ms);
                            let deadline = after(now, Duration::from_millis(delay));
                            self.join_timer = Some(JoinTimer::Initial {
                                deadline,
                                configured_ms,
                                delay_ms: delay,
                                remaining_ms: remaining,
                            });
                            self.arm(deadline);
                        }
                        _ => self.on_complete_join(now),
                    }
                }
            }
        } else {
            self.join_timer = None;
        }
    }

    fn on_expire_pending_sync(&mut self, generation: i32, cfg: &GroupConfig, now: Instant) {
        if generation != self.generation_id {
            return;
        }
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && !self.pending_sync.is_empty()
        {
            let mut pending: Vec<String> = self.pending_sync.iter().cloned().collect();
            pending.sort();
            tracing::info!(group = %self.id, members = ?pending, "removing members that did not sync");
            for id in pending {
                self.remove_member(&id);
            }
            self.prepare_rebalance(cfg, now);
        }
    }
}

/// The topics of a consumer-protocol subscription (`version i16` + ConsumerProtocolSubscription;
/// newer versions are read as the newest known, which is a prefix-compatible layout).
pub(crate) fn decode_subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    if metadata.len() < 2 {
        return None;
    }
    let mut buf = metadata.clone();
    let version = buf.get_i16();
    if version < 0 {
        return None;
    }
    let full = ConsumerProtocolSubscription::decode(&mut buf.clone(), version.min(3))
        .or_else(|_| ConsumerProtocolSubscription::decode(&mut buf, 0))
        .ok()?;
    Some(
        full.topics
            .into_iter()
            .map(|t| t.as_str().to_string())
            .collect(),
    )
}

/// All groups of this node.
pub(crate) struct GroupCoordinator {
    config: GroupConfig,
    store: Arc<Store>,
    groups: Mutex<HashMap<String, Arc<Group>>>,
    me: Weak<GroupCoordinator>,
}

impl GroupCoordinator {
    pub(crate) fn new(config: GroupConfig, store: Arc<Store>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            config,
            store,
            groups: Mutex::new(HashMap::new()),
            me: me.clone(),
        })
    }

    fn group(&self, id: &str) -> Option<Arc<Group>> {
        self.groups.lock().get(id).cloned()
    }

    fn get_or_create(&self, id: &str) -> Arc<Group> {
        let created = {
            let mut map = self.groups.lock();
            if let Some(g) = map.get(id) {
                return g.clone();
            }
            let g = Arc::new(Group::new(id));
            map.insert(id.to_string(), g.clone());
            g
        };
        self.spawn_timer(&created);
        created
    }

    fn spawn_timer(&self, group: &Arc<Group>) {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(group_timer(self.me.clone(), group.clone()));
        }
    }

    fn has_offsets(&self, group: &str) -> bool {
        !self.store.offsets().group(group).is_empty()
    }

    /// JoinGroup: answers at once or when the rebalance completes.
    pub(crate) async fn join_group(&self, p: JoinParams) -> JoinResult {
        let member_id = p.member_id.clone();
        match self.join_group_now(&p) {
            Pending::Ready(r) => r,
            Pending::Wait(rx) => rx.await.unwrap_or_else(|_| {
                JoinResult::error(member_id, ResponseError::RebalanceInProgress)
            }),
        }
    }

    fn join_group_now(&self, p: &JoinParams) -> Pending<JoinResult> {
        if p.group_id.is_empty() {
            return Pending::Ready(JoinResult::error(
                p.member_id.clone(),
                ResponseError::InvalidGroupId,
            ));
        }
        if p.session_timeout_ms < self.config.min_session_timeout_ms
            || p.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Pending::Ready(JoinResult::error(
                p.member_id.clone(),
                ResponseError::InvalidSessionTimeout,
            ));
        }
        let group = if p.member_id.is_empty() {
            self.get_or_create(&p.group_id)
        } else {
            match self.group(&p.group_id) {
                Some(g) => g,
                None => {
                    return Pending::Ready(JoinResult::error(
                        p.member_id.clone(),
                        ResponseError::UnknownMemberId,
                    ))
                }
            }
        };
        let now = Instant::now();
        group.with(|g| g.join(p, &self.config, now))
    }

    /// SyncGroup: the leader's call distributes the assignment; followers wait for it.
    pub(crate) async fn sync_group(&self, p: SyncParams) -> SyncResult {
        match self.sync_group_now(p) {
            Pending::Ready(r) => r,
            Pending::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| SyncResult::error(ResponseError::RebalanceInProgress)),
        }
    }

    fn sync_group_now(&self, p: SyncParams) -> Pending<SyncResult> {
        if p.group_id.is_empty() {
            return Pending::Ready(SyncResult::error(ResponseError::InvalidGroupId));
        }
        let Some(group) = self.group(&p.group_id) else {
            return Pending::Ready(SyncResult::error(ResponseError::UnknownMemberId));
        };
        let now = Instant::now();
        group.with(|g| g.sync(p, now))
    }

    /// Heartbeat: the error code.
    pub(crate) fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> i16 {
        if group_id.is_empty() {
            return code(ResponseError::InvalidGroupId);
        }
        let Some(group) = self.group(group_id) else {
            return code(ResponseError::UnknownMemberId);
        };
        let now = Instant::now();
        group.with(|g| g.heartbeat(member_id, group_instance_id, generation_id, now))
    }

    /// LeaveGroup: top-level error and per-member outcomes.
    pub(crate) fn leave_group(
        &self,
        group_id: &str,
        members: Vec<(String, Option<String>)>,
    ) -> (i16, Vec<LeaveOutcome>) {
        if group_id.is_empty() {
            return (code(ResponseError::InvalidGroupId), Vec::new());
        }
        let Some(group) = self.group(group_id) else {
            let out = members
                .into_iter()
                .map(|(member_id, group_instance_id)| LeaveOutcome {
                    member_id,
                    group_instance_id,
                    error: code(ResponseError::UnknownMemberId),
                })
                .collect();
            return (NONE, out);
        };
        let now = Instant::now();
        group.with(|g| g.leave(members, &self.config, now))
    }

    /// Whether an OffsetCommit from this member/generation may proceed.
    pub(crate) fn validate_commit(
        &self,
        group: &str,
        member_id: &str,
        generation_id: i32,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        match self.group(group) {
            Some(g) => {
                let now = Instant::now();
                g.with(|g| g.validate_commit(member_id, generation_id, group_instance_id, now))
            }
            None if self.has_offsets(group) => {
                // A group known only by its offsets is an empty group.
                if generation_id < 0 {
                    Ok(())
                } else {
                    Err(ResponseError::UnknownMemberId)
                }
            }
            None if generation_id < 0 => Ok(()),
            // A commit from an older generation of a group that no longer exists.
            None => Err(ResponseError::IllegalGeneration),
        }
    }

    /// Whether the coordinator knows the group (it may be empty: members left, offsets kept).
    pub(crate) fn exists(&self, group: &str) -> bool {
        self.group(group)
            .is_some_and(|g| g.inner.lock().state != GroupState::Dead)
    }

    /// Topics the group's live consumer members subscribe to (for OffsetDelete).
    pub(crate) fn subscribed_topics(&self, group: &str) -> HashSet<String> {
        match self.group(group) {
            Some(g) => g.with(|g| g.subscribed_topics()),
            None => HashSet::new(),
        }
    }

    /// Kafka's OffsetDelete group check: `Ok(None)` when any offset may be deleted (empty or
    /// unknown group), `Ok(Some(topics))` for a consumer group with members (offsets of those
    /// topics must not be deleted: GROUP_SUBSCRIBED_TO_TOPIC), `Err(NON_EMPTY_GROUP)` for a
    /// non-consumer group with members.
    #[allow(dead_code)] // Offered to the OffsetDelete handler; `subscribed_topics` is what it uses.
    pub(crate) fn offset_delete_check(
        &self,
        group: &str,
    ) -> Result<Option<HashSet<String>>, ResponseError> {
        let Some(g) = self.group(group) else {
            return Ok(None);
        };
        g.with(|g| match g.state {
            GroupState::Empty | GroupState::Dead => Ok(None),
            _ if g.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE) => {
                Ok(Some(g.subscribed_topics()))
            }
            _ => Err(ResponseError::NonEmptyGroup),
        })
    }

    /// ListGroups: every group, including those known only by committed offsets.
    pub(crate) fn list_groups(&self) -> Vec<GroupOverview> {
        let groups: Vec<Arc<Group>> = self.groups.lock().values().cloned().collect();
        let mut out: Vec<GroupOverview> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for g in groups {
            let (id, state, ptype) = {
                let g = g.inner.lock();
                (
                    g.id.clone(),
                    g.state,
                    g.protocol_type.clone().unwrap_or_default(),
                )
            };
            if state == GroupState::Dead {
                continue;
            }
            seen.insert(id.clone());
            out.push(GroupOverview {
                group_id: id,
                protocol_type: ptype,
                state: state.as_str(),
            });
        }
        for id in self.store.offsets().groups() {
            if !seen.contains(&id) {
                out.push(GroupOverview {
                    group_id: id,
                    protocol_type: String::new(),
                    state: GroupState::Empty.as_str(),
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DescribeGroups of one group (unknown groups are "Dead", as Kafka reports them).
    pub(crate) fn describe_group(&self, group: &str) -> GroupSummary {
        if let Some(g) = self.group(group) {
            return g.with(|g| g.summary());
        }
        let state = if self.has_offsets(group) {
            GroupState::Empty
        } else {
            GroupState::Dead
        };
        GroupSummary {
            state: state.as_str(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        }
    }

    /// DeleteGroups of one group: the error code.
    pub(crate) fn delete_group(&self, group: &str) -> i16 {
        let existed = {
            let mut map = self.groups.lock();
            match map.get(group).cloned() {
                Some(g) => {
                    let mut inner = g.inner.lock();
                    match inner.state {
                        GroupState::Dead => false,
                        GroupState::Empty => {
                            inner.state = GroupState::Dead;
                            inner.pending_members.clear();
                            inner.join_timer = None;
                            drop(inner);
                            map.remove(group);
                            g.wake.notify_one();
                            true
                        }
                        _ => return code(ResponseError::NonEmptyGroup),
                    }
                }
                None => false,
            }
        };
        if !existed && !self.has_offsets(group) {
            return code(ResponseError::GroupIdNotFound);
        }
        match self.store.offsets().delete_group(group) {
            Ok(()) => {
                tracing::info!(group, "deleted group");
                NONE
            }
            Err(e) => {
                tracing::warn!(group, error = %e, "could not delete the group's offsets");
                code(ResponseError::UnknownServerError)
            }
        }
    }

    /// Removes an empty group that has no committed offsets (Kafka's periodic clean-up).
    fn cleanup_empty(&self, group: &Arc<Group>) {
        let mut map = self.groups.lock();
        let mut g = group.inner.lock();
        if !g.empty_cleanup_eligible() || Instant::now() < g.empty_check_at {
            return;
        }
        if self.has_offsets(&g.id) {
            g.empty_check_at = after(Instant::now(), EMPTY_GROUP_CHECK_INTERVAL);
            return;
        }
        let id = g.id.clone();
        g.state = GroupState::Dead;
        drop(g);
        if map.get(&id).is_some_and(|cur| Arc::ptr_eq(cur, group)) {
            map.remove(&id);
        }
        tracing::debug!(group = %id, "removed empty group");
    }

    #[cfg(test)]
    fn state_of(&self, group: &str) -> Option<(GroupState, i32, Option<String>, usize)> {
        self.group(group).map(|g| {
            let g = g.inner.lock();
            (
                g.state,
                g.generation_id,
                g.leader_id.clone(),
                g.members.len(),
            )
        })
    }
}

/// One group's timer: sleeps until the earliest deadline, fires what is due.
async fn group_timer(coordinator: Weak<GroupCoordinator>, group: Arc<Group>) {
    loop {
        let next = {
            let Some(c) = coordinator.upgrade() else {
                return;
            };
            let (next, cleanup) = {
                let mut g = group.inner.lock();
                if g.state == GroupState::Dead {
                    return;
                }
                let now = Instant::now();
                g.on_timer(&c.config, now);
                let cleanup = g.empty_cleanup_eligible() && g.empty_check_at <= now;
                let next = g.next_deadline();
                g.armed = next;
                g.wake_needed = false;
                (next, cleanup)
            };
            if cleanup {
                c.cleanup_empty(&group);
                continue;
            }
            next
        };
        match next {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(d) => {}
                    _ = group.wake.notified() => {}
                }
            }
            None => group.wake.notified().await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use storage::offsets::CommittedOffset;

    struct TempDir(std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn coordinator(delay_ms: u64, max_size: i32) -> (Arc<GroupCoordinator>, TempDir) {
        let dir = std::env::temp_dir().join(format!("group-coord-test-{}", uuid::Uuid::new_v4()));
        let store = Arc::new(Store::open(&dir, Default::default()).unwrap());
        let config = GroupConfig {
            initial_rebalance_delay_ms: delay_ms,
            min_session_timeout_ms: 10,
            max_session_timeout_ms: 60_000,
            max_size,
        };
        (GroupCoordinator::new(config, store), TempDir(dir))
    }

    fn join(group: &str, member: &str, meta: &'static [u8]) -> JoinParams {
        JoinParams {
            group_id: group.into(),
            member_id: member.into(),
            group_instance_id: None,
            require_known_member_id: false,
            support_skip_assignment: false,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 2_000,
            session_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(meta))],
        }
    }

    fn sync(
        group: &str,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncParams {
        SyncParams {
            group_id: group.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments,
        }
    }

    /// Joins two dynamic members and syncs them; returns (leader, follower, generation).
    async fn two_member_group(c: &Arc<GroupCoordinator>, g: &str) -> (String, String, i32) {
        let c1 = c.clone();
        let g1 = g.to_string();
        let a = tokio::spawn(async move { c1.join_group(join(&g1, "", b"m1")).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let c2 = c.clone();
        let g2 = g.to_string();
        let b = tokio::spawn(async move { c2.join_group(join(&g2, "", b"m2")).await });
        let ra = a.await.unwrap();
        let rb = b.await.unwrap();
        assert_eq!(ra.error, NONE);
        assert_eq!(rb.error, NONE);
        assert_eq!(ra.generation_id, rb.generation_id);
        assert_eq!(ra.leader_id, rb.leader_id);
        let (leader, follower) = if ra.leader_id == ra.member_id {
            (ra, rb)
        } else {
            (rb, ra)
        };
        assert_eq!(leader.members.len(), 2);
        assert!(follower.members.is_empty());
        let generation = leader.generation_id;
        let cf = c.clone();
        let gf = g.to_string();
        let fid = follower.member_id.clone();
        let fsync =
            tokio::spawn(async move { cf.sync_group(sync(&gf, &fid, generation, vec![])).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let assignments = vec![
            (leader.member_id.clone(), Bytes::from_static(b"A")),
            (follower.member_id.clone(), Bytes::from_static(b"B")),
        ];
        let ls = c
            .sync_group(sync(g, &leader.member_id, generation, assignments))
            .await;
        assert_eq!(ls.error, NONE);
        assert_eq!(ls.assignment, Bytes::from_static(b"A"));
        assert_eq!(ls.protocol_name.as_deref(), Some("range"));
        let fs = fsync.await.unwrap();
        assert_eq!(fs.error, NONE);
        assert_eq!(fs.assignment, Bytes::from_static(b"B"));
        (leader.member_id, follower.member_id, generation)
    }

    #[tokio::test]
    async fn two_members_join_and_sync() {
        let (c, _d) = coordinator(100, 100);
        let (leader, follower, generation) = two_member_group(&c, "g").await;
        assert_eq!(generation, 1);
        let (state, _, l, n) = c.state_of("g").unwrap();
        assert_eq!(state, GroupState::Stable);
        assert_eq!(l.as_deref(), Some(leader.as_str()));
        assert_eq!(n, 2);
        assert_eq!(c.heartbeat("g", &follower, None, generation), NONE);
        assert_eq!(
            c.heartbeat("g", &follower, None, generation + 1),
            ResponseError::IllegalGeneration.code()
        );
        assert_eq!(
            c.heartbeat("g", "nobody", None, generation),
            ResponseError::UnknownMemberId.code()
        );
        let d = c.describe_group("g");
        assert_eq!(d.state, "Stable");
        assert_eq!(d.protocol, "range");
        assert_eq!(d.members.len(), 2);
        assert!(d
            .members
            .iter()
            .any(|m| m.assignment == Bytes::from_static(b"B")));
        let l = c.list_groups();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].protocol_type, "consumer");
        assert_eq!(c.delete_group("g"), ResponseError::NonEmptyGroup.code());
        // A follower rejoining with the same metadata gets the current generation back.
        let r = c.join_group(join("g", &follower, b"m2")).await;
        assert_eq!(r.error, NONE);
        assert_eq!(r.generation_id, generation);
        assert_eq!(c.state_of("g").unwrap().0, GroupState::Stable);
        // The leader rejoining forces a rebalance even with unchanged metadata.
        let c2 = c.clone();
        let l = leader.clone();
        let h = tokio::spawn(async move { c2.join_group(join("g", &l, b"m1")).await });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(c.state_of("g").unwrap().0, GroupState::PreparingRebalance);
        assert_eq!(
            c.heartbeat("g", &follower, None, generation),
            ResponseError::RebalanceInProgress.code()
        );
        let fr = c.join_group(join("g", &follower, b"m2")).await;
        let lr = h.await.unwrap();
        assert_eq!(fr.generation_id, generation + 1);
        assert_eq!(lr.generation_id, generation + 1);
    }

    #[tokio::test]
    async fn member_id_required_flow() {
        let (c, _d) = coordinator(0, 100);
        let mut p = join("g", "", b"m");
        p.require_known_member_id = true;
        let r = c.join_group(p.clone()).await;
        assert_eq!(r.error, ResponseError::MemberIdRequired.code());
        assert!(r.member_id.starts_with("client-"));
        assert_eq!(r.generation_id, -1);
        p.member_id = r.member_id.clone();
        let r2 = c.join_group(p).await;
        assert_eq!(r2.error, NONE);
        assert_eq!(r2.member_id, r.member_id);
        assert_eq!(r2.leader_id, r.member_id);
        assert_eq!(r2.generation_id, 1);
        assert_eq!(r2.members.len(), 1);
        assert_eq!(r2.protocol_name.as_deref(), Some("range"));
        // An unknown member id is rejected.
        let r3 = c.join_group(join("g", "bogus", b"m")).await;
        assert_eq!(r3.error, ResponseError::UnknownMemberId.code());
        let r4 = c.join_group(join("nogroup", "bogus", b"m")).await;
        assert_eq!(r4.error, ResponseError::UnknownMemberId.code());
    }

    #[tokio::test]
    async fn join_validation_errors() {
        let (c, _d) = coordinator(0, 2);
        let mut p = join("g", "", b"m");
        p.session_timeout_ms = 1;
        assert_eq!(
            c.join_group(p).await.error,
            ResponseError::InvalidSessionTimeout.code()
        );
        let mut p = join("g", "", b"m");
        p.protocols.clear();
        assert_eq!(
            c.join_group(p).await.error,
            ResponseError::InconsistentGroupProtocol.code()
        );
        assert_eq!(
            c.join_group(join("", "", b"m")).await.error,
            ResponseError::InvalidGroupId.code()
        );
        let r = c.join_group(join("g", "", b"m")).await;
        assert_eq!(r.error, NONE);
        // Different protocol type or no common protocol.
        let mut p = join("g", "", b"m");
        p.protocol_type = "connect".into();
        assert_eq!(
            c.join_group(p).await.error,
            ResponseError::InconsistentGroupProtocol.code()
        );
        let mut p = join("g", "", b"m");
        p.protocols = vec![("other".into(), Bytes::new())];
        assert_eq!(
            c.join_group(p).await.error,
            ResponseError::InconsistentGroupProtocol.code()
        );
        // group.max.size = 1.
        let (c, _d) = coordinator(0, 1);
        assert_eq!(c.join_group(join("g", "", b"m")).await.error, NONE);
        let r = c.join_group(join("g", "", b"m")).await;
        assert_eq!(r.error, ResponseError::GroupMaxSizeReached.code());
        assert_eq!(r.member_id, "");
    }

    #[tokio::test]
    async fn protocol_selection_by_vote() {
        let (c, _d) = coordinator(50, 100);
        let mk = |protos: &[&'static str]| {
            let mut p = join("g", "", b"");
            p.protocol_type = "connect".into();
            p.protocols = protos
                .iter()
                .map(|n| (n.to_string(), Bytes::from_static(n.as_bytes())))
                .collect();
            p
        };
        let c1 = c.clone();
        let p1 = mk(&["a", "b", "c"]);
        let h1 = tokio::spawn(async move { c1.join_group(p1).await });
        let c2 = c.clone();
        let p2 = mk(&["b", "c"]);
        let h2 = tokio::spawn(async move { c2.join_group(p2).await });
        let c3 = c.clone();
        let p3 = mk(&["c", "b"]);
        let h3 = tokio::spawn(async move { c3.join_group(p3).await });
        let r1 = h1.await.unwrap();
        let r2 = h2.await.unwrap();
        let r3 = h3.await.unwrap();
        for r in [&r1, &r2, &r3] {
            assert_eq!(r.error, NONE);
            assert_eq!(r.protocol_type.as_deref(), Some("connect"));
        }
        // Candidates {b, c}; votes: b (member 1), b (member 2), c (member 3).
        assert_eq!(r1.protocol_name.as_deref(), Some("b"));
        let leader = [&r1, &r2, &r3]
            .into_iter()
            .find(|r| r.member_id == r.leader_id)
            .unwrap();
        assert_eq!(leader.members.len(), 3);
        assert!(leader
            .members
            .iter()
            .all(|m| m.metadata == Bytes::from_static(b"b")));
    }

    #[tokio::test]
    async fn session_expiry_removes_member_and_bumps_generation() {
        let (c, _d) = coordinator(0, 100);
        let mut p1 = join("g", "", b"m1");
        p1.session_timeout_ms = 300;
        p1.rebalance_timeout_ms = 5_000;
        let r1 = c.join_group(p1.clone()).await;
        assert_eq!(r1.generation_id, 1);
        let s1 = c
            .sync_group(sync(
                "g",
                &r1.member_id,
                1,
                vec![(r1.member_id.clone(), Bytes::from_static(b"x"))],
            ))
            .await;
        assert_eq!(s1.error, NONE);
        // Second member joins: rebalance; the first member rejoins.
        let mut p2 = join("g", "", b"m2");
        p2.session_timeout_ms = 300;
        let c2 = c.clone();
        let h2 = tokio::spawn(async move { c2.join_group(p2).await });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            c.heartbeat("g", &r1.member_id, None, 1),
            ResponseError::RebalanceInProgress.code()
        );
        let mut rejoin = p1.clone();
        rejoin.member_id = r1.member_id.clone();
        let r1b = c.join_group(rejoin).await;
        let r2 = h2.await.unwrap();
        assert_eq!(r1b.generation_id, 2);
        assert_eq!(r2.generation_id, 2);
        let leader = if r1b.leader_id == r1b.member_id {
            &r1b
        } else {
            &r2
        };
        let other = if leader.member_id == r1b.member_id {
            &r2
        } else {
            &r1b
        };
        let co = c.clone();
        let oid = other.member_id.clone();
        let hs = tokio::spawn(async move { co.sync_group(sync("g", &oid, 2, vec![])).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            c.sync_group(sync("g", &leader.member_id, 2, vec![]))
                .await
                .error,
            NONE
        );
        assert_eq!(hs.await.unwrap().error, NONE);
        // Only the leader heartbeats; the other member's session expires.
        let mut rebalancing = false;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let e = c.heartbeat("g", &leader.member_id, None, 2);
            if e != NONE {
                assert_eq!(e, ResponseError::RebalanceInProgress.code());
                rebalancing = true;
                break;
            }
        }
        assert!(rebalancing);
        let mut p = join("g", &leader.member_id, b"again");
        p.session_timeout_ms = 300;
        let r = c.join_group(p).await;
        assert_eq!(r.error, NONE);
        assert_eq!(r.generation_id, 3);
        assert_eq!(r.members.len(), 1);
        assert_eq!(
            c.heartbeat("g", &other.member_id, None, 3),
            ResponseError::UnknownMemberId.code()
        );
    }

    #[tokio::test]
    async fn static_member_rejoin_without_rebalance() {
        let (c, _d) = coordinator(0, 100);
        let mut p = join("g", "", b"m");
        p.group_instance_id = Some("inst-1".into());
        let r = c.join_group(p.clone()).await;
        assert_eq!(r.error, NONE);
        assert!(r.member_id.starts_with("inst-1-"));
        let s = c
            .sync_group(sync(
                "g",
                &r.member_id,
                1,
                vec![(r.member_id.clone(), Bytes::from_static(b"asg"))],
            ))
            .await;
        assert_eq!(s.assignment, Bytes::from_static(b"asg"));
        // Restart: same instance id, unknown member id, same metadata.
        let r2 = c.join_group(p.clone()).await;
        assert_eq!(r2.error, NONE);
        assert_ne!(r2.member_id, r.member_id);
        assert_eq!(r2.generation_id, 1);
        // Old leader id returned so that the member does not run an assignment.
        assert_eq!(r2.leader_id, r.member_id);
        assert!(r2.members.is_empty());
        let (state, generation, leader, _) = c.state_of("g").unwrap();
        assert_eq!(state, GroupState::Stable);
        assert_eq!(generation, 1);
        assert_eq!(leader.as_deref(), Some(r2.member_id.as_str()));
        // Sync returns the existing assignment.
        let mut sp = sync("g", &r2.member_id, 1, vec![]);
        sp.group_instance_id = Some("inst-1".into());
        assert_eq!(
            c.sync_group(sp).await.assignment,
            Bytes::from_static(b"asg")
        );
        // The old member id is fenced.
        assert_eq!(
            c.heartbeat("g", &r.member_id, Some("inst-1"), 1),
            ResponseError::FencedInstanceId.code()
        );
        assert_eq!(c.heartbeat("g", &r2.member_id, Some("inst-1"), 1), NONE);
        assert_eq!(
            c.validate_commit("g", &r.member_id, 1, Some("inst-1")),
            Err(ResponseError::FencedInstanceId)
        );
        // v9: the rejoining static leader is told to skip the assignment.
        p.support_skip_assignment = true;
        let r3 = c.join_group(p.clone()).await;
        assert_eq!(r3.leader_id, r3.member_id);
        assert!(r3.skip_assignment);
        assert_eq!(r3.members.len(), 1);
        // Batch leave by instance id.
        let (top, out) = c.leave_group(
            "g",
            vec![
                (String::new(), Some("inst-1".into())),
                (String::new(), Some("nope".into())),
            ],
        );
        assert_eq!(top, NONE);
        assert_eq!(out[0].error, NONE);
        assert_eq!(out[1].error, ResponseError::UnknownMemberId.code());
        let (state, generation, _, n) = c.state_of("g").unwrap();
        assert_eq!((state, generation, n), (GroupState::Empty, 2, 0));
    }

    #[tokio::test]
    async fn leave_triggers_rebalance() {
        let (c, _d) = coordinator(100, 100);
        let (leader, follower, generation) = two_member_group(&c, "g").await;
        let (top, out) = c.leave_group("g", vec![(follower.clone(), None)]);
        assert_eq!(top, NONE);
        assert_eq!(out[0].error, NONE);
        assert_eq!(c.state_of("g").unwrap().0, GroupState::PreparingRebalance);
        assert_eq!(
            c.heartbeat("g", &leader, None, generation),
            ResponseError::RebalanceInProgress.code()
        );
        let r = c.join_group(join("g", &leader, b"m1")).await;
        assert_eq!(r.error, NONE);
        assert_eq!(r.generation_id, generation + 1);
        assert_eq!(r.members.len(), 1);
        let (top, out) = c.leave_group("g", vec![(follower, None)]);
        assert_eq!(top, NONE);
        assert_eq!(out[0].error, ResponseError::UnknownMemberId.code());
        let (top, out) = c.leave_group("missing", vec![("x".into(), None)]);
        assert_eq!(top, NONE);
        assert_eq!(out[0].error, ResponseError::UnknownMemberId.code());
    }

    #[tokio::test]
    async fn stable_rejoin_rules() {
        let (c, _d) = coordinator(100, 100);
        let (leader, follower, generation) = two_member_group(&c, "g").await;
        // Follower with changed metadata triggers a rebalance.
        let c2 = c.clone();
        let f = follower.clone();
        let h = tokio::spawn(async move { c2.join_group(join("g", &f, b"changed")).await });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(c.state_of("g").unwrap().0, GroupState::PreparingRebalance);
        // Offsets: commits of the current generation are allowed while preparing.
        assert_eq!(c.validate_commit("g", &leader, generation, None), Ok(()));
        let lr = c.join_group(join("g", &leader, b"m1")).await;
        let fr = h.await.unwrap();
        assert_eq!(lr.generation_id, generation + 1);
        assert_eq!(fr.generation_id, generation + 1);
        // CompletingRebalance: commits get REBALANCE_IN_PROGRESS.
        assert_eq!(
            c.validate_commit("g", &leader, generation + 1, None),
            Err(ResponseError::RebalanceInProgress)
        );
        // Sync with a wrong generation / protocol.
        assert_eq!(
            c.sync_group(sync("g", &leader, generation, vec![]))
                .await
                .error,
            ResponseError::IllegalGeneration.code()
        );
        let mut sp = sync("g", &leader, generation + 1, vec![]);
        sp.protocol_name = Some("roundrobin".into());
        assert_eq!(
            c.sync_group(sp).await.error,
            ResponseError::InconsistentGroupProtocol.code()
        );
    }

    #[tokio::test]
    async fn commit_validation_codes() {
        let (c, _d) = coordinator(100, 100);
        // Unknown group: simple commits allowed, generation-aware commits are stale.
        assert_eq!(c.validate_commit("simple", "", -1, None), Ok(()));
        assert_eq!(
            c.validate_commit("simple", "m", 3, None),
            Err(ResponseError::IllegalGeneration)
        );
        // Group known only by offsets: it is an empty group.
        c.store
            .offsets()
            .commit(
                "offsets-only",
                &[(
                    "t".into(),
                    0,
                    CommittedOffset {
                        offset: 1,
                        leader_epoch: -1,
                        metadata: String::new(),
                        commit_ms: 0,
                    },
                )],
            )
            .unwrap();
        assert_eq!(c.validate_commit("offsets-only", "", -1, None), Ok(()));
        assert_eq!(
            c.validate_commit("offsets-only", "m", 1, None),
            Err(ResponseError::UnknownMemberId)
        );
        let l = c.list_groups();
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].state, l[0].protocol_type.as_str()), ("Empty", ""));
        assert_eq!(c.describe_group("offsets-only").state, "Empty");
        assert_eq!(c.describe_group("unknown").state, "Dead");

        let (leader, follower, generation) = two_member_group(&c, "g").await;
        assert_eq!(c.validate_commit("g", &leader, generation, None), Ok(()));
        assert_eq!(c.validate_commit("g", &follower, generation, None), Ok(()));
        assert_eq!(
            c.validate_commit("g", &leader, generation + 5, None),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            c.validate_commit("g", "stranger", generation, None),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            c.validate_commit("g", "", -1, None),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            c.validate_commit("g", &leader, generation, Some("inst")),
            Err(ResponseError::UnknownMemberId)
        );
        // Subscribed topics need a real subscription payload.
        assert!(c.subscribed_topics("g").is_empty());
        // Everyone leaves: the group is empty and admin commits are allowed again.
        let (_, out) = c.leave_group("g", vec![(leader.clone(), None), (follower.clone(), None)]);
        assert!(out.iter().all(|o| o.error == NONE));
        assert_eq!(c.state_of("g").unwrap().0, GroupState::Empty);
        assert_eq!(c.validate_commit("g", "", -1, None), Ok(()));
        assert_eq!(
            c.validate_commit("g", &leader, generation, None),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(c.delete_group("g"), NONE);
        assert_eq!(c.delete_group("g"), ResponseError::GroupIdNotFound.code());
        assert_eq!(c.delete_group("offsets-only"), NONE);
        assert!(c.store.offsets().group("offsets-only").is_empty());
        assert!(c.list_groups().is_empty());
    }

    #[tokio::test]
    async fn subscribed_topics_from_consumer_metadata() {
        use kafka_protocol::protocol::Encodable;
        let (c, _d) = coordinator(0, 100);
        let mut sub = ConsumerProtocolSubscription::default();
        sub.topics = vec!["t1".to_string().into(), "t2".to_string().into()];
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(&3i16.to_be_bytes());
        sub.encode(&mut buf, 3).unwrap();
        let meta = buf.freeze();
        let mut p = join("g", "", b"");
        p.protocols = vec![("range".into(), meta.clone())];
        let r = c.join_group(p).await;
        assert_eq!(r.error, NONE);
        let topics = c.subscribed_topics("g");
        assert_eq!(topics, HashSet::from(["t1".to_string(), "t2".to_string()]));
        assert_eq!(
            c.offset_delete_check("g"),
            Ok(Some(HashSet::from(["t1".to_string(), "t2".to_string()])))
        );
        // A version newer than we know is read as the newest known layout.
        let mut newer = bytes::BytesMut::new();
        newer.extend_from_slice(&7i16.to_be_bytes());
        newer.extend_from_slice(&meta[2..]);
        assert_eq!(
            decode_subscription_topics(&newer.freeze()).map(|t| t.len()),
            Some(2)
        );
        assert_eq!(
            decode_subscription_topics(&Bytes::from_static(b"\x00")),
            None
        );
    }

    #[tokio::test]
    async fn initial_rebalance_delay_groups_joiners() {
        let (c, _d) = coordinator(200, 100);
        let started = Instant::now();
        let c1 = c.clone();
        let a = tokio::spawn(async move { c1.join_group(join("g", "", b"a")).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let c2 = c.clone();
        let b = tokio::spawn(async move { c2.join_group(join("g", "", b"b")).await });
        let ra = a.await.unwrap();
        let rb = b.await.unwrap();
        assert_eq!(ra.generation_id, 1);
        assert_eq!(rb.generation_id, 1);
        // Extended once by the second joiner: about two delays.
        assert!(started.elapsed() >= Duration::from_millis(350));
    }

    #[tokio::test]
    async fn pending_sync_timeout_removes_silent_members() {
        let (c, _d) = coordinator(100, 100);
        let mut p1 = join("g", "", b"a");
        p1.rebalance_timeout_ms = 300;
        let c1 = c.clone();
        let a = tokio::spawn(async move { c1.join_group(p1).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut p2 = join("g", "", b"b");
        p2.rebalance_timeout_ms = 300;
        let c2 = c.clone();
        let b = tokio::spawn(async move { c2.join_group(p2).await });
        let ra = a.await.unwrap();
        let rb = b.await.unwrap();
        assert_eq!(ra.generation_id, 1);
        assert_eq!(rb.generation_id, 1);
        // Nobody syncs: after the rebalance timeout both are removed.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let (state, generation, _, n) = c.state_of("g").unwrap();
        assert_eq!(n, 0);
        assert_eq!(state, GroupState::Empty);
        assert_eq!(generation, 2);
    }
}

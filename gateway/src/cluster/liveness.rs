//! The controller's view of which nodes are alive: heartbeats, the session timeout, and a
//! fast path for dead processes.
//!
//! A node that misses its session timeout (`broker.session.timeout.ms`) is fenced, as in
//! KRaft. Waiting that long for a process that is gone costs a full session of unavailability,
//! so a node silent for longer than one heartbeat interval (or not yet heard by a newly
//! elected controller) is probed: a TCP connection to its controller port. A refused
//! connection means no process listens there (it died, or is restarting), and the node is
//! fenced at once. A paused or overloaded process still has its listening socket, whose
//! handshakes the kernel completes, and a host that is down or cut off answers nothing: both
//! keep their session, so a pause never causes an election by itself. The probe comes at
//! once when the connection a node heartbeats on drops (a killed process's sockets are reset
//! by its kernel), else when the node is late.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long a probe waits for the handshake; a refusal arrives at once.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// Probes of one node are at least this far apart.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// Lateness past the heartbeat interval before a node is probed.
const PROBE_GRACE: Duration = Duration::from_millis(100);

#[derive(Default)]
pub(crate) struct Liveness {
    /// When each node last sent a heartbeat (or this node became controller).
    last_seen: Mutex<HashMap<i32, Instant>>,
    /// Nodes heard from since this node became controller.
    heard: Mutex<HashSet<i32>>,
    /// When each node was last probed.
    probed: Mutex<HashMap<i32, Instant>>,
    /// Wakes the controller's check when a heartbeat connection drops.
    wake: tokio::sync::Notify,
}

impl Liveness {
    /// A new controller gives every node a full session from now and probes those it has not
    /// heard from yet (a dead previous controller among them).
    pub(crate) fn reset(&self, nodes: impl Iterator<Item = i32>) {
        let now = Instant::now();
        let mut seen = self.last_seen.lock();
        seen.clear();
        seen.extend(nodes.map(|id| (id, now)));
        self.heard.lock().clear();
        self.probed.lock().clear();
    }

    pub(crate) fn heartbeat(&self, id: i32) {
        self.last_seen.lock().insert(id, Instant::now());
        self.heard.lock().insert(id);
    }

    /// The connection `id` heartbeats on dropped: probe it at the next check.
    pub(crate) fn connection_lost(&self, id: i32) {
        self.heard.lock().remove(&id);
        self.probed.lock().remove(&id);
        self.wake.notify_one();
    }

    /// Resolves when a heartbeat connection dropped since the last call.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    /// Whether `id` has been silent longer than `session` (a node first seen here gets a full
    /// session from now).
    pub(crate) fn expired(&self, id: i32, session: Duration) -> bool {
        self.last_seen
            .lock()
            .entry(id)
            .or_insert_with(Instant::now)
            .elapsed()
            > session
    }

    /// Whether `id` is due a probe: late by more than a heartbeat or not heard yet, and not
    /// probed within [`PROBE_EVERY`]. Marks it probed.
    pub(crate) fn take_probe(&self, id: i32, heartbeat: Duration) -> bool {
        let late = !self.heard.lock().contains(&id)
            || self
                .last_seen
                .lock()
                .get(&id)
                .is_none_or(|t| t.elapsed() > heartbeat + PROBE_GRACE);
        if !late {
            return false;
        }
        let mut probed = self.probed.lock();
        if probed.get(&id).is_some_and(|t| t.elapsed() < PROBE_EVERY) {
            return false;
        }
        probed.insert(id, Instant::now());
        true
    }
}

/// How long a refused connection keeps a node suspect without another refusal.
const REFUSAL_HOLD: Duration = Duration::from_secs(2);

/// Nodes this node just found refusing connections (its replica fetchers and probes see it
/// first). Until the controller fences such a node, Metadata names no leader for the
/// partitions it leads, so clients keep asking (Kafka clients re-query a missing leader
/// within 100 ms) instead of waiting on a leader that is gone for their next periodic refresh.
#[derive(Default)]
pub(crate) struct Refusals(Mutex<HashMap<i32, Instant>>);

impl Refusals {
    pub(crate) fn refused(&self, id: i32) {
        self.0.lock().insert(id, Instant::now());
    }

    pub(crate) fn reached(&self, id: i32) {
        self.0.lock().remove(&id);
    }

    pub(crate) fn is_refusing(&self, id: i32) -> bool {
        let mut m = self.0.lock();
        match m.get(&id) {
            Some(t) if t.elapsed() < REFUSAL_HOLD => true,
            Some(_) => {
                m.remove(&id);
                false
            }
            None => false,
        }
    }
}

/// Whether an error (of a connect, possibly wrapped) is a refused connection.
pub(crate) fn is_refusal(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    })
}

/// Whether nothing listens at `addr`: the connection is refused (or the name does not
/// resolve to anything). A timeout or a completed handshake is not evidence of death.
pub(crate) async fn refused(addr: &str) -> bool {
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_only_without_a_listener() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok();
        let Some(l) = l else { panic!("bind") };
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        assert!(!refused(&addr).await);
        drop(l);
        assert!(refused(&addr).await);
    }

    #[test]
    fn refusals_hold_until_reached() {
        let r = Refusals::default();
        assert!(!r.is_refusing(3));
        r.refused(3);
        assert!(r.is_refusing(3));
        r.reached(3);
        assert!(!r.is_refusing(3));
    }

    #[test]
    fn probes_late_or_unheard_nodes_at_a_bounded_rate() {
        let l = Liveness::default();
        l.reset([1, 2].into_iter());
        let hb = Duration::from_secs(10);
        // Not heard since the reset: probed once, then not again within PROBE_EVERY.
        assert!(l.take_probe(1, hb));
        assert!(!l.take_probe(1, hb));
        // Heard and on time: not probed.
        l.heartbeat(2);
        assert!(!l.take_probe(2, hb));
        // Heard but late (a zero interval makes it late once the grace passes).
        std::thread::sleep(PROBE_GRACE + Duration::from_millis(20));
        assert!(l.take_probe(2, Duration::ZERO));
        assert!(!l.expired(2, hb));
        // A dropped heartbeat connection makes a node due at once.
        l.heartbeat(1);
        l.connection_lost(1);
        assert!(l.take_probe(1, hb));
        assert!(l.expired(2, Duration::from_millis(1)));
    }
}

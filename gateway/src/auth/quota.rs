//! Client quotas as Kafka enforces them: `producer_byte_rate`, `consumer_byte_rate` and
//! `request_percentage` per (user, client-id) with Kafka's precedence of specific and default
//! entities, `connection_creation_rate` per IP. Rates are measured over a sliding window of
//! `quota.window.num` samples of `quota.window.size.seconds`; a client over its quota gets
//! `throttle_time_ms = (rate - quota) / quota * window` and its connection is muted for that
//! long after the answer (KIP-219).

use super::state::{QuotaEntity, SecurityState};
use dashmap::DashMap;
use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// The quota keys of user and client-id entities.
pub(crate) const CLIENT_KEYS: &[&str] = &[
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
    "controller_mutation_rate",
];
/// The quota key of ip entities.
pub(crate) const IP_KEYS: &[&str] = &["connection_creation_rate"];

/// Which rate a sensor measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Produce,
    Fetch,
    Request,
    Connection,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Self::Produce => "producer_byte_rate",
            Self::Fetch => "consumer_byte_rate",
            Self::Request => "request_percentage",
            Self::Connection => "connection_creation_rate",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Produce => "produce",
            Self::Fetch => "fetch",
            Self::Request => "request",
            Self::Connection => "connection",
        }
    }
}

/// A windowed rate: per-second buckets, the oldest dropped as time moves on.
struct Rate {
    start: Instant,
    buckets: Vec<(u64, f64)>,
}

impl Rate {
    fn new(now: Instant) -> Self {
        Self {
            start: now,
            buckets: Vec::new(),
        }
    }

    /// Adds `v` now and returns the rate per second over the window (Kafka measures over
    /// at least `samples - 1` full windows, so a first burst is not judged on milliseconds).
    fn record(&mut self, v: f64, now: Instant, window: Duration, samples: u64) -> f64 {
        let slot = (now.duration_since(self.start).as_millis() / window.as_millis().max(1)) as u64;
        self.buckets.retain(|(s, _)| s + samples > slot);
        match self.buckets.last_mut() {
            Some((s, total)) if *s == slot => *total += v,
            _ => self.buckets.push((slot, v)),
        }
        self.rate(now, window, samples)
    }

    fn rate(&self, now: Instant, window: Duration, samples: u64) -> f64 {
        let total: f64 = self.buckets.iter().map(|(_, v)| v).sum();
        let oldest = self.buckets.first().map(|(s, _)| *s).unwrap_or(0);
        let oldest_start = self.start + window * oldest as u32;
        let elapsed = now.duration_since(oldest_start);
        let min = window * (samples.saturating_sub(1)) as u32;
        let secs = elapsed.max(min).as_secs_f64().max(window.as_secs_f64());
        total / secs
    }
}

/// The quota that applies to a client and the entity its usage counts against.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Applicable {
    pub(crate) bound: f64,
    /// Sensor identity: the parts of (user, client-id) the matching quota level names.
    pub(crate) sensor: (Option<String>, Option<String>),
}

fn entity(pairs: &[(&str, Option<&str>)]) -> QuotaEntity {
    pairs
        .iter()
        .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
        .collect()
}

/// Kafka's precedence: user+client, user+default client, user, default user+client,
/// default user+default client, default user, client, default client.
pub(crate) fn resolve(
    state: &SecurityState,
    key: &str,
    user: &str,
    client: &str,
) -> Option<Applicable> {
    let u = Some(user);
    let c = Some(client);
    let levels: [(QuotaEntity, (bool, bool)); 8] = [
        (entity(&[("user", u), ("client-id", c)]), (true, true)),
        (entity(&[("user", u), ("client-id", None)]), (true, true)),
        (entity(&[("user", u)]), (true, false)),
        (entity(&[("user", None), ("client-id", c)]), (true, true)),
        (entity(&[("user", None), ("client-id", None)]), (true, true)),
        (entity(&[("user", None)]), (true, false)),
        (entity(&[("client-id", c)]), (false, true)),
        (entity(&[("client-id", None)]), (false, true)),
    ];
    for (e, (by_user, by_client)) in levels {
        let k = super::state::entity_key(&e);
        if let Some(v) = state.quotas.get(&k).and_then(|q| q.values.get(key)) {
            return Some(Applicable {
                bound: v.0,
                sensor: (
                    by_user.then(|| user.to_string()),
                    by_client.then(|| client.to_string()),
                ),
            });
        }
    }
    None
}

/// The quota sensors of one node.
pub(crate) struct Quotas {
    window: Duration,
    samples: u64,
    sensors: DashMap<(Kind, Option<String>, Option<String>), Mutex<Rate>>,
}

impl Quotas {
    pub(crate) fn new(window: Duration, samples: u64) -> Self {
        Self {
            window: window.max(Duration::from_millis(1)),
            samples: samples.max(1),
            sensors: DashMap::new(),
        }
    }

    /// Records `amount` of `kind` for a client and returns how long (ms) it is throttled:
    /// 0 within its quota or without one.
    pub(crate) fn record(
        &self,
        state: &SecurityState,
        kind: Kind,
        user: &str,
        client: &str,
        amount: f64,
    ) -> i32 {
        if state.quotas.is_empty() {
            return 0;
        }
        let applicable = match kind {
            Kind::Connection => resolve_ip(state, client),
            _ => resolve(state, kind.key(), user, client),
        };
        let Some(a) = applicable else {
            return 0;
        };
        let now = Instant::now();
        let key = (kind, a.sensor.0, a.sensor.1);
        let rate = {
            let entry = self
                .sensors
                .entry(key)
                .or_insert_with(|| Mutex::new(Rate::new(now)));
            let mut r = entry.lock();
            r.record(amount, now, self.window, self.samples)
        };
        if rate <= a.bound || a.bound <= 0.0 {
            return 0;
        }
        let window_ms =
            (self.window.as_millis() as f64) * (self.samples.saturating_sub(1)).max(1) as f64;
        let mut ms = ((rate - a.bound) / a.bound * window_ms).round();
        if kind == Kind::Request {
            // Kafka caps the request quota's throttle at one window.
            ms = ms.min(self.window.as_millis() as f64);
        }
        let ms = ms.clamp(0.0, i32::MAX as f64) as i32;
        if ms > 0 {
            metrics::histogram!("quota_throttle_time_ms", "quota" => kind.label())
                .record(ms as f64);
        }
        ms
    }

    /// Whether a client is over its quota right now, without recording anything (a fetch
    /// that would be throttled is answered empty).
    pub(crate) fn over(&self, state: &SecurityState, kind: Kind, user: &str, client: &str) -> i32 {
        if state.quotas.is_empty() {
            return 0;
        }
        self.record(state, kind, user, client, 0.0)
    }
}

fn resolve_ip(state: &SecurityState, ip: &str) -> Option<Applicable> {
    for e in [entity(&[("ip", Some(ip))]), entity(&[("ip", None)])] {
        let k = super::state::entity_key(&e);
        if let Some(v) = state
            .quotas
            .get(&k)
            .and_then(|q| q.values.get("connection_creation_rate"))
        {
            return Some(Applicable {
                bound: v.0,
                sensor: (None, Some(ip.to_string())),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::state::SecurityChange;
    use super::*;

    fn state(quotas: &[(QuotaEntity, &str, f64)]) -> SecurityState {
        let mut s = SecurityState::default();
        for (e, k, v) in quotas {
            s.apply(SecurityChange::AlterQuotas {
                entity: e.clone(),
                ops: vec![(k.to_string(), Some(*v))],
            });
        }
        s
    }

    #[test]
    fn precedence() {
        let s = state(&[
            (entity(&[("client-id", None)]), "producer_byte_rate", 1.0),
            (entity(&[("user", None)]), "producer_byte_rate", 2.0),
            (
                entity(&[("user", Some("alice"))]),
                "producer_byte_rate",
                3.0,
            ),
            (
                entity(&[("user", Some("alice")), ("client-id", Some("app"))]),
                "producer_byte_rate",
                4.0,
            ),
        ]);
        let b = |u: &str, c: &str| resolve(&s, "producer_byte_rate", u, c).map(|a| a.bound);
        assert_eq!(b("alice", "app"), Some(4.0));
        assert_eq!(b("alice", "other"), Some(3.0));
        assert_eq!(b("bob", "app"), Some(2.0));
        let only_clients = state(&[(entity(&[("client-id", None)]), "producer_byte_rate", 1.0)]);
        assert_eq!(
            resolve(&only_clients, "producer_byte_rate", "bob", "x"),
            Some(Applicable {
                bound: 1.0,
                sensor: (None, Some("x".into()))
            })
        );
        assert_eq!(
            resolve(&only_clients, "consumer_byte_rate", "bob", "x"),
            None
        );
    }

    #[test]
    fn throttle_grows_with_excess() {
        let s = state(&[(entity(&[("user", None)]), "producer_byte_rate", 1000.0)]);
        let q = Quotas::new(Duration::from_secs(1), 11);
        // 5,000 bytes at once over a 10 s minimum window is 500 B/s: within the quota.
        assert_eq!(q.record(&s, Kind::Produce, "alice", "c", 5000.0), 0);
        // 20,000 more: 2,500 B/s, 1.5x over, so throttled for 1.5 windows of 10 s.
        assert_eq!(q.record(&s, Kind::Produce, "alice", "c", 20000.0), 15000);
        // Another user has a sensor of its own.
        assert_eq!(q.record(&s, Kind::Produce, "bob", "c", 100.0), 0);
    }
}

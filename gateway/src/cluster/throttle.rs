//! Replication throttles (Kafka's `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate`, applied to the partitions listed in the topic configs
//! `leader.replication.throttled.replicas` / `follower.replication.throttled.replicas`), as
//! `kafka-reassign-partitions.sh --throttle` sets them. Only replicas outside the ISR are held
//! back, so a throttle never slows acks=all traffic.

use parking_lot::Mutex;
use std::time::Instant;
use storage::Store;

/// A byte-rate quota read from a dynamic broker setting; unset means unlimited.
pub(crate) struct Throttle {
    key: &'static str,
    side: &'static str,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    /// Bytes that may still pass; negative after an overshoot (the next fetch waits).
    tokens: f64,
    at: Instant,
}

impl Throttle {
    pub(crate) fn new(key: &'static str, side: &'static str) -> Self {
        Self {
            key,
            side,
            bucket: Mutex::new(Bucket {
                tokens: 0.0,
                at: Instant::now(),
            }),
        }
    }

    fn rate(&self, store: &Store) -> Option<f64> {
        store
            .broker_setting(self.key)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|r| *r > 0 && *r < i64::MAX)
            .map(|r| r as f64)
    }

    /// Refills for the time passed (at most one second's worth) and returns the tokens left.
    fn refill(&self, rate: f64) -> f64 {
        let mut b = self.bucket.lock();
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        b.tokens
    }

    /// How many bytes throttled replication may move now: `None` when no rate is set,
    /// `Some(0)` when it must wait (counted), else what is left of this second's budget.
    pub(crate) fn allowance(&self, store: &Store) -> Option<usize> {
        let rate = self.rate(store)?;
        let left = self.refill(rate);
        if left < 1.0 {
            metrics::counter!("cluster_replication_throttled_total", "side" => self.side)
                .increment(1);
            return Some(0);
        }
        Some(left as usize)
    }

    /// Charges bytes that throttled replication moved.
    pub(crate) fn record(&self, store: &Store, bytes: usize) {
        if let Some(rate) = self.rate(store) {
            self.refill(rate);
            self.bucket.lock().tokens -= bytes as f64;
        }
    }
}

/// Whether a `*.replication.throttled.replicas` value ("*" or "partition:node,...") names
/// this partition on this node.
pub(crate) fn lists(value: Option<&String>, partition: i32, node: i32) -> bool {
    let Some(v) = value else { return false };
    let v = v.trim();
    v == "*"
        || v.split(',').any(|e| {
            let mut it = e.trim().splitn(2, ':');
            let p = it.next().and_then(|p| p.trim().parse::<i32>().ok());
            let n = it.next().and_then(|n| n.trim().parse::<i32>().ok());
            p == Some(partition) && n == Some(node)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_replica_lists() {
        let v = |s: &str| Some(s.to_string());
        assert!(lists(v("*").as_ref(), 3, 1));
        assert!(lists(v("0:1,0:2, 3:1").as_ref(), 3, 1));
        assert!(!lists(v("0:1,0:2").as_ref(), 0, 3));
        assert!(!lists(v("").as_ref(), 0, 1));
        assert!(!lists(None, 0, 1));
    }
}

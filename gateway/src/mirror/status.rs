//! What a link's task reports about each mirrored partition (`gateway mirror status` and the
//! `mirror_*` metrics).

use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeMap;

/// One partition's mirroring.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct PartitionStatus {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// The source's high watermark at the last fetch.
    pub(crate) source_end: i64,
    /// This side's log end.
    pub(crate) target_end: i64,
    pub(crate) lag: i64,
    /// ACTIVE, FAILED_OVER, or ERROR with the reason.
    pub(crate) state: String,
    /// Milliseconds since the epoch of the last successful fetch.
    pub(crate) last_fetch_ms: i64,
    /// Timestamp (ms) of the newest record mirrored: lag in time is the age of what is still
    /// missing.
    pub(crate) last_record_timestamp_ms: i64,
    /// When the mirror last had everything the source had (ms since the epoch).
    pub(crate) caught_up_ms: i64,
    pub(crate) records_mirrored: u64,
    pub(crate) bytes_mirrored: u64,
    pub(crate) fetch_errors: u64,
}

/// A link's partitions and its last error.
#[derive(Debug, Default)]
pub(crate) struct LinkStatus {
    pub(crate) partitions: Mutex<BTreeMap<(String, i32), PartitionStatus>>,
    pub(crate) error: Mutex<Option<String>>,
    /// When offsets were last synced (ms since the epoch) and how many were written.
    pub(crate) last_offset_sync_ms: Mutex<i64>,
    /// Per partition, the highest leader epoch seen in the source's metadata or in a mirrored
    /// batch: a failover raises the partition's own epoch above it, so that epochs here stay
    /// monotonic and a failback finds where the two sides diverged.
    pub(crate) epochs_seen: Mutex<BTreeMap<(String, i32), i32>>,
}

impl LinkStatus {
    /// Updates one partition's entry.
    pub(crate) fn update(&self, topic: &str, partition: i32, f: impl FnOnce(&mut PartitionStatus)) {
        let mut parts = self.partitions.lock();
        let e = parts
            .entry((topic.to_string(), partition))
            .or_insert_with(|| PartitionStatus {
                topic: topic.to_string(),
                partition,
                state: "ACTIVE".into(),
                ..PartitionStatus::default()
            });
        f(e);
        e.lag = (e.source_end - e.target_end).max(0);
    }

    /// Sets the state of every known partition of `topic`.
    pub(crate) fn update_state_of_topic(&self, topic: &str, state: &str) {
        for (k, v) in self.partitions.lock().iter_mut() {
            if k.0 == topic {
                v.state = state.to_string();
            }
        }
    }

    /// Records a leader epoch seen for a partition.
    pub(crate) fn saw_epoch(&self, topic: &str, partition: i32, epoch: i32) {
        let mut m = self.epochs_seen.lock();
        let e = m.entry((topic.to_string(), partition)).or_insert(epoch);
        *e = (*e).max(epoch);
    }

    /// The highest epoch seen per partition of `topic`.
    pub(crate) fn epochs_of(&self, topic: &str) -> BTreeMap<i32, i32> {
        self.epochs_seen
            .lock()
            .iter()
            .filter(|(k, _)| k.0 == topic)
            .map(|(k, e)| (k.1, *e))
            .collect()
    }

    /// Every partition, in topic and partition order.
    pub(crate) fn snapshot(&self) -> Vec<PartitionStatus> {
        self.partitions.lock().values().cloned().collect()
    }
}

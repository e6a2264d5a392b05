//! Log compaction for `cleanup.policy=compact` logs: keeps the last record of every key in
//! the closed segments, at its offset (survivors keep their offsets; readers see gaps).
//!
//! A pass runs when the share of dirty bytes (written since the last pass) among the
//! cleanable ones reaches `min.cleanable.dirty.ratio`, or when dirty records are older than
//! `max.compaction.lag.ms`. Segments holding records younger than `min.compaction.lag.ms`
//! and the active segment are left alone. Tombstones (null values) older than
//! `delete.retention.ms` are dropped. Each rewritten segment is built in a work directory and
//! swapped in with renames (`Segment::replace_from`): a crash at any point leaves either the
//! old or the new segment, never a mix, and the work directory is cleared on open.
//!
//! Transactions: cleaning stops at the last stable offset; records of aborted transactions
//! are dropped and never count as a key's last record. A marker (COMMIT or ABORT) is dropped
//! once no record of its transaction is left (aborted records always go; committed ones may
//! all have been compacted away) and it is older than `delete.retention.ms`, as Kafka's
//! cleaner does. A marker whose transaction still has records stays: a partition rebuilds its
//! open transactions from the log, and those records without their marker would look open.

use crate::error::Result;
use crate::log::{is_aborted, PartitionLog};
use crate::segment::{PendingBatch, Segment};
use bytes::{Bytes, BytesMut};
use codecs::kafka::batch::{BatchHeader, BatchIter};
use kafka_protocol::records::{
    Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The cleaner's work directory inside a partition directory.
pub const WORK_DIR: &str = "cleaning";
/// The file holding the first offset not yet cleaned.
const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// What one cleaning pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    /// Segments rewritten.
    pub segments: usize,
    /// Bytes of the segments read.
    pub bytes_read: u64,
    /// Bytes of the rewritten segments.
    pub bytes_written: u64,
    /// Records removed (superseded or expired tombstones).
    pub records_removed: u64,
}

/// Reads and writes at most `rate` bytes per second (`log.cleaner.io.max.bytes.per.second`).
struct Throttle {
    rate: f64,
    start: Instant,
    bytes: u64,
}

impl Throttle {
    fn charge(&mut self, bytes: u64) {
        self.bytes += bytes;
        if !self.rate.is_finite() || self.rate <= 0.0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

fn decode(bytes: &[u8]) -> Result<(kafka_protocol::records::Compression, Vec<Record>)> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let set = RecordBatchDecoder::decode(&mut buf)
        .map_err(|e| crate::StorageError::CorruptMetadata("record batch".into(), e.to_string()))?;
    Ok((set.compression, set.records))
}

/// Every batch of a segment, with its bytes.
fn batches(seg: &Segment, throttle: &mut Throttle) -> Result<Vec<(BatchHeader, Bytes)>> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while let Some(h) = seg.header_at(pos)? {
        let bytes = seg.read(pos, h.total_size())?;
        throttle.charge(bytes.len() as u64);
        pos += h.total_size() as u64;
        out.push((h, bytes));
    }
    Ok(out)
}

impl PartitionLog {
    fn cleaner_checkpoint(&self) -> i64 {
        std::fs::read_to_string(self.dir().join(CHECKPOINT_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The share of the closed segments' bytes written since the last cleaning pass.
    pub fn dirty_ratio(&self) -> f64 {
        let first_dirty = self.cleaner_checkpoint();
        let (mut dirty, mut total) = (0u64, 0u64);
        for s in self.closed_segments() {
            total += s.size();
            if s.next_offset() > first_dirty {
                dirty += s.size();
            }
        }
        if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        }
    }

    /// One cleaning pass if the log is compacted and due (see the module doc). `None` when
    /// nothing was due.
    pub fn clean(&self, now_ms: i64, io_bytes_per_sec: f64) -> Result<Option<CleanStats>> {
        let config = self.config();
        if !config.compact {
            return Ok(None);
        }
        let lag_floor = now_ms.saturating_sub(config.min_compaction_lag_ms.max(0));
        // Undecided transactions are not cleaned: the cleanable range ends at the last
        // stable offset, as Kafka's does.
        let lso = self.last_stable_offset();
        let cleanable: Vec<Arc<Segment>> = self
            .closed_segments()
            .into_iter()
            .take_while(|s| s.max_timestamp() <= lag_floor && s.next_offset() <= lso)
            .collect();
        let first_dirty = self.cleaner_checkpoint();
        let dirty: Vec<&Arc<Segment>> = cleanable
            .iter()
            .filter(|s| s.next_offset() > first_dirty && s.size() > 0)
            .collect();
        if dirty.is_empty() {
            return Ok(None);
        }
        let total: u64 = cleanable.iter().map(|s| s.size()).sum();
        let dirty_bytes: u64 = dirty.iter().map(|s| s.size()).sum();
        let by_ratio = dirty_bytes as f64 >= config.min_cleanable_dirty_ratio * total as f64;
        let overdue = config.max_compaction_lag_ms < i64::MAX
            && dirty
                .iter()
                .any(|s| s.max_timestamp() < now_ms.saturating_sub(config.max_compaction_lag_ms));
        if !by_ratio && !overdue {
            return Ok(None);
        }
        let mut throttle = Throttle {
            rate: io_bytes_per_sec,
            start: Instant::now(),
            bytes: 0,
        };
        let mut stats = CleanStats::default();
        let range_start = cleanable.first().map(|s| s.base_offset()).unwrap_or(0);
        let range_end = cleanable.last().map(|s| s.next_offset()).unwrap_or(0);
        let aborted = self.aborted_between(range_start, range_end);
        // The last offset of every key in the cleanable segments; records of aborted
        // transactions never count (no reader can see them).
        let mut last: HashMap<Bytes, i64> = HashMap::new();
        for seg in &cleanable {
            for (h, bytes) in batches(seg, &mut throttle)? {
                stats.bytes_read += bytes.len() as u64;
                if h.is_control() || (h.is_transactional() && is_aborted(&h, &aborted)) {
                    continue;
                }
                for r in decode(&bytes)?.1 {
                    if let Some(k) = r.key {
                        last.insert(Bytes::copy_from_slice(&k), r.offset);
                    }
                }
            }
        }
        let tombstone_floor = now_ms.saturating_sub(config.delete_retention_ms.max(0));
        let work = self.dir().join(WORK_DIR);
        // Per producer: whether a transactional record of it written since its last marker
        // survives this pass. The range starts at the log start, so every transaction whose
        // marker lies in it has all its records in it too.
        let mut has_records: HashMap<i64, bool> = HashMap::new();
        for seg in &cleanable {
            let mut kept: Vec<(i64, i32, Vec<u8>)> = Vec::new();
            let mut removed = 0u64;
            for (h, bytes) in batches(seg, &mut throttle)? {
                if h.is_control() {
                    // Readers that fetched the transaction's records before they were cleaned
                    // have had delete.retention.ms to see the marker too.
                    let ends_something = has_records.remove(&h.producer_id).unwrap_or(false);
                    if !ends_something && h.max_timestamp < tombstone_floor {
                        removed += 1;
                    } else {
                        kept.push((h.base_offset, h.partition_leader_epoch, bytes.to_vec()));
                    }
                    continue;
                }
                if h.is_transactional() && is_aborted(&h, &aborted) {
                    removed += h.record_count.max(0) as u64;
                    continue;
                }
                let (compression, records) = decode(&bytes)?;
                let keep: Vec<Record> = records
                    .into_iter()
                    .filter(|r| match &r.key {
                        None => true,
                        Some(k) => {
                            last.get(k.as_ref()) == Some(&r.offset)
                                && (r.value.is_some() || r.timestamp >= tombstone_floor)
                        }
                    })
                    .collect();
                if h.is_transactional() && !keep.is_empty() {
                    has_records.insert(h.producer_id, true);
                }
                let dropped = (h.record_count.max(0) as usize).saturating_sub(keep.len());
                removed += dropped as u64;
                if dropped == 0 {
                    kept.push((h.base_offset, h.partition_leader_epoch, bytes.to_vec()));
                } else if !keep.is_empty() {
                    let mut out = BytesMut::new();
                    RecordBatchEncoder::encode(
                        &mut out,
                        keep.iter(),
                        &RecordEncodeOptions {
                            version: 2,
                            compression,
                        },
                    )
                    .map_err(|e| {
                        crate::StorageError::CorruptMetadata("record batch".into(), e.to_string())
                    })?;
                    for (at, bh, _) in BatchIter::new(&out) {
                        let b = out[at..at + bh.total_size()].to_vec();
                        kept.push((bh.base_offset, bh.partition_leader_epoch, b));
                    }
                }
            }
            if removed == 0 {
                continue;
            }
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work)?;
            let copy = Segment::create(&work, seg.base_offset(), now_ms)?;
            let mut written = 0u64;
            for (base, epoch, bytes) in &kept {
                let header = BatchHeader::parse(bytes)?;
                copy.append(
                    &[PendingBatch {
                        header,
                        bytes,
                        base_offset: *base,
                        leader_epoch: *epoch,
                        log_append_time: None,
                    }],
                    self.config().index_interval_bytes,
                )?;
                written += bytes.len() as u64;
                throttle.charge(bytes.len() as u64);
            }
            copy.sync()?;
            drop(copy);
            if self.install_cleaned(seg, &work)? {
                stats.segments += 1;
                stats.bytes_written += written;
                stats.records_removed += removed;
            }
            let _ = std::fs::remove_dir_all(&work);
        }
        if let Some(end) = cleanable.last().map(|s| s.next_offset()) {
            std::fs::write(self.dir().join(CHECKPOINT_FILE), end.to_string())?;
        }
        tracing::info!(
            topic = self.topic(),
            partition = self.partition(),
            segments = stats.segments,
            removed = stats.records_removed,
            read = stats.bytes_read,
            written = stats.bytes_written,
            "log cleaned"
        );
        Ok(Some(stats))
    }
}

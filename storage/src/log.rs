//! The log of one topic-partition: an ordered set of segments, the offsets that bound it, the
//! idempotent-producer state, and the high watermark that readers wait on.

use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::key_index::KeyIndex;
use crate::leader_epochs::LeaderEpochs;
use crate::producer_state::{ProducerState, SequenceCheck};
use crate::records;
use crate::segment::{PendingBatch, Segment};
use crate::txn_index::{AbortedTxn, TxnIndex};
use bytes::{Bytes, BytesMut};
use codecs::kafka::batch::{self, BatchHeader, BatchIter};
use codecs::kafka::control::{self, Marker};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

const LOG_START_FILE: &str = "log-start-offset";
/// Present once a transactional batch has been written: opening the log then rebuilds its
/// open and aborted transactions from every segment's headers.
const TXN_FLAG_FILE: &str = "transactional";

/// Result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset of the first appended record.
    pub base_offset: i64,
    /// Offset of the last appended record.
    pub last_offset: i64,
    /// Broker timestamp stamped on the batches, or -1 for create time.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// The batch was a retry of one already in the log; nothing was written.
    pub duplicate: bool,
    /// Records appended.
    pub records: i64,
    /// The topic's flush policy wants an fsync before this append is acknowledged.
    pub needs_flush: bool,
}

struct Writer {
    producers: ProducerState,
    unflushed_messages: i64,
}

/// A topic-partition's log.
pub struct PartitionLog {
    topic: String,
    partition: i32,
    dir: PathBuf,
    config: RwLock<LogConfig>,
    segments: RwLock<BTreeMap<i64, Arc<Segment>>>,
    writer: Mutex<Writer>,
    log_end: AtomicI64,
    log_start: AtomicI64,
    leader_epoch: AtomicI32,
    high_watermark: watch::Sender<i64>,
    /// The high watermark is set by replication instead of following the local log end.
    replicated: AtomicBool,
    /// Log end offset, for replica fetches that wait on new data rather than new commits.
    end_watch: watch::Sender<i64>,
    epochs: Mutex<LeaderEpochs>,
    flushed: AtomicI64,
    flush_lock: Mutex<()>,
    last_flush_ms: AtomicI64,
    key_index: Mutex<Option<Arc<KeyIndex>>>,
    /// Open and aborted transactions; taken after `writer` when both are needed.
    txns: Mutex<TxnIndex>,
    /// First offset of the oldest open transaction, or `i64::MAX`.
    first_unstable: AtomicI64,
    /// Whether the transaction flag file exists.
    txn_flag: AtomicBool,
}

/// An active producer of a partition (DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    /// Producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
    /// Sequence of its last record, or -1.
    pub last_sequence: i32,
    /// Timestamp of its last batch.
    pub last_timestamp: i64,
    /// First offset of its open transaction here, or -1.
    pub txn_start_offset: i64,
}

/// Scans every segment's batch headers for transactional batches and markers.
fn scan_txns(
    segments: &BTreeMap<i64, Arc<Segment>>,
    producers: &mut ProducerState,
) -> Result<TxnIndex> {
    let mut txns = TxnIndex::default();
    for seg in segments.values() {
        let mut pos = 0u64;
        while let Some(h) = seg.header_at(pos)? {
            if h.is_transactional() {
                if h.is_control() {
                    let bytes = seg.read(pos, h.total_size())?;
                    if let Some(m) = control::marker_of(&h, &bytes) {
                        txns.marker(h.producer_id, m, h.base_offset);
                        producers.record(&h, h.base_offset);
                    }
                } else {
                    txns.data(h.producer_id, h.base_offset);
                }
            }
            pos += h.total_size() as u64;
        }
    }
    Ok(txns)
}

/// What a timestamp lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Offset of the record.
    pub offset: i64,
    /// Its timestamp.
    pub timestamp: i64,
}

/// Whether a transactional data batch belongs to one of `aborted`.
pub(crate) fn is_aborted(h: &BatchHeader, aborted: &[AbortedTxn]) -> bool {
    aborted.iter().any(|a| {
        a.producer_id == h.producer_id
            && h.base_offset >= a.first_offset
            && h.base_offset < a.last_offset
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering the active segment.
    pub fn open(dir: &Path, topic: &str, partition: i32, config: LogConfig) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        // A cleaning pass a crash interrupted: its half-written copies are dropped.
        let _ = std::fs::remove_dir_all(dir.join(crate::cleaner::WORK_DIR));
        let mut bases: Vec<i64> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(b) = stem.parse::<i64>() {
                    bases.push(b);
                }
            }
        }
        bases.sort_unstable();
        let mut segments = BTreeMap::new();
        let last = bases.len().saturating_sub(1);
        for (i, base) in bases.iter().enumerate() {
            let (seg, _) = Segment::open(dir, *base, i == last)?;
            segments.insert(*base, Arc::new(seg));
        }
        if segments.is_empty() {
            segments.insert(0, Arc::new(Segment::create(dir, 0, now_ms())?));
        }
        let log_end = segments
            .values()
            .next_back()
            .map(|s| s.next_offset())
            .unwrap_or(0);
        let first_base = segments.keys().next().copied().unwrap_or(0);
        let checkpoint = std::fs::read_to_string(dir.join(LOG_START_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let log_start = checkpoint.max(first_base).min(log_end);
        // Rebuild idempotence state from the newest segments' batch headers.
        let mut producers = ProducerState::default();
        for seg in segments.values().rev().take(2).rev() {
            let mut pos = 0u64;
            while let Some(h) = seg.header_at(pos)? {
                producers.record(&h, h.base_offset);
                pos += h.total_size() as u64;
            }
        }
        let txn_flag = dir.join(TXN_FLAG_FILE).exists();
        let txns = if txn_flag {
            scan_txns(&segments, &mut producers)?
        } else {
            TxnIndex::default()
        };
        let (hw, _) = watch::channel(log_end);
        let (end_watch, _) = watch::channel(log_end);
        let epochs = LeaderEpochs::open(dir, log_end)?;
        let leader_epoch = epochs.latest().unwrap_or(0);
        // An index built before keeps being maintained; others start on first use.
        let key_index = if dir.join("keys.idx").exists() {
            Some(Arc::new(KeyIndex::open(dir)?))
        } else {
            None
        };
        Ok(Self {
            topic: topic.to_string(),
            partition,
            dir: dir.to_path_buf(),
            config: RwLock::new(config),
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer {
                producers,
                unflushed_messages: 0,
            }),
            log_end: AtomicI64::new(log_end),
            log_start: AtomicI64::new(log_start),
            leader_epoch: AtomicI32::new(leader_epoch),
            high_watermark: hw,
            replicated: AtomicBool::new(false),
            end_watch,
            epochs: Mutex::new(epochs),
            flushed: AtomicI64::new(log_end),
            flush_lock: Mutex::new(()),
            last_flush_ms: AtomicI64::new(now_ms()),
            key_index: Mutex::new(key_index),
            first_unstable: AtomicI64::new(txns.first_unstable().unwrap_or(i64::MAX)),
            txns: Mutex::new(txns),
            txn_flag: AtomicBool::new(txn_flag),
        })
    }

    /// Offset below which every transaction is decided (Kafka's last stable offset):
    /// read_committed readers stop here.
    pub fn last_stable_offset(&self) -> i64 {
        self.high_watermark()
            .min(self.first_unstable.load(Ordering::Acquire))
    }

    /// Aborted transactions whose records may lie in `[from, to)`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        // Most partitions never see a transaction: read_committed fetches (librdkafka's
        // default) skip the lock for them.
        if !self.txn_flag.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.txns.lock().aborted_between(from, to)
    }

    /// Producers this partition knows, with their open transaction's first offset.
    pub fn producers(&self) -> Vec<ProducerInfo> {
        let w = self.writer.lock();
        let txns = self.txns.lock();
        w.producers
            .snapshot()
            .into_iter()
            .map(
                |(producer_id, producer_epoch, last_sequence, last_timestamp)| ProducerInfo {
                    producer_id,
                    producer_epoch,
                    last_sequence,
                    last_timestamp,
                    txn_start_offset: txns.open_since(producer_id).unwrap_or(-1),
                },
            )
            .collect()
    }

    /// Writes a transaction marker ending `producer_id`'s transaction in this partition.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: Marker,
        coordinator_epoch: i32,
    ) -> Result<AppendResult> {
        let b = control::encode(
            marker,
            producer_id,
            producer_epoch,
            coordinator_epoch,
            now_ms(),
        );
        self.append(&b)
    }

    /// Reads like [`read`](Self::read) but as a read_committed reader that drops records
    /// itself (RocketMQ consumers): up to the last stable offset, without control batches or
    /// batches of aborted transactions. Also returns the offset after the last batch
    /// examined, so a reader can move past a stretch that held nothing visible.
    pub fn read_visible(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<(Bytes, i64)> {
        let bytes = self.read_upto(offset, max_bytes, min_one, self.last_stable_offset())?;
        let mut next = offset;
        let mut hidden = false;
        for (_, h, _) in BatchIter::new(&bytes) {
            next = h.last_offset() + 1;
            hidden |= h.is_control() || h.is_transactional();
        }
        if !hidden {
            return Ok((bytes, next));
        }
        let aborted = self.aborted_between(offset, next);
        let mut out = BytesMut::with_capacity(bytes.len());
        for (_, h, b) in BatchIter::new(&bytes) {
            if h.is_control() || (h.is_transactional() && is_aborted(&h, &aborted)) {
                continue;
            }
            out.extend_from_slice(b);
        }
        Ok((out.freeze(), next))
    }

    /// Notes the transactional batches just appended (under the writer lock, before the high
    /// watermark can expose them).
    fn observe_txns(&self, pending: &[PendingBatch<'_>]) -> Result<()> {
        if !pending.iter().any(|p| p.header.is_transactional()) {
            return Ok(());
        }
        if !self.txn_flag.swap(true, Ordering::AcqRel) {
            std::fs::File::create(self.dir.join(TXN_FLAG_FILE))?.sync_all()?;
        }
        let mut txns = self.txns.lock();
        for p in pending.iter().filter(|p| p.header.is_transactional()) {
            if p.header.is_control() {
                if let Some(m) = control::marker_of(&p.header, p.bytes) {
                    txns.marker(p.header.producer_id, m, p.base_offset);
                }
            } else {
                txns.data(p.header.producer_id, p.base_offset);
            }
        }
        self.first_unstable
            .store(txns.first_unstable().unwrap_or(i64::MAX), Ordering::Release);
        Ok(())
    }

    /// The partition's key index, opened (and from then on maintained) on first use, and
    /// brought up to the high watermark.
    pub fn key_index(&self) -> Result<Arc<KeyIndex>> {
        let idx = {
            let mut slot = self.key_index.lock();
            match slot.as_ref() {
                Some(i) => i.clone(),
                None => {
                    let i = Arc::new(KeyIndex::open(&self.dir)?);
                    *slot = Some(i.clone());
                    i
                }
            }
        };
        idx.catch_up(self)?;
        Ok(idx)
    }

    /// Indexes new records if this partition's key index is in use.
    pub fn maintain_key_index(&self) -> Result<()> {
        let idx = self.key_index.lock().clone();
        match idx {
            Some(i) => i.catch_up(self),
            None => Ok(()),
        }
    }

    /// Topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Partition index.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// First offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Offset up to which records are visible to consumers.
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// Leader epoch stamped on appended batches.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Receives every high-watermark change; fetches wait on it.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Current configuration.
    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    /// Replaces the configuration (takes effect for the next append and retention pass).
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    /// Total bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.read().values().map(|s| s.size()).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }

    fn active(&self) -> Arc<Segment> {
        let segs = self.segments.read();
        match segs.values().next_back() {
            Some(s) => s.clone(),
            None => unreachable_segment(),
        }
    }

    /// Validates and appends the concatenated batches of one produce request partition.
    pub fn append(&self, records: &[u8]) -> Result<AppendResult> {
        let config = self.config();
        let batches = batch::split_validated(records)?;
        if batches.is_empty() {
            return Err(batch::BatchError::Truncated { need: 61, have: 0 }.into());
        }
        for (_, h) in &batches {
            if h.total_size() > config.max_message_bytes {
                return Err(StorageError::RecordTooLarge {
                    size: h.total_size(),
                    max: config.max_message_bytes,
                });
            }
        }
        if config.compact {
            self.check_keys(records)?;
        }
        let mut w = self.writer.lock();
        // Idempotence: a retried batch is acknowledged with its original offsets.
        for (_, h) in &batches {
            if let SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } = w.producers.check(h)?
            {
                return Ok(AppendResult {
                    base_offset,
                    last_offset,
                    log_append_time: -1,
                    log_start_offset: self.log_start_offset(),
                    duplicate: true,
                    records: 0,
                    needs_flush: false,
                });
            }
        }
        let now = now_ms();
        let total: u64 = batches.iter().map(|(_, h)| h.total_size() as u64).sum();
        let mut active = self.active();
        let age = now - active.created_ms();
        if active.size() > 0
            && (active.size() + total > config.segment_bytes || age >= config.segment_ms)
        {
            active = self.roll(&active, now)?;
        }
        let base_offset = self.log_end_offset();
        let epoch = self.leader_epoch();
        let log_append_time = config.log_append_time.then_some(now);
        let mut next = base_offset;
        let pending: Vec<PendingBatch<'_>> = batches
            .iter()
            .map(|(pos, h)| {
                let p = PendingBatch {
                    header: *h,
                    bytes: &records[*pos..*pos + h.total_size()],
                    base_offset: next,
                    leader_epoch: epoch,
                    log_append_time,
                };
                next += h.last_offset_delta as i64 + 1;
                p
            })
            .collect();
        active.append(&pending, config.index_interval_bytes)?;
        self.epochs.lock().assign(epoch, base_offset)?;
        let mut count = 0i64;
        for p in &pending {
            w.producers.record(&p.header, p.base_offset);
            count += p.header.record_count as i64;
        }
        self.observe_txns(&pending)?;
        self.log_end.store(next, Ordering::Release);
        self.end_watch.send_replace(next);
        w.unflushed_messages += count;
        let needs_flush = config.sync_every_append()
            || (config.flush_messages > 0 && w.unflushed_messages >= config.flush_messages);
        drop(w);
        if !needs_flush && !self.is_replicated() {
            // Replication moves the high watermark separately; on one node it follows the
            // log end as soon as the bytes are in the file.
            self.advance_high_watermark(next);
        }
        Ok(AppendResult {
            base_offset,
            last_offset: next - 1,
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset: self.log_start_offset(),
            duplicate: false,
            records: count,
            needs_flush,
        })
    }

    fn advance_high_watermark(&self, to: i64) {
        self.high_watermark.send_if_modified(|hw| {
            if to > *hw {
                *hw = to;
                true
            } else {
                false
            }
        });
    }

    /// Whether replication (not the local log end) moves the high watermark.
    pub fn is_replicated(&self) -> bool {
        self.replicated.load(Ordering::Acquire)
    }

    /// Hands the high watermark to replication (`true`) or back to the local log (`false`,
    /// which also publishes everything flushed so far).
    pub fn set_replicated(&self, replicated: bool) {
        self.replicated.store(replicated, Ordering::Release);
        if !replicated {
            self.advance_high_watermark(self.flushed_offset());
        }
    }

    /// Moves the high watermark forward to `to` (clamped to the log end); replication calls
    /// this when enough replicas hold the records.
    pub fn set_high_watermark(&self, to: i64) {
        self.advance_high_watermark(to.min(self.log_end_offset()));
    }

    /// Offset up to which the log is on disk (fsynced).
    pub fn flushed_offset(&self) -> i64 {
        self.flushed.load(Ordering::Acquire)
    }

    /// Receives every log-end change; replica fetches wait on it.
    pub fn subscribe_end(&self) -> watch::Receiver<i64> {
        self.end_watch.subscribe()
    }

    /// Sets the leader epoch stamped on batches appended from now on.
    pub fn set_leader_epoch(&self, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::Release);
    }

    /// Newest epoch in the leader-epoch cache.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.lock().latest()
    }

    /// The largest epoch at or below `epoch` and the offset where it ended here
    /// (OffsetForLeaderEpoch).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs
            .lock()
            .end_offset_for(epoch, self.log_end_offset())
    }

    /// A compacted log keeps the last record per key: a record without a key is refused, as
    /// Kafka refuses it, with the index of each one (KIP-467).
    fn check_keys(&self, records: &[u8]) -> Result<()> {
        let keyless = crate::records::keyless_records(records)?;
        if keyless.is_empty() {
            return Ok(());
        }
        let why = format!(
            "Compacted topic cannot accept message without key in topic partition {}-{}.",
            self.topic, self.partition
        );
        let shown: Vec<String> = keyless
            .iter()
            .take(3)
            .map(|i| format!("RecordError(batchIndex={i}, message='{why}')"))
            .collect();
        Err(StorageError::InvalidRecords {
            message: format!(
                "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                keyless.len(),
                shown.join(", ")
            ),
            records: keyless.into_iter().map(|i| (i, why.clone())).collect(),
        })
    }

    /// Appends batches copied from the leader: offsets and epochs are kept as the leader
    /// assigned them. Batches entirely below the log end (a repeated fetch) are skipped; a gap
    /// is an error. Returns the new log end.
    pub fn append_replica(&self, records: &[u8]) -> Result<i64> {
        // A compacted leader's log has gaps between batches.
        self.append_copied(records, self.config().compact)
    }

    /// The segments before the active one, oldest first (what the cleaner may rewrite).
    pub(crate) fn closed_segments(&self) -> Vec<Arc<Segment>> {
        let s = self.segments.read();
        let n = s.len().saturating_sub(1);
        s.values().take(n).cloned().collect()
    }

    /// Swaps in the cleaned copy of `old` written in `work`. False (and nothing changed) when
    /// `old` is no longer a closed segment of this log (retention deleted it meanwhile).
    pub(crate) fn install_cleaned(&self, old: &Arc<Segment>, work: &Path) -> Result<bool> {
        let mut segs = self.segments.write();
        let base = old.base_offset();
        let current = segs.get(&base).is_some_and(|s| Arc::ptr_eq(s, old));
        if !current || segs.keys().next_back() == Some(&base) {
            return Ok(false);
        }
        let seg = Segment::replace_from(&self.dir, work, base)?;
        segs.insert(base, Arc::new(seg));
        Ok(true)
    }

    /// Appends batches copied from another cluster (a mirror link): as
    /// [`Self::append_replica`], but the source may have gaps between batches (compaction,
    /// aborted transactions removed), so a first batch beyond the log end is accepted.
    pub fn append_mirrored(&self, records: &[u8]) -> Result<i64> {
        self.append_copied(records, true)
    }

    fn append_copied(&self, records: &[u8], allow_gap: bool) -> Result<i64> {
        let config = self.config();
        let batches = batch::split_validated(records)?;
        let mut w = self.writer.lock();
        let end = self.log_end_offset();
        let fresh: Vec<&(usize, batch::BatchHeader)> = batches
            .iter()
            .filter(|(_, h)| h.last_offset() >= end)
            .collect();
        let Some((_, first)) = fresh.first() else {
            return Ok(end);
        };
        if first.base_offset < end || (first.base_offset > end && !allow_gap) {
            return Err(StorageError::OffsetOutOfRange {
                offset: first.base_offset,
                start: self.log_start_offset(),
                end,
            });
        }
        let now = now_ms();
        let total: u64 = fresh.iter().map(|(_, h)| h.total_size() as u64).sum();
        let mut active = self.active();
        if active.size() > 0
            && (active.size() + total > config.segment_bytes
                || now - active.created_ms() >= config.segment_ms)
        {
            active = self.roll(&active, now)?;
        }
        let pending: Vec<PendingBatch<'_>> = fresh
            .iter()
            .map(|(pos, h)| PendingBatch {
                header: *h,
                bytes: &records[*pos..*pos + h.total_size()],
                base_offset: h.base_offset,
                leader_epoch: h.partition_leader_epoch,
                log_append_time: None,
            })
            .collect();
        active.append(&pending, config.index_interval_bytes)?;
        let mut next = end;
        {
            let mut epochs = self.epochs.lock();
            for p in &pending {
                epochs.assign(p.header.partition_leader_epoch, p.base_offset)?;
                w.producers.record(&p.header, p.base_offset);
                w.unflushed_messages += p.header.record_count as i64;
                next = p.header.last_offset() + 1;
            }
        }
        self.observe_txns(&pending)?;
        self.log_end.store(next, Ordering::Release);
        self.end_watch.send_replace(next);
        Ok(next)
    }

    /// Empties the log and restarts it at `offset` (Kafka's truncateFullyAndStartAt): a
    /// mirror whose source no longer has the records after its end (retention deleted them).
    pub fn reset_to(&self, offset: i64) -> Result<()> {
        let mut w = self.writer.lock();
        let old: Vec<Arc<Segment>> = std::mem::take(&mut *self.segments.write())
            .into_values()
            .collect();
        for s in &old {
            s.delete_files()?;
        }
        let fresh = Arc::new(Segment::create(&self.dir, offset, now_ms())?);
        self.segments.write().insert(offset, fresh);
        self.log_end.store(offset, Ordering::Release);
        self.log_start.store(offset, Ordering::Release);
        self.write_log_start(offset)?;
        self.flushed.store(offset, Ordering::Release);
        self.epochs.lock().truncate_from(0)?;
        w.producers = ProducerState::default();
        *self.txns.lock() = TxnIndex::default();
        self.first_unstable.store(i64::MAX, Ordering::Release);
        self.high_watermark.send_replace(offset);
        self.end_watch.send_replace(offset);
        tracing::info!(topic = %self.topic, partition = self.partition, offset, "log restarted at offset");
        Ok(())
    }

    /// Cuts the log back so that it ends at `offset` (a follower dropping records its new
    /// leader does not have). The high watermark follows if it was beyond.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        let mut w = self.writer.lock();
        let end = self.log_end_offset();
        if offset >= end {
            return Ok(());
        }
        let offset = offset.max(self.log_start_offset());
        let doomed: Vec<Arc<Segment>> = {
            // Whole segments at or after the cut go, except the first, which always stays.
            let segs = self.segments.read();
            let first = segs.keys().next().copied().unwrap_or(0);
            segs.range(offset..)
                .filter(|(b, _)| **b > first)
                .map(|(_, s)| s.clone())
                .collect()
        };
        for s in &doomed {
            self.segments.write().remove(&s.base_offset());
            s.delete_files()?;
        }
        let active = self.active();
        active.truncate_to_offset(offset)?;
        let new_end = active.next_offset().min(offset).max(active.base_offset());
        self.log_end.store(new_end, Ordering::Release);
        if self.flushed.load(Ordering::Acquire) > new_end {
            self.flushed.store(new_end, Ordering::Release);
        }
        self.epochs.lock().truncate_from(new_end)?;
        // Idempotence state must not remember sequences that are gone.
        let mut producers = ProducerState::default();
        for seg in self.segments.read().values().rev().take(2).rev() {
            let mut pos = 0u64;
            while let Some(h) = seg.header_at(pos)? {
                producers.record(&h, h.base_offset);
                pos += h.total_size() as u64;
            }
        }
        if self.txn_flag.load(Ordering::Acquire) {
            let txns = scan_txns(&self.segments.read(), &mut producers)?;
            self.first_unstable
                .store(txns.first_unstable().unwrap_or(i64::MAX), Ordering::Release);
            *self.txns.lock() = txns;
        }
        w.producers = producers;
        self.high_watermark.send_if_modified(|hw| {
            if *hw > new_end {
                *hw = new_end;
                true
            } else {
                false
            }
        });
        self.end_watch.send_replace(new_end);
        tracing::info!(topic = %self.topic, partition = self.partition, from = end, to = new_end, "truncated log");
        Ok(())
    }

    fn roll(&self, old: &Arc<Segment>, now: i64) -> Result<Arc<Segment>> {
        old.sync()?;
        let base = self.log_end_offset();
        let seg = Arc::new(Segment::create(&self.dir, base, now)?);
        self.segments.write().insert(base, seg.clone());
        tracing::debug!(topic = %self.topic, partition = self.partition, base, "rolled segment");
        Ok(seg)
    }

    /// fsyncs everything appended so far (group commit: one fsync covers every append that
    /// happened before it started), then publishes the high watermark.
    pub fn flush(&self) -> Result<()> {
        let target = self.log_end_offset();
        if self.flushed.load(Ordering::Acquire) >= target {
            if !self.is_replicated() {
                self.advance_high_watermark(target);
            }
            return Ok(());
        }
        let _g = self.flush_lock.lock();
        let target = self.log_end_offset();
        if self.flushed.load(Ordering::Acquire) < target {
            self.active().sync_log()?;
            self.flushed.store(target, Ordering::Release);
            self.last_flush_ms.store(now_ms(), Ordering::Release);
            let mut w = self.writer.lock();
            w.unflushed_messages = 0;
        }
        if !self.is_replicated() {
            self.advance_high_watermark(target);
        }
        Ok(())
    }

    /// fsyncs if unflushed data is older than `flush.ms`.
    pub fn flush_if_due(&self, now: i64) -> Result<()> {
        let flush_ms = self.config.read().flush_ms;
        if self.flushed.load(Ordering::Acquire) < self.log_end_offset()
            && now - self.last_flush_ms.load(Ordering::Acquire) >= flush_ms
        {
            self.flush()?;
        }
        Ok(())
    }

    fn check_range(&self, offset: i64) -> Result<()> {
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if offset < start || offset > end {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        }
        Ok(())
    }

    /// Reads whole batches starting with the one that contains `offset`, stopping at the high
    /// watermark and at `max_bytes` — except that with `min_one` the first batch is returned
    /// whole even if it is larger, so a consumer can always make progress.
    pub fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<Bytes> {
        self.read_upto(offset, max_bytes, min_one, self.high_watermark())
    }

    /// Like [`read`](Self::read) but bounded by `limit` instead of the high watermark; a
    /// leader serves its followers up to the log end this way.
    pub fn read_upto(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        limit: i64,
    ) -> Result<Bytes> {
        self.check_range(offset)?;
        let hw = limit;
        if offset >= hw {
            return Ok(Bytes::new());
        }
        let segs: Vec<Arc<Segment>> = {
            let s = self.segments.read();
            let first = s.range(..=offset).next_back().map(|(b, _)| *b).unwrap_or(0);
            s.range(first..).map(|(_, v)| v.clone()).collect()
        };
        for seg in segs {
            let Some((pos, h)) = seg.find(offset)? else {
                continue;
            };
            if h.base_offset >= hw {
                return Ok(Bytes::new());
            }
            let want = if min_one {
                max_bytes.max(h.total_size())
            } else {
                max_bytes
            };
            let bytes = seg.read(pos, want)?;
            let mut keep = 0usize;
            for (at, bh, b) in BatchIter::new(&bytes) {
                let end = at + bh.total_size();
                if bh.base_offset >= hw || (end > max_bytes && !(at == 0 && min_one)) {
                    break;
                }
                // Bytes changed on disk after they were written are never served: the batch
                // CRC is checked on every read. Batches before a corrupt one are still served;
                // a read that starts at it fails.
                let computed = batch::compute_crc(b);
                if bh.magic == 2 && computed != bh.crc {
                    tracing::error!(
                        topic = %self.topic,
                        partition = self.partition,
                        offset = bh.base_offset,
                        segment = seg.base_offset(),
                        "batch on disk fails its CRC; not serving it"
                    );
                    if keep == 0 {
                        return Err(StorageError::CorruptBatch(batch::BatchError::Crc {
                            stored: bh.crc,
                            computed,
                        }));
                    }
                    break;
                }
                keep = end;
            }
            return Ok(bytes.slice(..keep));
        }
        Ok(Bytes::new())
    }

    /// First record with a timestamp at or after `timestamp`, as ListOffsets by time wants.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        let start = self.log_start_offset();
        let segs: Vec<Arc<Segment>> = self.segments.read().values().cloned().collect();
        for seg in segs {
            let Some((mut pos, _)) = seg.find_time(timestamp)? else {
                continue;
            };
            while let Some(h) = seg.header_at(pos)? {
                if h.max_timestamp >= timestamp && h.last_offset() >= start {
                    let bytes = seg.read(pos, h.total_size())?;
                    let hit = records::offsets_and_timestamps(bytes)?
                        .into_iter()
                        .find(|r| r.timestamp >= timestamp && r.offset >= start);
                    if hit.is_some() {
                        return Ok(hit);
                    }
                }
                pos += h.total_size() as u64;
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (the earliest such offset), for ListOffsets -3.
    pub fn max_timestamp_offset(&self) -> Result<Option<TimestampOffset>> {
        let segs: Vec<Arc<Segment>> = self.segments.read().values().cloned().collect();
        let Some(seg) = segs.iter().max_by_key(|s| s.max_timestamp()) else {
            return Ok(None);
        };
        let max = seg.max_timestamp();
        if max < 0 || seg.size() == 0 {
            return Ok(None);
        }
        let Some((pos, h)) = seg.find_time(max)? else {
            return Ok(None);
        };
        let bytes = seg.read(pos, h.total_size())?;
        Ok(records::offsets_and_timestamps(bytes)?
            .into_iter()
            .find(|r| r.timestamp == max)
            .or(Some(TimestampOffset {
                offset: h.last_offset(),
                timestamp: max,
            })))
    }

    /// Moves the log start offset forward (DeleteRecords). Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let end = self.log_end_offset();
        let target = if offset < 0 {
            self.high_watermark()
        } else {
            offset
        };
        if target > self.high_watermark() || target > end {
            return Err(StorageError::OffsetOutOfRange {
                offset: target,
                start: self.log_start_offset(),
                end,
            });
        }
        let _w = self.writer.lock();
        if target > self.log_start_offset() {
            self.log_start.store(target, Ordering::Release);
            self.write_log_start(target)?;
        }
        drop(_w);
        self.delete_segments(|_, next| next.is_some_and(|n| n <= self.log_start_offset()))?;
        Ok(self.log_start_offset())
    }

    fn write_log_start(&self, offset: i64) -> Result<()> {
        let tmp = self.dir.join(format!("{LOG_START_FILE}.tmp"));
        std::fs::write(&tmp, offset.to_string())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(LOG_START_FILE))?;
        Ok(())
    }

    /// Deletes non-active segments for which `doomed(segment, next segment's base)` holds,
    /// oldest first, stopping at the first one kept.
    fn delete_segments(&self, doomed: impl Fn(&Segment, Option<i64>) -> bool) -> Result<usize> {
        let mut deleted = 0;
        loop {
            let victim = {
                let segs = self.segments.read();
                let mut it = segs.iter();
                let (Some((_, first)), Some((next_base, _))) = (it.next(), it.next()) else {
                    break;
                };
                if !doomed(first, Some(*next_base)) {
                    break;
                }
                first.clone()
            };
            self.segments.write().remove(&victim.base_offset());
            victim.delete_files()?;
            deleted += 1;
            let first = self.segments.read().keys().next().copied().unwrap_or(0);
            if first > self.log_start_offset() {
                self.log_start.store(first, Ordering::Release);
            }
        }
        if deleted > 0 && self.txn_flag.load(Ordering::Acquire) {
            self.txns.lock().drop_before(self.log_start_offset());
        }
        Ok(deleted)
    }

    /// Applies time and size retention (for `delete` topics). Returns segments deleted.
    pub fn enforce_retention(&self, now: i64) -> Result<usize> {
        let config = self.config();
        if !config.delete {
            return Ok(0);
        }
        // An expired active segment is rolled first so that it can be deleted too.
        if config.retention_ms >= 0 {
            let active = self.active();
            if active.size() > 0 && active.max_timestamp() < now - config.retention_ms {
                let _w = self.writer.lock();
                let active = self.active();
                if active.size() > 0 {
                    self.roll(&active, now)?;
                }
            }
        }
        let mut deleted = 0;
        if config.retention_ms >= 0 {
            deleted +=
                self.delete_segments(|s, _| s.max_timestamp() < now - config.retention_ms)?;
        }
        if config.retention_bytes >= 0 {
            let total = std::sync::atomic::AtomicU64::new(self.size_bytes());
            deleted += self.delete_segments(|s, _| {
                let t = total.load(Ordering::Relaxed);
                if t.saturating_sub(s.size()) >= config.retention_bytes as u64 {
                    total.fetch_sub(s.size(), Ordering::Relaxed);
                    true
                } else {
                    false
                }
            })?;
        }
        if deleted > 0 {
            tracing::info!(topic = %self.topic, partition = self.partition, deleted, "retention deleted segments");
        }
        Ok(deleted)
    }

    /// fsyncs the log and the active segment's indexes; its files stay.
    pub fn close(&self) -> Result<()> {
        // flush() has synced the log (or found nothing to sync).
        self.flush()?;
        self.active().sync_indexes()
    }

    /// Deletes the log's directory.
    pub fn delete(&self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}

#[cold]
fn unreachable_segment() -> Arc<Segment> {
    // A log always holds at least one segment: open creates one and deletion keeps the last.
    panic!("partition log without segments") // ok: invariant kept by open and delete_segments
}

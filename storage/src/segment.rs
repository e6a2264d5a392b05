//! One log segment: `<base offset>.log` holding RecordBatch v2 bytes exactly as served to
//! Kafka consumers, plus its sparse `.index` and `.timeindex`.
//!
//! Only the partition's writer (holding the log's append lock) writes; readers use positional
//! reads and see nothing past `size`, which is published after the bytes are written, so a
//! reader never observes a partial batch.

use crate::error::Result;
use crate::index::{OffsetEntry, SegmentIndex, TimeEntry};
use bytes::Bytes;
use codecs::kafka::batch::{self, BatchHeader, HEADER_SIZE};
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// File name stem of a segment: the base offset as 20 zero-padded digits, like Kafka.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// A batch to append: its parsed header and its bytes as the producer sent them.
pub struct PendingBatch<'a> {
    /// Header as parsed from the producer's bytes.
    pub header: BatchHeader,
    /// The whole batch, unmodified.
    pub bytes: &'a [u8],
    /// Offset assigned to the first record.
    pub base_offset: i64,
    /// Leader epoch to stamp.
    pub leader_epoch: i32,
    /// Replacement max timestamp when the topic uses log-append time.
    pub log_append_time: Option<i64>,
}

/// One segment of a partition log.
pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    file: File,
    size: AtomicU64,
    next_offset: AtomicI64,
    max_timestamp: AtomicI64,
    created_ms: i64,
    bytes_since_index: AtomicU64,
    index: SegmentIndex,
}

fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
    let stem = file_stem(base_offset);
    (
        dir.join(format!("{stem}.log")),
        dir.join(format!("{stem}.index")),
        dir.join(format!("{stem}.timeindex")),
    )
}

/// What recovery found in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes kept.
    pub valid_bytes: u64,
    /// Bytes cut off the tail (torn or corrupt batch and everything after it).
    pub truncated_bytes: u64,
    /// Batches kept.
    pub batches: u64,
}

impl Segment {
    /// Creates an empty segment.
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self> {
        let (log, idx, tidx) = paths(dir, base_offset);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&log)?;
        let (index, _) = SegmentIndex::open(&idx, &tidx, 0)?;
        index.truncate_to(0, 0)?;
        Ok(Self {
            base_offset,
            log_path: log,
            file,
            size: AtomicU64::new(0),
            next_offset: AtomicI64::new(base_offset),
            max_timestamp: AtomicI64::new(-1),
            created_ms: now_ms,
            bytes_since_index: AtomicU64::new(0),
            index,
        })
    }

    /// Opens an existing segment. With `recover`, every batch is validated (CRC included)
    /// and the file is truncated at the first torn or corrupt one; otherwise only headers are
    /// walked. Indexes are rebuilt when missing, inconsistent, or after recovery.
    pub fn open(dir: &Path, base_offset: i64, recover: bool) -> Result<(Self, RecoveryReport)> {
        let (log, idx, tidx) = paths(dir, base_offset);
        let mut file = OpenOptions::new().read(true).write(true).open(&log)?;
        let len = file.metadata()?.len();
        let created_ms = file
            .metadata()?
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let scan = scan(&file, len, base_offset, recover)?;
        if scan.report.valid_bytes < len {
            tracing::warn!(
                segment = %log.display(),
                kept = scan.report.valid_bytes,
                truncated = scan.report.truncated_bytes,
                "truncating torn or corrupt tail of segment"
            );
            file.set_len(scan.report.valid_bytes)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(scan.report.valid_bytes))?;
        let (index, valid) = SegmentIndex::open(&idx, &tidx, scan.report.valid_bytes)?;
        let seg = Self {
            base_offset,
            log_path: log,
            file,
            size: AtomicU64::new(scan.report.valid_bytes),
            next_offset: AtomicI64::new(scan.next_offset),
            max_timestamp: AtomicI64::new(scan.max_timestamp),
            created_ms,
            bytes_since_index: AtomicU64::new(0),
            index,
        };
        // An index whose buffered tail was lost in a crash is consistent but short: rebuild
        // it when the log goes on well past its last entries.
        let short = match seg.index.last_entries() {
            (Some(o), t) => {
                scan.report.valid_bytes > o.position as u64 + 2 * 4096
                    || t.map_or(scan.max_timestamp >= 0, |t| {
                        t.timestamp < scan.max_timestamp
                    })
            }
            (None, _) => !scan.batches.is_empty(),
        };
        if recover || !valid || short {
            seg.rebuild_index(&scan.batches)?;
        }
        Ok((seg, scan.report))
    }

    fn rebuild_index(&self, batches: &[(u64, BatchHeader)]) -> Result<()> {
        self.index.truncate_to(0, 0)?;
        let mut since = u64::MAX; // index the first batch
        let mut max_ts = -1i64;
        for (pos, h) in batches {
            let rel = (h.base_offset - self.base_offset) as u32;
            if since >= 4096 {
                self.index.append_offset(OffsetEntry {
                    relative_offset: rel,
                    position: *pos as u32,
                })?;
                since = 0;
            }
            since += h.total_size() as u64;
            if h.max_timestamp > max_ts {
                max_ts = h.max_timestamp;
                self.index.maybe_append_time(TimeEntry {
                    timestamp: max_ts,
                    relative_offset: rel,
                })?;
            }
        }
        self.bytes_since_index
            .store(since.min(4096), Ordering::Relaxed);
        Ok(())
    }

    /// Base offset (first offset this segment may hold).
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Offset the next appended record would get if appended here.
    pub fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Readable size in bytes.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Largest record timestamp in the segment (batch max timestamps), or -1.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    /// Wall-clock creation time used for `segment.ms` rolling.
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    /// Path of the `.log` file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Appends batches, stamping offsets and epochs into copies of the first 16 header bytes
    /// so the record bytes themselves are written straight from the producer's buffer.
    /// Must only be called by the log's single writer.
    pub fn append(&self, batches: &[PendingBatch<'_>], index_interval: u64) -> Result<()> {
        let start = self.size();
        // Patched prefixes (base offset, length, epoch) and, for log-append time, whole headers.
        let mut prefixes: Vec<[u8; HEADER_SIZE]> = Vec::with_capacity(batches.len());
        for b in batches {
            let mut head = [0u8; HEADER_SIZE];
            head.copy_from_slice(&b.bytes[..HEADER_SIZE]);
            batch::set_base_offset(&mut head, b.base_offset);
            batch::set_partition_leader_epoch(&mut head, b.leader_epoch);
            prefixes.push(head);
        }
        // Log-append time rewrites the CRC, which covers the records: that needs one copy.
        let mut owned: Vec<Vec<u8>> = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            if let Some(ts) = b.log_append_time {
                let mut full = b.bytes.to_vec();
                batch::set_base_offset(&mut full, b.base_offset);
                batch::set_partition_leader_epoch(&mut full, b.leader_epoch);
                batch::set_log_append_time(&mut full, ts);
                prefixes[i].copy_from_slice(&full[..HEADER_SIZE]);
                owned.push(full);
            }
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batches.len() * 2);
        let mut owned_iter = owned.iter();
        for (b, p) in batches.iter().zip(prefixes.iter()) {
            if b.log_append_time.is_some() {
                if let Some(full) = owned_iter.next() {
                    slices.push(IoSlice::new(full));
                }
            } else {
                slices.push(IoSlice::new(p));
                slices.push(IoSlice::new(&b.bytes[HEADER_SIZE..]));
            }
        }
        if let Err(e) = write_all_vectored(&self.file, &mut slices) {
            // Leave no partial batch behind: cut back to what was there.
            let _ = self.file.set_len(start);
            let _ = (&self.file).seek(SeekFrom::Start(start));
            return Err(e.into());
        }
        let mut pos = start;
        for (b, p) in batches.iter().zip(prefixes.iter()) {
            let rel = (b.base_offset - self.base_offset) as u32;
            let since = self.bytes_since_index.load(Ordering::Relaxed);
            if pos == 0 || since >= index_interval {
                self.index.append_offset(OffsetEntry {
                    relative_offset: rel,
                    position: pos as u32,
                })?;
                self.bytes_since_index.store(0, Ordering::Relaxed);
            }
            self.bytes_since_index
                .fetch_add(b.bytes.len() as u64, Ordering::Relaxed);
            let max_ts = i64::from_be_bytes(p[35..43].try_into().unwrap_or([0; 8]));
            if max_ts > self.max_timestamp() {
                self.max_timestamp.store(max_ts, Ordering::Release);
                self.index.maybe_append_time(TimeEntry {
                    timestamp: max_ts,
                    relative_offset: rel,
                })?;
            }
            pos += b.bytes.len() as u64;
            self.next_offset.store(
                b.base_offset + b.header.last_offset_delta as i64 + 1,
                Ordering::Release,
            );
        }
        self.size.store(pos, Ordering::Release);
        Ok(())
    }

    /// Reads `len` bytes at `position` (clamped to the readable size).
    pub fn read(&self, position: u64, len: usize) -> Result<Bytes> {
        let size = self.size();
        if position >= size {
            return Ok(Bytes::new());
        }
        let len = len.min((size - position) as usize);
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, position)?;
        Ok(Bytes::from(buf))
    }

    /// Header of the batch at `position`, if a whole one is readable there.
    pub fn header_at(&self, position: u64) -> Result<Option<BatchHeader>> {
        if position + HEADER_SIZE as u64 > self.size() {
            return Ok(None);
        }
        let mut head = [0u8; HEADER_SIZE];
        self.file.read_exact_at(&mut head, position)?;
        Ok(BatchHeader::parse(&head).ok())
    }

    /// Position and header of the first batch whose last offset is at least `offset`.
    pub fn find(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        let mut pos = self.index.lookup(rel) as u64;
        while let Some(h) = self.header_at(pos)? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_size() as u64;
        }
        Ok(None)
    }

    /// Position and header of the first batch whose max timestamp is at least `timestamp`.
    pub fn find_time(&self, timestamp: i64) -> Result<Option<(u64, BatchHeader)>> {
        if self.max_timestamp() < timestamp {
            return Ok(None);
        }
        let mut pos = match self.index.lookup_time(timestamp) {
            Some(rel) => self.index.lookup(rel) as u64,
            None => 0,
        };
        while let Some(h) = self.header_at(pos)? {
            if h.max_timestamp >= timestamp {
                return Ok(Some((pos, h)));
            }
            pos += h.total_size() as u64;
        }
        Ok(None)
    }

    /// Cuts the segment so that it ends before `offset` (which must be a batch boundary or
    /// beyond the end). Used when a log's start or end moves inside this segment.
    pub fn truncate_to_offset(&self, offset: i64) -> Result<()> {
        let Some((pos, h)) = self.find(offset)? else {
            return Ok(());
        };
        let pos = if h.base_offset >= offset {
            pos
        } else {
            pos + h.total_size() as u64
        };
        self.file.set_len(pos)?;
        (&self.file).seek(SeekFrom::Start(pos))?;
        self.size.store(pos, Ordering::Release);
        self.next_offset
            .store(offset.max(self.base_offset), Ordering::Release);
        self.index
            .truncate_to(pos as u32, (offset - self.base_offset).max(0) as u32)?;
        Ok(())
    }

    /// fsyncs the log only: what an acknowledgement under a flush policy needs. The indexes
    /// are derived data (a missing tail is rebuilt from the log on open), so they are synced
    /// when the segment rolls or closes, not on every flush.
    pub fn sync_log(&self) -> Result<()> {
        self.file.sync_data()?;
        Ok(())
    }

    /// Writes and fsyncs the indexes' pending entries.
    pub fn sync_indexes(&self) -> Result<()> {
        self.index.sync()
    }

    /// fsyncs the log and its indexes.
    pub fn sync(&self) -> Result<()> {
        self.sync_log()?;
        self.sync_indexes()
    }

    /// Puts the segment with `base_offset` written in `work` (the cleaner's directory) in
    /// place of the one in `dir`, and opens it. The old indexes are removed first, so a crash
    /// between the steps leaves a log file whose indexes are rebuilt when it is opened.
    pub fn replace_from(dir: &Path, work: &Path, base_offset: i64) -> Result<Self> {
        let (log, idx, tidx) = paths(dir, base_offset);
        let (new_log, new_idx, new_tidx) = paths(work, base_offset);
        for p in [&idx, &tidx] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        File::open(dir)?.sync_all()?;
        std::fs::rename(&new_log, &log)?;
        std::fs::rename(&new_idx, &idx)?;
        std::fs::rename(&new_tidx, &tidx)?;
        File::open(dir)?.sync_all()?;
        Ok(Self::open(dir, base_offset, false)?.0)
    }

    /// Removes the segment's files. Readers that still hold it keep reading the unlinked file.
    pub fn delete_files(&self) -> Result<()> {
        let dir = self
            .log_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let (log, idx, tidx) = paths(&dir, self.base_offset);
        for p in [log, idx, tidx] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

struct Scan {
    report: RecoveryReport,
    next_offset: i64,
    max_timestamp: i64,
    batches: Vec<(u64, BatchHeader)>,
}

/// Walks a segment file batch by batch. With `validate` every batch's CRC is checked and the
/// walk stops at the first bad one; the valid prefix length is reported.
fn scan(file: &File, len: u64, base_offset: i64, validate: bool) -> Result<Scan> {
    let mut pos = 0u64;
    let mut next_offset = base_offset;
    let mut max_timestamp = -1;
    let mut batches = Vec::new();
    let mut head = [0u8; HEADER_SIZE];
    let mut body = Vec::new();
    while pos + HEADER_SIZE as u64 <= len {
        file.read_exact_at(&mut head, pos)?;
        let Ok(h) = BatchHeader::parse(&head) else {
            break;
        };
        let end = pos + h.total_size() as u64;
        if end > len || h.base_offset < next_offset {
            break;
        }
        if validate {
            body.resize(h.total_size(), 0);
            file.read_exact_at(&mut body, pos)?;
            // CRC only: compacted batches legitimately hold fewer records than their deltas.
            if batch::compute_crc(&body) != h.crc {
                break;
            }
        }
        batches.push((pos, h));
        next_offset = h.last_offset() + 1;
        max_timestamp = max_timestamp.max(h.max_timestamp);
        pos = end;
    }
    Ok(Scan {
        report: RecoveryReport {
            valid_bytes: pos,
            truncated_bytes: len - pos,
            batches: batches.len() as u64,
        },
        next_offset,
        max_timestamp,
        batches,
    })
}

fn write_all_vectored(mut f: &File, mut bufs: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !bufs.is_empty() {
        match f.write_vectored(bufs) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

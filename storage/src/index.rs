//! Sparse indexes of one segment, kept in memory and mirrored to append-only files.
//!
//! The files are written behind: new entries collect in a small buffer that is appended (the
//! file opened, written and closed again) every few KiB, on `sync` and on drop, so a segment
//! holds no index file descriptors and a node with tens of thousands of partitions stays well
//! inside the open-file limit. Entries lost with a crash only make the index sparser; the
//! segment notices a missing tail when it opens and rebuilds it from the log.
//!
//! `.index` entries are 8 bytes: offset relative to the segment base (u32) and byte position
//! of the batch that starts at that offset (u32). `.timeindex` entries are 12 bytes: the
//! largest timestamp seen so far (i64) and the relative offset of the batch that follows it
//! (u32). Both are monotonic; a file that is not is discarded and rebuilt from the log.

use crate::error::Result;
use parking_lot::{Mutex, RwLock};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Buffered index bytes are appended to the file once this many are pending.
const WRITE_BEHIND: usize = 4096;

/// One offset index entry: a batch base offset (relative) and its file position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Base offset of the batch minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment file.
    pub position: u32,
}

/// One time index entry: the greatest timestamp up to a batch and that batch's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest record timestamp in the segment before `relative_offset`'s batch ends.
    pub timestamp: i64,
    /// Base offset (relative) of the batch that carries that timestamp.
    pub relative_offset: u32,
}

/// Sparse offset and time index of a segment.
pub struct SegmentIndex {
    offsets: RwLock<Vec<OffsetEntry>>,
    times: RwLock<Vec<TimeEntry>>,
    offset_path: PathBuf,
    time_path: PathBuf,
    /// Entry bytes not yet appended to the files: (offset index, time index).
    pending: Mutex<(Vec<u8>, Vec<u8>)>,
}

fn append_to(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    if bytes.is_empty() && !sync {
        return Ok(());
    }
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(bytes)?;
    if sync {
        f.sync_data()?;
    }
    Ok(())
}

fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        f.read_to_end(&mut buf)?;
    }
    Ok(buf)
}

fn parse_offsets(buf: &[u8], log_size: u64) -> Option<Vec<OffsetEntry>> {
    if !buf.len().is_multiple_of(8) {
        return None;
    }
    let mut out: Vec<OffsetEntry> = Vec::with_capacity(buf.len() / 8);
    for c in buf.chunks_exact(8) {
        let e = OffsetEntry {
            relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
        };
        let monotonic = out
            .last()
            .is_none_or(|l| e.relative_offset > l.relative_offset && e.position > l.position);
        if !monotonic || e.position as u64 >= log_size {
            return None;
        }
        out.push(e);
    }
    Some(out)
}

fn parse_times(buf: &[u8]) -> Option<Vec<TimeEntry>> {
    if !buf.len().is_multiple_of(12) {
        return None;
    }
    let mut out: Vec<TimeEntry> = Vec::with_capacity(buf.len() / 12);
    for c in buf.chunks_exact(12) {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&c[..8]);
        let e = TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
        };
        if out
            .last()
            .is_some_and(|l| e.timestamp <= l.timestamp || e.relative_offset < l.relative_offset)
        {
            return None;
        }
        out.push(e);
    }
    Some(out)
}

impl SegmentIndex {
    /// Opens the index files; returns `None` for the parsed content when the files are missing
    /// or inconsistent with a log of `log_size` bytes, in which case the caller rebuilds them.
    pub fn open(offset_path: &Path, time_path: &Path, log_size: u64) -> Result<(Self, bool)> {
        let offsets = parse_offsets(&read_all(offset_path)?, log_size);
        let times = parse_times(&read_all(time_path)?);
        let valid = offsets.is_some() && times.is_some();
        let (offsets, times) = if valid {
            (offsets.unwrap_or_default(), times.unwrap_or_default())
        } else {
            (Vec::new(), Vec::new())
        };
        let open = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(!valid)
                .open(p)
        };
        open(offset_path)?;
        open(time_path)?;
        Ok((
            Self {
                offsets: RwLock::new(offsets),
                times: RwLock::new(times),
                offset_path: offset_path.to_path_buf(),
                time_path: time_path.to_path_buf(),
                pending: Mutex::new((Vec::new(), Vec::new())),
            },
            valid,
        ))
    }

    /// Appends the buffered entries to the files (and with `sync`, makes them durable).
    fn write_pending(&self, sync: bool) -> Result<()> {
        let mut p = self.pending.lock();
        append_to(&self.offset_path, &p.0, sync)?;
        p.0.clear();
        append_to(&self.time_path, &p.1, sync)?;
        p.1.clear();
        Ok(())
    }

    /// The last offset entry and the last time entry, if any.
    pub fn last_entries(&self) -> (Option<OffsetEntry>, Option<TimeEntry>) {
        (
            self.offsets.read().last().copied(),
            self.times.read().last().copied(),
        )
    }

    /// Appends an offset entry (caller guarantees monotonic order).
    pub fn append_offset(&self, e: OffsetEntry) -> Result<()> {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&e.relative_offset.to_be_bytes());
        b[4..].copy_from_slice(&e.position.to_be_bytes());
        self.offsets.write().push(e);
        let full = {
            let mut p = self.pending.lock();
            p.0.extend_from_slice(&b);
            p.0.len() >= WRITE_BEHIND
        };
        if full {
            self.write_pending(false)?;
        }
        Ok(())
    }

    /// Appends a time entry if its timestamp is greater than the last one.
    pub fn maybe_append_time(&self, e: TimeEntry) -> Result<()> {
        if self
            .times
            .read()
            .last()
            .is_some_and(|l| l.timestamp >= e.timestamp)
        {
            return Ok(());
        }
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&e.timestamp.to_be_bytes());
        b[8..].copy_from_slice(&e.relative_offset.to_be_bytes());
        self.times.write().push(e);
        let full = {
            let mut p = self.pending.lock();
            p.1.extend_from_slice(&b);
            p.1.len() >= WRITE_BEHIND
        };
        if full {
            self.write_pending(false)?;
        }
        Ok(())
    }

    /// Position of the last indexed batch whose base offset is at most `relative_offset`.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let v = self.offsets.read();
        match v.partition_point(|e| e.relative_offset <= relative_offset) {
            0 => 0,
            i => v[i - 1].position,
        }
    }

    /// Relative offset of the last indexed batch whose running max timestamp is below
    /// `timestamp`, i.e. a safe place to start scanning for the first record at or after it.
    pub fn lookup_time(&self, timestamp: i64) -> Option<u32> {
        let v = self.times.read();
        match v.partition_point(|e| e.timestamp < timestamp) {
            0 => None,
            i => Some(v[i - 1].relative_offset),
        }
    }

    /// Drops entries at or beyond `position` (after log truncation) and rewrites the files.
    pub fn truncate_to(&self, position: u32, relative_offset: u32) -> Result<()> {
        let mut o = self.offsets.write();
        o.retain(|e| e.position < position);
        let mut t = self.times.write();
        t.retain(|e| e.relative_offset < relative_offset);
        // Rewrite both files from memory: what was buffered is in there too.
        let mut p = self.pending.lock();
        p.0.clear();
        p.1.clear();
        let mut ob = Vec::with_capacity(o.len() * 8);
        for e in o.iter() {
            ob.extend_from_slice(&e.relative_offset.to_be_bytes());
            ob.extend_from_slice(&e.position.to_be_bytes());
        }
        let mut tb = Vec::with_capacity(t.len() * 12);
        for e in t.iter() {
            tb.extend_from_slice(&e.timestamp.to_be_bytes());
            tb.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        std::fs::write(&self.offset_path, &ob)?;
        std::fs::write(&self.time_path, &tb)?;
        Ok(())
    }

    /// Writes the buffered entries and flushes both files to disk.
    pub fn sync(&self) -> Result<()> {
        self.write_pending(true)
    }

    /// Number of offset entries (for tests and metrics).
    pub fn len(&self) -> usize {
        self.offsets.read().len()
    }

    /// Whether the offset index has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for SegmentIndex {
    fn drop(&mut self) {
        // Best effort: a lost tail is rebuilt from the log at the next open.
        if let Err(e) = self.write_pending(false) {
            tracing::debug!(file = %self.offset_path.display(), error = %e, "index tail not written");
        }
    }
}

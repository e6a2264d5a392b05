//! Durable state of the transaction coordinator: one entry per transactional id with its
//! producer id and epoch, state, timeout, the partitions and groups of the current
//! transaction and the offsets it will commit. Protocol-free: the coordinator in the gateway
//! decides transitions; this store keeps them across restarts.
//!
//! Persistence: an append-only journal (`transactions.journal`) of CRC-framed records, one
//! per change (`len u32 | crc32c u32 | JSON {id, meta}`, `meta` null for a removal),
//! replayed on open; a torn tail is cut off. A change is one `write`, so the coordinator's
//! two state changes per transaction cost microseconds rather than the milliseconds of
//! rewriting and renaming a table file (ext4 flushes a file renamed over another). When the
//! journal holds far more records than live ids it is rewritten through a temporary file and
//! an atomic rename. Like the logs and the offsets journal, it is fsynced only under the
//! flush-every-message policy (`log.flush.interval.messages=1`); otherwise it survives the
//! process being killed, as acknowledged records do. A `transactions.json` table left by an
//! earlier version is read once and folded into the journal.

use crate::error::{Result, StorageError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE: &str = "transactions.journal";
/// The whole-table file of earlier versions.
const LEGACY_FILE: &str = "transactions.json";
/// Largest journal record accepted on replay (a longer length is a torn or corrupt tail).
const MAX_RECORD: usize = 64 << 20;
/// Records below which the journal is never compacted.
const COMPACT_MIN: u64 = 1_000;

/// Where a transactional id's current transaction stands (Kafka's TransactionState).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    /// No transaction since the producer was initialised.
    Empty,
    /// Partitions or offsets have been added; records may be in the logs.
    Ongoing,
    /// Commit decided; markers are being written.
    PrepareCommit,
    /// Abort decided; markers are being written.
    PrepareAbort,
    /// Last transaction committed.
    CompleteCommit,
    /// Last transaction aborted.
    CompleteAbort,
}

impl TxnState {
    /// The name Kafka's admin tools print.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }
}

/// An offset a transaction commits for a group when it commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: String,
}

/// One transactional id's coordinator state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    /// Producer id bound to the transactional id.
    pub producer_id: i64,
    /// Current producer epoch.
    pub producer_epoch: i16,
    /// Transaction timeout the producer asked for.
    pub timeout_ms: i32,
    /// State of the current (or last) transaction.
    pub state: TxnState,
    /// Partitions of the current transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups whose offsets the current transaction commits.
    pub groups: BTreeSet<String>,
    /// Offsets committed with the transaction.
    pub offsets: Vec<PendingOffset>,
    /// When the current transaction started (ms), or -1.
    pub start_ms: i64,
    /// Last state change (ms).
    pub update_ms: i64,
}

/// One journal record.
#[derive(Serialize, Deserialize)]
struct Change {
    id: String,
    meta: Option<TxnMeta>,
}

fn frame(c: &Change) -> Result<Vec<u8>> {
    let p = serde_json::to_vec(c)
        .map_err(|e| StorageError::CorruptMetadata(FILE.into(), e.to_string()))?;
    Ok(crate::journal::frame(&p))
}

/// Applies one journal record to `table`; false if it does not parse.
fn apply(payload: &[u8], table: &mut BTreeMap<String, TxnMeta>) -> bool {
    let Ok(c) = serde_json::from_slice::<Change>(payload) else {
        return false;
    };
    match c.meta {
        Some(m) => table.insert(c.id, m),
        None => table.remove(&c.id),
    };
    true
}

struct Journal {
    file: File,
    records: u64,
}

/// The coordinator's table, durable on disk.
pub struct TxnStore {
    path: PathBuf,
    table: Mutex<BTreeMap<String, TxnMeta>>,
    journal: Mutex<Journal>,
    sync: bool,
}

impl TxnStore {
    /// Opens the table kept in `dir`; `sync` fsyncs every change.
    pub fn open(dir: &Path, sync: bool) -> Result<Self> {
        let path = dir.join(FILE);
        let mut table = BTreeMap::new();
        let (file, records) = crate::journal::open(&path, MAX_RECORD, |p| apply(p, &mut table))?;
        let store = Self {
            path,
            table: Mutex::new(table),
            journal: Mutex::new(Journal { file, records }),
            sync,
        };
        store.fold_legacy(dir)?;
        Ok(store)
    }

    /// Moves the table of an earlier version's `transactions.json` into the journal.
    fn fold_legacy(&self, dir: &Path) -> Result<()> {
        let legacy = dir.join(LEGACY_FILE);
        let bytes = match std::fs::read(&legacy) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let old: BTreeMap<String, TxnMeta> = serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::CorruptMetadata(LEGACY_FILE.into(), e.to_string()))?;
        {
            let mut t = self.table.lock();
            for (id, m) in old {
                t.entry(id).or_insert(m);
            }
            let mut j = self.journal.lock();
            self.compact(&t, &mut j)?;
        }
        std::fs::remove_file(&legacy)?;
        Ok(())
    }

    /// A transactional id's state.
    pub fn get(&self, id: &str) -> Option<TxnMeta> {
        self.table.lock().get(id).cloned()
    }

    /// Every transactional id with its state.
    pub fn all(&self) -> Vec<(String, TxnMeta)> {
        self.table
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Stores (or with `None` removes) a transactional id's state durably.
    pub fn put(&self, id: &str, meta: Option<TxnMeta>) -> Result<()> {
        let rec = frame(&Change {
            id: id.to_string(),
            meta: meta.clone(),
        })?;
        // The table lock orders journal records as the table sees the changes.
        let mut t = self.table.lock();
        let mut j = self.journal.lock();
        let len = j.file.metadata()?.len();
        let written = j.file.write_all(&rec).and_then(|()| {
            if self.sync {
                j.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Memory must not claim what the disk does not hold; a partial record goes too.
            let _ = j.file.set_len(len);
            return Err(e.into());
        }
        match meta {
            Some(m) => t.insert(id.to_string(), m),
            None => t.remove(id),
        };
        j.records += 1;
        if j.records > COMPACT_MIN && j.records > 4 * t.len() as u64 {
            self.compact(&t, &mut j)?;
        }
        Ok(())
    }

    /// Rewrites the journal as one record per live id.
    fn compact(&self, t: &BTreeMap<String, TxnMeta>, j: &mut Journal) -> Result<()> {
        let mut out = Vec::new();
        for (id, m) in t {
            out.extend(frame(&Change {
                id: id.clone(),
                meta: Some(m.clone()),
            })?);
        }
        let tmp = self.path.with_extension("journal.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        j.file = OpenOptions::new().append(true).open(&self.path)?;
        j.records = t.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(epoch: i16, state: TxnState) -> TxnMeta {
        TxnMeta {
            producer_id: 7,
            producer_epoch: epoch,
            timeout_ms: 60000,
            state,
            partitions: [("t".to_string(), 0)].into_iter().collect(),
            groups: BTreeSet::new(),
            offsets: vec![],
            start_ms: 5,
            update_ms: 6,
        }
    }

    #[test]
    fn survives_reopen_with_removals() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let s = TxnStore::open(dir.path(), true)?;
        s.put("a", Some(meta(1, TxnState::Ongoing)))?;
        s.put("b", Some(meta(1, TxnState::Empty)))?;
        s.put("a", Some(meta(2, TxnState::CompleteCommit)))?;
        s.put("b", None)?;
        drop(s);
        let s = TxnStore::open(dir.path(), false)?;
        assert_eq!(
            s.all(),
            vec![("a".to_string(), meta(2, TxnState::CompleteCommit))]
        );
        Ok(())
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let s = TxnStore::open(dir.path(), false)?;
        s.put("a", Some(meta(1, TxnState::Ongoing)))?;
        s.put("a", Some(meta(1, TxnState::PrepareCommit)))?;
        drop(s);
        let path = dir.path().join(FILE);
        let len = std::fs::metadata(&path)?.len();
        // Half of the last record, as a crash in the middle of its write leaves it.
        let f = OpenOptions::new().write(true).open(&path)?;
        f.set_len(len - 10)?;
        drop(f);
        let s = TxnStore::open(dir.path(), false)?;
        assert_eq!(s.get("a"), Some(meta(1, TxnState::Ongoing)));
        s.put("a", Some(meta(1, TxnState::CompleteAbort)))?;
        drop(s);
        let s = TxnStore::open(dir.path(), false)?;
        assert_eq!(s.get("a"), Some(meta(1, TxnState::CompleteAbort)));
        Ok(())
    }

    #[test]
    fn compaction_keeps_live_ids_only() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let s = TxnStore::open(dir.path(), false)?;
        for i in 0..3000 {
            s.put("a", Some(meta((i % 100) as i16, TxnState::Ongoing)))?;
        }
        s.put("b", Some(meta(3, TxnState::Empty)))?;
        let records = s.journal.lock().records;
        assert!(records < 2100, "{records} records after compaction");
        drop(s);
        let s = TxnStore::open(dir.path(), false)?;
        assert_eq!(
            s.all(),
            vec![
                ("a".to_string(), meta(99, TxnState::Ongoing)),
                ("b".to_string(), meta(3, TxnState::Empty)),
            ]
        );
        Ok(())
    }

    #[test]
    fn earlier_table_file_is_folded_in() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let old: BTreeMap<String, TxnMeta> =
            [("old".to_string(), meta(4, TxnState::CompleteCommit))].into();
        std::fs::write(
            dir.path().join(LEGACY_FILE),
            serde_json::to_vec(&old).map_err(|e| StorageError::Io(std::io::Error::other(e)))?,
        )?;
        let s = TxnStore::open(dir.path(), false)?;
        assert_eq!(s.get("old"), Some(meta(4, TxnState::CompleteCommit)));
        assert!(!dir.path().join(LEGACY_FILE).exists());
        s.put("new", Some(meta(1, TxnState::Empty)))?;
        drop(s);
        let s = TxnStore::open(dir.path(), false)?;
        assert_eq!(s.all().len(), 2);
        Ok(())
    }
}

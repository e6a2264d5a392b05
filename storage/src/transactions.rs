//! Durable state of the transaction coordinator: one entry per transactional id with its
//! producer id and epoch, state, timeout, the partitions and groups of the current
//! transaction and the offsets it will commit. Protocol-free: the coordinator in the gateway
//! decides transitions; this store keeps them across restarts.
//!
//! Persistence: the whole table as JSON, written to a temporary file and renamed over
//! `transactions.json` on every change, so a crash leaves the old or the new table. Like the
//! logs and the offsets journal, the file is fsynced only under the flush-every-message
//! policy (`log.flush.interval.messages=1`); otherwise it survives the process being killed,
//! as acknowledged records do. Tables are small (one entry per transactional id); a journal
//! would be the next step if that stops being true.

use crate::error::{Result, StorageError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE: &str = "transactions.json";

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

/// The coordinator's table, durable on disk.
pub struct TxnStore {
    path: PathBuf,
    table: Mutex<BTreeMap<String, TxnMeta>>,
    sync: bool,
}

impl TxnStore {
    /// Opens the table kept in `dir`; `sync` fsyncs every change.
    pub fn open(dir: &Path, sync: bool) -> Result<Self> {
        let path = dir.join(FILE);
        let table = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StorageError::CorruptMetadata(FILE.into(), e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            path,
            table: Mutex::new(table),
            sync,
        })
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
        let mut t = self.table.lock();
        let old = match &meta {
            Some(m) => t.insert(id.to_string(), m.clone()),
            None => t.remove(id),
        };
        if let Err(e) = self.persist(&t) {
            // Memory must not claim what the disk does not hold.
            match old {
                Some(o) => t.insert(id.to_string(), o),
                None => t.remove(id),
            };
            return Err(e);
        }
        Ok(())
    }

    fn persist(&self, t: &BTreeMap<String, TxnMeta>) -> Result<()> {
        let bytes = serde_json::to_vec(t)
            .map_err(|e| StorageError::CorruptMetadata(FILE.into(), e.to_string()))?;
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            if self.sync {
                f.sync_all()?;
            }
        }
        std::fs::rename(&tmp, &self.path)?;
        if self.sync {
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { return };
        let s = TxnStore::open(dir.path(), true).ok();
        let Some(s) = s else { panic!("open failed") };
        let m = TxnMeta {
            producer_id: 7,
            producer_epoch: 2,
            timeout_ms: 60000,
            state: TxnState::Ongoing,
            partitions: [("t".to_string(), 0)].into_iter().collect(),
            groups: BTreeSet::new(),
            offsets: vec![],
            start_ms: 5,
            update_ms: 6,
        };
        assert!(s.put("a", Some(m.clone())).is_ok());
        drop(s);
        let s = TxnStore::open(dir.path(), true).ok();
        assert_eq!(s.and_then(|s| s.get("a")), Some(m));
    }
}

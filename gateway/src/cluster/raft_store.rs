#![allow(clippy::result_large_err)] // openraft's StorageError is large; not a hot path.
//! Persistent storage for the metadata Raft log (openraft's `RaftLogStorage`) and the state
//! machine with its snapshots (`RaftStateMachine`), under `<data>/meta/raft/`.
//!
//! The log is an append-only file of length-prefixed JSON entries, fsynced before openraft is
//! told an append is durable; truncation and purging (rare) rewrite it. The vote is fsynced
//! before it is acknowledged. The state machine lives in memory and is snapshotted to
//! `snapshot.json`; after a restart openraft replays the log after the snapshot.

use super::state::{ClusterState, Command, OffsetEntry, Outcome};
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, LogState, RaftLogReader, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Cursor, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use storage::{CommittedOffset, Store};
use tokio::sync::watch;

openraft::declare_raft_types!(
    /// Raft types of the metadata quorum.
    pub(crate) TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = u64,
        Node = BasicNode,
);

pub(crate) type NodeId = u64;
type StoreResult<T> = Result<T, StorageError<NodeId>>;

fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write(&e).into()
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read(&e).into()
}

/// Writes `bytes` to `path` atomically and durably.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[derive(Default, Serialize, Deserialize)]
struct LogMeta {
    last_purged: Option<LogId<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

struct LogInner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    meta: LogMeta,
    vote: Option<Vote<NodeId>>,
}

impl LogInner {
    fn log_path(dir: &Path) -> PathBuf {
        dir.join("log")
    }

    fn encode(e: &Entry<TypeConfig>) -> std::io::Result<Vec<u8>> {
        let json = serde_json::to_vec(e)?;
        let mut out = Vec::with_capacity(json.len() + 4);
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&json);
        Ok(out)
    }

    /// Rewrites the log file from memory (after truncation or purge).
    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        for e in self.entries.values() {
            bytes.extend_from_slice(&Self::encode(e)?);
        }
        let path = Self::log_path(&self.dir);
        write_durably(&path, &bytes)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        Ok(())
    }

    fn save_meta(&self) -> std::io::Result<()> {
        write_durably(
            &self.dir.join("log-meta.json"),
            &serde_json::to_vec(&self.meta)?,
        )
    }
}

/// The Raft log and vote.
#[derive(Clone)]
pub(crate) struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

impl LogStore {
    /// Opens the log under `dir`, dropping a torn last record.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = LogInner::log_path(dir);
        let mut raw = Vec::new();
        if let Ok(mut f) = File::open(&path) {
            f.read_to_end(&mut raw)?;
        }
        let mut entries = BTreeMap::new();
        let mut pos = 0usize;
        while pos + 4 <= raw.len() {
            let len =
                u32::from_be_bytes([raw[pos], raw[pos + 1], raw[pos + 2], raw[pos + 3]]) as usize;
            let Some(body) = raw.get(pos + 4..pos + 4 + len) else {
                break;
            };
            match serde_json::from_slice::<Entry<TypeConfig>>(body) {
                Ok(e) => {
                    entries.insert(e.log_id.index, e);
                }
                Err(_) => break,
            }
            pos += 4 + len;
        }
        let torn = pos < raw.len();
        let meta: LogMeta = std::fs::read(dir.join("log-meta.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let vote = std::fs::read(dir.join("vote.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut inner = LogInner {
            dir: dir.to_path_buf(),
            file,
            entries,
            meta,
            vote,
        };
        if torn {
            tracing::warn!(dropped = raw.len() - pos, "metadata log had a torn tail");
            inner.rewrite()?;
        }
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let inner = self.inner.lock();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let inner = self.inner.lock();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.meta.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.meta.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        let mut inner = self.inner.lock();
        let json = serde_json::to_vec(vote).map_err(write_err)?;
        write_durably(&inner.dir.join("vote.json"), &json).map_err(write_err)?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        let mut inner = self.inner.lock();
        inner.meta.committed = committed;
        // Not fsynced: losing it only means replaying a little more after a crash.
        let json = serde_json::to_vec(&inner.meta).map_err(write_err)?;
        std::fs::write(inner.dir.join("log-meta.json"), json).map_err(write_err)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        Ok(self.inner.lock().meta.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let result = {
            let mut inner = self.inner.lock();
            let mut bytes = Vec::new();
            let mut added = Vec::new();
            for e in entries {
                bytes.extend_from_slice(&LogInner::encode(&e).map_err(write_err)?);
                added.push(e);
            }
            let r = inner
                .file
                .write_all(&bytes)
                .and_then(|_| inner.file.sync_data());
            if r.is_ok() {
                for e in added {
                    inner.entries.insert(e.log_id.index, e);
                }
            }
            r
        };
        let failed = result
            .as_ref()
            .err()
            .map(|e| write_err(std::io::Error::new(e.kind(), e.to_string())));
        callback.log_io_completed(result);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let mut inner = self.inner.lock();
        let doomed: Vec<u64> = inner
            .entries
            .range(log_id.index..)
            .map(|(i, _)| *i)
            .collect();
        for i in doomed {
            inner.entries.remove(&i);
        }
        inner.rewrite().map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let mut inner = self.inner.lock();
        let doomed: Vec<u64> = inner
            .entries
            .range(..=log_id.index)
            .map(|(i, _)| *i)
            .collect();
        for i in doomed {
            inner.entries.remove(&i);
        }
        inner.meta.last_purged = Some(log_id);
        inner.save_meta().map_err(write_err)?;
        inner.rewrite().map_err(write_err)
    }
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, BasicNode>,
    state: ClusterState,
    /// Every group's committed offsets (group, entry) at the snapshot.
    #[serde(default)]
    offsets: Vec<(String, OffsetEntry)>,
    /// The transaction coordinators' table at the snapshot.
    #[serde(default)]
    transactions: Vec<(String, storage::TxnMeta)>,
}

/// Writes replicated offset and transaction changes into this node's journals.
fn apply_to_store(store: &Store, cmd: &Command) {
    let result = match cmd {
        Command::CommitOffsets { group, offsets } => {
            let entries: Vec<(String, i32, CommittedOffset)> =
                offsets.iter().cloned().map(Into::into).collect();
            store.offsets().commit(group, &entries)
        }
        Command::DeleteOffsets {
            group,
            partitions: Some(p),
        } => store.offsets().delete(group, p),
        Command::DeleteOffsets {
            group,
            partitions: None,
        } => store.offsets().delete_group(group),
        Command::Txn { id, meta } => store.transactions().put(id, meta.clone()),
        _ => return,
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot write replicated consumer offsets to the local journal");
    }
}

/// Every committed offset in this node's journal.
fn all_offsets(store: &Store) -> Vec<(String, OffsetEntry)> {
    let offsets = store.offsets();
    let mut out = Vec::new();
    for g in offsets.groups() {
        for e in offsets.group(&g) {
            out.push((g.clone(), OffsetEntry::from(e)));
        }
    }
    out
}

struct SmInner {
    dir: PathBuf,
    state: ClusterState,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    snapshot: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
    snapshot_seq: u64,
}

/// The applied metadata, shared with every reader in the node.
#[derive(Clone)]
pub(crate) struct StateMachine {
    inner: Arc<Mutex<SmInner>>,
    /// The applied state, republished after every apply that changed it.
    published: watch::Sender<Arc<ClusterState>>,
    /// Index of the last applied entry, published after every apply.
    applied: watch::Sender<u64>,
    /// The node's store: replicated consumer offsets are applied to its journal.
    store: Arc<Store>,
}

impl StateMachine {
    /// Opens the state machine, starting from the last snapshot if there is one.
    pub(crate) fn open(dir: &Path, store: Arc<Store>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut inner = SmInner {
            dir: dir.to_path_buf(),
            state: ClusterState::default(),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshot: None,
            snapshot_seq: 0,
        };
        if let Ok(bytes) = std::fs::read(dir.join("snapshot.json")) {
            let snap: SnapshotFile = serde_json::from_slice(&bytes)?;
            inner.state = snap.state;
            inner.last_applied = snap.meta.last_log_id;
            inner.membership = snap.meta.last_membership.clone();
            inner.snapshot = Some((snap.meta, bytes));
        }
        let (published, _) = watch::channel(Arc::new(inner.state.clone()));
        let (applied, _) = watch::channel(inner.last_applied.map(|l| l.index).unwrap_or(0));
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            published,
            applied,
            store,
        })
    }

    /// Receives the applied state after every change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.published.subscribe()
    }

    /// Receives the applied index after every apply.
    pub(crate) fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The currently applied state.
    pub(crate) fn current(&self) -> Arc<ClusterState> {
        self.published.borrow().clone()
    }

    /// Index of the last applied entry.
    pub(crate) fn applied_index(&self) -> u64 {
        self.inner.lock().last_applied.map(|l| l.index).unwrap_or(0)
    }

    fn publish(&self, state: ClusterState) {
        self.published.send_replace(Arc::new(state));
    }

    fn build(&self) -> StoreResult<Snapshot<TypeConfig>> {
        let mut inner = self.inner.lock();
        inner.snapshot_seq += 1;
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                inner.last_applied.map(|l| l.index).unwrap_or(0),
                inner.snapshot_seq
            ),
        };
        // The journal holds every applied offset change (the inner lock keeps applies out).
        let file = SnapshotFile {
            meta: meta.clone(),
            state: inner.state.clone(),
            offsets: all_offsets(&self.store),
            transactions: self.store.transactions().all(),
        };
        let bytes = serde_json::to_vec(&file).map_err(write_err)?;
        write_durably(&inner.dir.join("snapshot.json"), &bytes).map_err(write_err)?;
        inner.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        self.build()
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        let inner = self.inner.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<Outcome>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let (state, index) = {
            let mut inner = self.inner.lock();
            let mut changed = false;
            for e in entries {
                inner.last_applied = Some(e.log_id);
                match e.payload {
                    EntryPayload::Blank => out.push(Outcome::Ok),
                    EntryPayload::Normal(cmd) => {
                        if matches!(
                            cmd,
                            Command::CommitOffsets { .. }
                                | Command::DeleteOffsets { .. }
                                | Command::Txn { .. }
                        ) {
                            apply_to_store(&self.store, &cmd);
                        } else {
                            changed = true;
                        }
                        let o = inner.state.apply(cmd);
                        out.push(o);
                    }
                    EntryPayload::Membership(m) => {
                        inner.membership = StoredMembership::new(Some(e.log_id), m);
                        out.push(Outcome::Ok);
                    }
                }
            }
            // Offset commits are frequent: they do not republish (and re-reconcile) the state.
            (
                changed.then(|| inner.state.clone()),
                inner.last_applied.map(|l| l.index).unwrap_or(0),
            )
        };
        if let Some(state) = state {
            self.publish(state);
        }
        self.applied.send_replace(index);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let bytes = snapshot.into_inner();
        let file: SnapshotFile = serde_json::from_slice(&bytes).map_err(read_err)?;
        let state = {
            let mut inner = self.inner.lock();
            write_durably(&inner.dir.join("snapshot.json"), &bytes).map_err(write_err)?;
            let mut by_group: std::collections::BTreeMap<String, Vec<OffsetEntry>> =
                std::collections::BTreeMap::new();
            for (g, e) in file.offsets {
                by_group.entry(g).or_default().push(e);
            }
            for (group, offsets) in by_group {
                apply_to_store(&self.store, &Command::CommitOffsets { group, offsets });
            }
            for (id, meta) in file.transactions {
                apply_to_store(
                    &self.store,
                    &Command::Txn {
                        id,
                        meta: Some(meta),
                    },
                );
            }
            inner.state = file.state;
            inner.last_applied = meta.last_log_id;
            inner.membership = meta.last_membership.clone();
            inner.snapshot = Some((meta.clone(), bytes));
            inner.state.clone()
        };
        self.publish(state);
        self.applied
            .send_replace(meta.last_log_id.map(|l| l.index).unwrap_or(0));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        let inner = self.inner.lock();
        Ok(inner.snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.clone())),
        }))
    }
}

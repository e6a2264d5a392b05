//! Committed consumer offsets, keyed by (group, topic, partition), shared by the Kafka and
//! RocketMQ front ends.
//!
//! Persistence is an append-only journal of CRC-framed records replayed on open; a torn tail
//! is cut off. When the journal holds far more records than live entries it is rewritten
//! (compacted) through a temporary file and an atomic rename.
//!
//! Record: `len u32 | crc32c u32 | payload`, payload = `kind u8 (1 commit, 2 delete) |
//! group str | topic str | partition i32 | offset i64 | leader_epoch i32 | commit_ms i64 |
//! metadata str`, strings as `u16 length | UTF-8`.

use crate::error::{Result, StorageError};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A committed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// Client-supplied metadata string.
    pub metadata: String,
    /// When it was committed (ms since the epoch).
    pub commit_ms: i64,
}

type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

struct Journal {
    file: File,
    records: u64,
}

/// The committed-offsets store.
pub struct OffsetStore {
    path: PathBuf,
    groups: RwLock<HashMap<String, GroupOffsets>>,
    journal: Mutex<Journal>,
    sync: bool,
}

const KIND_COMMIT: u8 = 1;
const KIND_DELETE: u8 = 2;
/// Largest record accepted on replay; a longer length means a torn or corrupt tail.
const MAX_RECORD: usize = 1 << 20;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&b[..n]);
}

struct Reader<'a>(&'a [u8]);
impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_be_bytes)
    }
    fn str(&mut self) -> Option<String> {
        let n = self
            .take(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)?;
        self.take(n)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

fn encode(kind: u8, group: &str, topic: &str, partition: i32, c: &CommittedOffset) -> Vec<u8> {
    let mut p = Vec::with_capacity(64 + c.metadata.len());
    p.push(kind);
    put_str(&mut p, group);
    put_str(&mut p, topic);
    p.extend_from_slice(&partition.to_be_bytes());
    p.extend_from_slice(&c.offset.to_be_bytes());
    p.extend_from_slice(&c.leader_epoch.to_be_bytes());
    p.extend_from_slice(&c.commit_ms.to_be_bytes());
    put_str(&mut p, &c.metadata);
    crate::journal::frame(&p)
}

/// Applies one journal record; false if it does not parse.
fn apply(payload: &[u8], groups: &mut HashMap<String, GroupOffsets>) -> bool {
    let mut r = Reader(payload);
    let parsed = (|| {
        let kind = r.u8()?;
        let group = r.str()?;
        let topic = r.str()?;
        let partition = r.i32()?;
        let offset = r.i64()?;
        let leader_epoch = r.i32()?;
        let commit_ms = r.i64()?;
        let metadata = r.str()?;
        Some((
            kind,
            group,
            topic,
            partition,
            CommittedOffset {
                offset,
                leader_epoch,
                metadata,
                commit_ms,
            },
        ))
    })();
    let Some((kind, group, topic, partition, c)) = parsed else {
        return false;
    };
    match kind {
        KIND_COMMIT => {
            groups
                .entry(group)
                .or_default()
                .insert((topic, partition), c);
        }
        _ => {
            if let Some(g) = groups.get_mut(&group) {
                g.remove(&(topic, partition));
                if g.is_empty() {
                    groups.remove(&group);
                }
            }
        }
    }
    true
}

impl OffsetStore {
    /// Opens the store in `dir`, replaying its journal. With `sync`, every commit is fsynced
    /// before it returns.
    pub fn open(dir: &Path, sync: bool) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("offsets.journal");
        let mut groups = HashMap::new();
        let (file, records) = crate::journal::open(&path, MAX_RECORD, |p| apply(p, &mut groups))?;
        Ok(Self {
            path,
            groups: RwLock::new(groups),
            journal: Mutex::new(Journal { file, records }),
            sync,
        })
    }

    fn write(&self, recs: &[u8], count: u64) -> Result<()> {
        let mut j = self.journal.lock();
        j.file.write_all(recs)?;
        if self.sync {
            j.file.sync_data()?;
        }
        j.records += count;
        let live: usize = self.groups.read().values().map(|g| g.len()).sum();
        if j.records > 10_000 && j.records > 4 * live as u64 {
            self.compact(&mut j)?;
        }
        Ok(())
    }

    fn compact(&self, j: &mut Journal) -> Result<()> {
        let tmp = self.path.with_extension("journal.tmp");
        let mut out = Vec::new();
        let mut count = 0;
        for (g, offs) in self.groups.read().iter() {
            for ((t, p), c) in offs {
                out.extend(encode(KIND_COMMIT, g, t, *p, c));
                count += 1;
            }
        }
        let mut f = File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        j.file = OpenOptions::new().append(true).open(&self.path)?;
        j.records = count;
        Ok(())
    }

    /// Commits offsets of one group atomically with respect to readers and durably per policy.
    pub fn commit(&self, group: &str, entries: &[(String, i32, CommittedOffset)]) -> Result<()> {
        let mut recs = Vec::new();
        for (t, p, c) in entries {
            recs.extend(encode(KIND_COMMIT, group, t, *p, c));
        }
        {
            let mut groups = self.groups.write();
            let g = groups.entry(group.to_string()).or_default();
            for (t, p, c) in entries {
                g.insert((t.clone(), *p), c.clone());
            }
        }
        self.write(&recs, entries.len() as u64)
    }

    /// The committed offset of one partition.
    pub fn fetch(&self, group: &str, topic: &str, partition: i32) -> Option<CommittedOffset> {
        self.groups
            .read()
            .get(group)
            .and_then(|g| g.get(&(topic.to_string(), partition)).cloned())
    }

    /// Every committed offset of a group, ordered by topic and partition.
    pub fn group(&self, group: &str) -> Vec<(String, i32, CommittedOffset)> {
        self.groups
            .read()
            .get(group)
            .map(|g| {
                g.iter()
                    .map(|((t, p), c)| (t.clone(), *p, c.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names of groups that have committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self.groups.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// Removes the given partitions' offsets from a group.
    pub fn delete(&self, group: &str, partitions: &[(String, i32)]) -> Result<()> {
        let mut recs = Vec::new();
        {
            let mut groups = self.groups.write();
            if let Some(g) = groups.get_mut(group) {
                for (t, p) in partitions {
                    if let Some(c) = g.remove(&(t.clone(), *p)) {
                        recs.extend(encode(KIND_DELETE, group, t, *p, &c));
                    }
                }
                if g.is_empty() {
                    groups.remove(group);
                }
            }
        }
        if recs.is_empty() {
            return Ok(());
        }
        self.write(&recs, partitions.len() as u64)
    }

    /// Removes all of a group's offsets.
    pub fn delete_group(&self, group: &str) -> Result<()> {
        let parts: Vec<(String, i32)> = self
            .group(group)
            .into_iter()
            .map(|(t, p, _)| (t, p))
            .collect();
        self.delete(group, &parts)
    }

    /// Removes every group's offsets of a deleted topic.
    pub fn delete_topic(&self, topic: &str) -> Result<()> {
        let victims: Vec<(String, Vec<(String, i32)>)> = self
            .groups
            .read()
            .iter()
            .map(|(g, offs)| {
                (
                    g.clone(),
                    offs.keys().filter(|(t, _)| t == topic).cloned().collect(),
                )
            })
            .filter(|(_, v): &(String, Vec<_>)| !v.is_empty())
            .collect();
        for (g, parts) in victims {
            self.delete(&g, &parts)?;
        }
        Ok(())
    }

    /// fsyncs the journal.
    pub fn sync(&self) -> Result<()> {
        self.journal
            .lock()
            .file
            .sync_data()
            .map_err(StorageError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: "m".into(),
            commit_ms: 5,
        }
    }

    #[test]
    fn persist_delete_and_torn_tail() -> Result<()> {
        let dir = tempfile::tempdir()?;
        {
            let s = OffsetStore::open(dir.path(), false)?;
            s.commit("g", &[("t".into(), 0, c(10)), ("t".into(), 1, c(20))])?;
            s.commit("g", &[("t".into(), 0, c(11))])?;
            s.commit("h", &[("u".into(), 0, c(1))])?;
            s.delete("h", &[("u".into(), 0)])?;
        }
        // A torn record at the end is dropped, the rest survives.
        let path = dir.path().join("offsets.journal");
        let mut f = OpenOptions::new().append(true).open(&path)?;
        f.write_all(&[0, 0, 0, 50, 1, 2])?;
        let s = OffsetStore::open(dir.path(), false)?;
        assert_eq!(s.fetch("g", "t", 0), Some(c(11)));
        assert_eq!(s.fetch("g", "t", 1), Some(c(20)));
        assert_eq!(s.fetch("h", "u", 0), None);
        assert_eq!(s.groups(), vec!["g".to_string()]);
        s.commit("g", &[("t".into(), 2, c(3))])?;
        let s = OffsetStore::open(dir.path(), false)?;
        assert_eq!(s.fetch("g", "t", 2), Some(c(3)));
        Ok(())
    }
}

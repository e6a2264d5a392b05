//! Per-partition index of message keys to offsets, the equivalent of RocketMQ's IndexFile, for
//! query by key. Keys are a record's Kafka key and every space-separated entry of its `KEYS`
//! header (RocketMQ's property).
//!
//! The index is built behind the log, not on the produce path: [`KeyIndex::catch_up`] decodes
//! the records appended since the last call. Entries are 16 bytes (`fnv1a64(key) u64 |
//! offset i64`) appended to `keys.idx`; the position indexed so far is kept in `keys.pos`.
//! Lookups return candidate offsets; callers confirm the key on the record itself, since
//! different keys may share a hash.

use crate::error::Result;
use crate::log::PartitionLog;
use kafka_protocol::records::RecordBatchDecoder;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const ENTRY: usize = 16;
/// Bytes of log decoded per catch-up step.
const STEP_BYTES: usize = 1024 * 1024;

/// The FNV-1a 64-bit hash of a key.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

struct State {
    map: HashMap<u64, Vec<i64>>,
    indexed_to: i64,
    file: File,
}

/// The key index of one partition.
pub struct KeyIndex {
    pos_path: PathBuf,
    state: Mutex<State>,
}

impl KeyIndex {
    /// Opens (or creates) the index in a partition directory.
    pub fn open(dir: &Path) -> Result<Self> {
        let idx_path = dir.join("keys.idx");
        let pos_path = dir.join("keys.pos");
        let mut buf = Vec::new();
        if let Ok(mut f) = File::open(&idx_path) {
            f.read_to_end(&mut buf)?;
        }
        let whole = buf.len() - buf.len() % ENTRY;
        let mut map: HashMap<u64, Vec<i64>> = HashMap::new();
        let mut last = -1i64;
        for c in buf[..whole].chunks_exact(ENTRY) {
            let mut h = [0u8; 8];
            let mut o = [0u8; 8];
            h.copy_from_slice(&c[..8]);
            o.copy_from_slice(&c[8..]);
            let off = i64::from_be_bytes(o);
            map.entry(u64::from_be_bytes(h)).or_default().push(off);
            last = last.max(off);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(&idx_path)?;
        if whole < buf.len() {
            file.set_len(whole as u64)?;
        }
        // The saved position is written after the entries it covers; never trust it beyond
        // the entries actually present.
        let saved = std::fs::read_to_string(&pos_path)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let indexed_to = if last >= 0 {
            saved.max(last + 1)
        } else {
            saved
        };
        Ok(Self {
            pos_path,
            state: Mutex::new(State {
                map,
                indexed_to,
                file,
            }),
        })
    }

    /// Indexes every record of `log` up to its high watermark that is not indexed yet.
    pub fn catch_up(&self, log: &PartitionLog) -> Result<()> {
        let mut st = self.state.lock();
        let hw = log.high_watermark();
        let mut next = st.indexed_to.max(log.log_start_offset());
        let start = st.indexed_to;
        while next < hw {
            let bytes = log.read(next, STEP_BYTES, true)?;
            if bytes.is_empty() {
                break;
            }
            let mut b = bytes;
            let sets = match RecordBatchDecoder::decode_all(&mut b) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(topic = log.topic(), partition = log.partition(), offset = next, error = %e, "key index cannot decode batch; skipping it");
                    next += 1;
                    continue;
                }
            };
            let mut out = Vec::new();
            let mut last = next - 1;
            for r in sets.into_iter().flat_map(|s| s.records) {
                last = last.max(r.offset);
                if r.offset < next || r.control {
                    continue;
                }
                let mut keys: Vec<Vec<u8>> = Vec::new();
                if let Some(k) = r.key.as_ref().filter(|k| !k.is_empty()) {
                    keys.push(k.to_vec());
                }
                let rmq_keys = r
                    .headers
                    .iter()
                    .find(|(k, _)| k.as_str() == "KEYS")
                    .and_then(|(_, v)| v.as_ref());
                if let Some(v) = rmq_keys {
                    for k in v.split(|b| *b == b' ').filter(|k| !k.is_empty()) {
                        if !keys.iter().any(|x| x == k) {
                            keys.push(k.to_vec());
                        }
                    }
                }
                for k in keys {
                    let h = key_hash(&k);
                    out.extend_from_slice(&h.to_be_bytes());
                    out.extend_from_slice(&r.offset.to_be_bytes());
                    st.map.entry(h).or_default().push(r.offset);
                }
            }
            if !out.is_empty() {
                st.file.write_all(&out)?;
            }
            next = last + 1;
        }
        if next > start {
            st.indexed_to = next;
            let tmp = self.pos_path.with_extension("tmp");
            std::fs::write(&tmp, next.to_string())?;
            std::fs::rename(&tmp, &self.pos_path)?;
        }
        Ok(())
    }

    /// Candidate offsets of records that may carry `key`, ascending.
    pub fn lookup(&self, key: &[u8]) -> Vec<i64> {
        let st = self.state.lock();
        let mut v = st.map.get(&key_hash(key)).cloned().unwrap_or_default();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Offset up to which records are indexed.
    pub fn indexed_to(&self) -> i64 {
        self.state.lock().indexed_to
    }
}

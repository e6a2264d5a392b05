//! The leader-epoch cache of a partition: the first offset written in each leader epoch, kept
//! in `leader-epoch-checkpoint` so a follower can find where its log diverges from a new
//! leader's (Kafka's KIP-101/KIP-279).

use crate::error::Result;
use std::path::{Path, PathBuf};

const FILE: &str = "leader-epoch-checkpoint";

/// Epoch "not known", as in OffsetForLeaderEpoch answers.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Offset "not known", as in OffsetForLeaderEpoch answers.
pub const UNDEFINED_OFFSET: i64 = -1;

/// `(epoch, start offset)` pairs in increasing order of both.
#[derive(Debug)]
pub struct LeaderEpochs {
    path: PathBuf,
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochs {
    /// Loads the checkpoint of the log in `dir`, dropping entries that start beyond `log_end`
    /// (written before a crash cut the log back).
    pub fn open(dir: &Path, log_end: i64) -> Result<Self> {
        let path = dir.join(FILE);
        let mut entries = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                let mut it = line.split_whitespace();
                if let (Some(e), Some(o)) = (it.next(), it.next()) {
                    if let (Ok(e), Ok(o)) = (e.parse::<i32>(), o.parse::<i64>()) {
                        if o <= log_end && entries.last().is_none_or(|l: &(i32, i64)| l.0 < e) {
                            entries.push((e, o));
                        }
                    }
                }
            }
        }
        Ok(Self { path, entries })
    }

    /// The newest epoch recorded, if any.
    pub fn latest(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` starts at `offset`, if it is newer than every recorded epoch.
    /// Returns whether anything changed.
    pub fn assign(&mut self, epoch: i32, offset: i64) -> Result<bool> {
        if epoch < 0 || self.latest().is_some_and(|l| l >= epoch) {
            return Ok(false);
        }
        self.entries.push((epoch, offset));
        self.save()?;
        Ok(true)
    }

    /// Forgets epochs that start at or after `offset` (the log was truncated there).
    pub fn truncate_from(&mut self, offset: i64) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.1 < offset);
        if self.entries.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// Kafka's `endOffsetFor`: the epoch at or below `requested` this log knows and the offset
    /// where that epoch ended (the log end for the newest epoch).
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        if requested < 0 {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        }
        if self.latest() == Some(requested) {
            return (requested, log_end);
        }
        let Some(higher) = self.entries.iter().find(|e| e.0 > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.0 <= requested) {
            Some(floor) => (floor.0, higher.1),
            None => (requested, higher.1),
        }
    }

    fn save(&self) -> Result<()> {
        let mut text = String::new();
        for (e, o) in &self.entries {
            text.push_str(&format!("{e} {o}\n"));
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_follow_kafka_rules() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochs::open(dir.path(), 0).unwrap();
        assert_eq!(c.end_offset_for(0, 0), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
        assert!(c.assign(1, 0).unwrap());
        assert!(!c.assign(1, 5).unwrap());
        assert!(c.assign(3, 10).unwrap());
        assert!(c.assign(4, 20).unwrap());
        assert_eq!(c.end_offset_for(4, 25), (4, 25));
        assert_eq!(c.end_offset_for(3, 25), (3, 20));
        assert_eq!(c.end_offset_for(2, 25), (1, 10));
        assert_eq!(c.end_offset_for(0, 25), (0, 0));
        assert_eq!(c.end_offset_for(7, 25), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
        c.truncate_from(20).unwrap();
        let again = LeaderEpochs::open(dir.path(), 15).unwrap();
        assert_eq!(again.latest(), Some(3));
        assert_eq!(again.end_offset_for(3, 15), (3, 15));
        let cut = LeaderEpochs::open(dir.path(), 5).unwrap();
        assert_eq!(cut.latest(), Some(1));
    }
}

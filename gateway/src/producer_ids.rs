//! Producer-id allocation for idempotent producers. Ids must never repeat, even across
//! restarts, so ids are handed out from blocks whose upper bound is persisted before use.

use parking_lot::Mutex;
use std::path::PathBuf;

const BLOCK: i64 = 1000;

struct State {
    next: i64,
    block_end: i64,
}

/// Allocates producer ids.
pub(crate) struct ProducerIds {
    path: PathBuf,
    /// Added to every id so nodes of a cluster never hand out the same one.
    prefix: i64,
    state: Mutex<State>,
}

impl ProducerIds {
    /// Opens the allocator; the first id handed out is past every id of earlier runs.
    pub(crate) fn open(path: PathBuf, prefix: i64) -> std::io::Result<Self> {
        let start = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        Ok(Self {
            path,
            prefix,
            state: Mutex::new(State {
                next: start,
                block_end: start,
            }),
        })
    }

    /// The next unused producer id.
    pub(crate) fn allocate(&self) -> std::io::Result<i64> {
        let mut s = self.state.lock();
        if s.next >= s.block_end {
            let end = s.block_end + BLOCK;
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, end.to_string())?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            s.block_end = end;
        }
        let id = s.next;
        s.next += 1;
        Ok(self.prefix + id)
    }
}

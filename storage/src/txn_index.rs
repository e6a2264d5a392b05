//! Transactions as one partition sees them: the producers with a transaction open here (from
//! which offset), and the aborted transactions whose records read_committed readers drop.
//! The last stable offset is the first offset of the oldest open transaction. Rebuilt from
//! the log's batch headers when the partition is opened (as Kafka recovers its producer
//! state from the log), so nothing here needs a file of its own.

use codecs::kafka::control::Marker;
use std::collections::BTreeMap;

/// One aborted transaction of a partition (Fetch's `aborted_transactions` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// Producer of the transaction.
    pub producer_id: i64,
    /// Offset of its first record in this partition.
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
}

/// Open and aborted transactions of one partition.
#[derive(Debug, Default)]
pub struct TxnIndex {
    /// producer id → first offset of its open transaction.
    open: BTreeMap<i64, i64>,
    /// Ordered by marker offset.
    aborted: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// Notes a transactional data batch starting at `base_offset`.
    pub fn data(&mut self, producer_id: i64, base_offset: i64) {
        self.open.entry(producer_id).or_insert(base_offset);
    }

    /// Notes a marker at `offset` that ends `producer_id`'s transaction.
    pub fn marker(&mut self, producer_id: i64, marker: Marker, offset: i64) {
        let Some(first) = self.open.remove(&producer_id) else {
            // No data here (a partition added but never written): nothing to hide.
            return;
        };
        if marker == Marker::Abort {
            self.aborted.push(AbortedTxn {
                producer_id,
                first_offset: first,
                last_offset: offset,
            });
        }
    }

    /// First offset of the oldest open transaction.
    pub fn first_unstable(&self) -> Option<i64> {
        self.open.values().min().copied()
    }

    /// First offset of `producer_id`'s open transaction here.
    pub fn open_since(&self, producer_id: i64) -> Option<i64> {
        self.open.get(&producer_id).copied()
    }

    /// The aborted transactions a read of `[from, to)` must know about: those whose records
    /// may lie in it.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start (deleted by retention).
    pub fn drop_before(&mut self, log_start: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lso_and_aborted_ranges() {
        let mut t = TxnIndex::default();
        t.data(0, 1);
        t.marker(0, Marker::Abort, 2);
        t.drop_before(3);
        assert_eq!(t.aborted_between(0, 100), vec![]);
        t.data(1, 10);
        t.data(2, 12);
        t.data(1, 14);
        assert_eq!(t.first_unstable(), Some(10));
        t.marker(1, Marker::Abort, 15);
        assert_eq!(t.first_unstable(), Some(12));
        t.marker(2, Marker::Commit, 16);
        assert_eq!(t.first_unstable(), None);
        let a = AbortedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 15,
        };
        assert_eq!(t.aborted_between(0, 11), vec![a]);
        assert_eq!(t.aborted_between(15, 20), vec![a]);
        assert_eq!(t.aborted_between(16, 20), vec![]);
        assert_eq!(t.aborted_between(0, 10), vec![]);
        t.marker(3, Marker::Abort, 17);
        assert_eq!(t.aborted_between(0, 100).len(), 1);
    }
}

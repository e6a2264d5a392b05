//! Idempotent-producer bookkeeping of one partition: the epoch and the last five batches per
//! producer id, so that retried batches are acknowledged without being appended twice and
//! gaps in sequence numbers are refused, as Kafka's ProducerStateManager does.

use crate::error::{Result, StorageError};
use codecs::kafka::batch::BatchHeader;
use std::collections::{HashMap, VecDeque};

/// How many recent batches per producer are remembered for duplicate detection (Kafka: 5,
/// matching `max.in.flight.requests.per.connection` for idempotence).
const CACHED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Default)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    last_timestamp: i64,
}

/// Outcome of checking a batch against the producer's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not an idempotent batch, or the next one in sequence: append it.
    Append,
    /// A retry of a batch already in the log at these offsets: acknowledge, do not append.
    Duplicate {
        /// Offset of the first record of the original append.
        base_offset: i64,
        /// Offset of its last record.
        last_offset: i64,
    },
}

/// Producer state of one partition.
#[derive(Debug, Default)]
pub struct ProducerState {
    producers: HashMap<i64, Entry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerState {
    /// Checks a batch before it is appended.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck> {
        if h.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(e) = self.producers.get(&h.producer_id) else {
            // Unknown producer (new, or its state expired with old segments): accept.
            return Ok(SequenceCheck::Append);
        };
        if h.producer_epoch < e.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                current: e.epoch,
                got: h.producer_epoch,
            });
        }
        if h.base_sequence < 0 {
            // A transaction marker, or a batch without sequence numbers: epoch checked only.
            return Ok(SequenceCheck::Append);
        }
        if h.producer_epoch > e.epoch {
            if h.base_sequence != 0 {
                return Err(StorageError::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    expected: 0,
                    got: h.base_sequence,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == h.last_sequence())
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
            });
        }
        let expected = e.batches.back().map(|b| next_seq(b.last_seq)).unwrap_or(0);
        if h.base_sequence != expected {
            return Err(StorageError::OutOfOrderSequence {
                producer_id: h.producer_id,
                expected,
                got: h.base_sequence,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records an appended batch (or one found in the log during recovery).
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64) {
        if h.is_control() && h.producer_id >= 0 {
            // A marker written with a newer epoch (the coordinator fenced the producer while
            // aborting its transaction) fences older epochs here too.
            let e = self.producers.entry(h.producer_id).or_default();
            if h.producer_epoch > e.epoch {
                e.epoch = h.producer_epoch;
                e.batches.clear();
            }
            e.last_timestamp = e.last_timestamp.max(h.max_timestamp);
            return;
        }
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let e = self.producers.entry(h.producer_id).or_default();
        e.last_timestamp = h.max_timestamp;
        if h.producer_epoch != e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        if e.batches.len() == CACHED_BATCHES {
            e.batches.pop_front();
        }
        e.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset,
            last_offset: base_offset + h.last_offset_delta as i64,
        });
    }

    /// (producer id, epoch, last sequence or -1, last timestamp) of every producer tracked.
    pub fn snapshot(&self) -> Vec<(i64, i16, i32, i64)> {
        let mut v: Vec<_> = self
            .producers
            .iter()
            .map(|(id, e)| {
                let seq = e.batches.back().map(|b| b.last_seq).unwrap_or(-1);
                (*id, e.epoch, seq, e.last_timestamp)
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pid: i64, epoch: i16, seq: i32, n: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: n - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: n,
        }
    }

    #[test]
    fn duplicates_gaps_and_epochs() {
        let mut s = ProducerState::default();
        assert_eq!(s.check(&h(7, 0, 0, 3)).ok(), Some(SequenceCheck::Append));
        s.record(&h(7, 0, 0, 3), 10);
        assert_eq!(
            s.check(&h(7, 0, 0, 3)).ok(),
            Some(SequenceCheck::Duplicate {
                base_offset: 10,
                last_offset: 12
            })
        );
        assert!(matches!(
            s.check(&h(7, 0, 5, 1)),
            Err(StorageError::OutOfOrderSequence { expected: 3, .. })
        ));
        assert_eq!(s.check(&h(7, 0, 3, 1)).ok(), Some(SequenceCheck::Append));
        assert_eq!(s.check(&h(7, 1, 0, 1)).ok(), Some(SequenceCheck::Append));
        s.record(&h(7, 1, 0, 1), 20);
        assert!(matches!(
            s.check(&h(7, 0, 3, 1)),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
    }
}

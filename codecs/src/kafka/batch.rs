//! RecordBatch v2 (magic 2) helpers that work on the header only, so the hot path can validate,
//! index and re-offset batches without decoding or copying their records.
//!
//! Layout (big-endian): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12,
//! magic i8 @16, crc u32 @17 (CRC-32C of bytes 21..), attributes i16 @21, lastOffsetDelta i32 @23,
//! baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43, producerEpoch i16 @51,
//! baseSequence i32 @53, recordCount i32 @57, records @61.

/// Size of the fixed batch header.
pub const HEADER_SIZE: usize = 61;
/// Bytes before `batchLength` counts: baseOffset and batchLength themselves.
pub const LOG_OVERHEAD: usize = 12;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAGIC_OFFSET: usize = 16;

/// Attribute bit: the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit: the batch is a control batch (transaction marker).
pub const ATTR_CONTROL: i16 = 0x20;
/// Attribute bit: timestamps are log-append times.
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;

/// Why bytes are not a valid record batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than the header or the declared length.
    #[error("truncated batch: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes required.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Magic byte other than 2.
    #[error("unsupported record batch magic {0}")]
    Magic(i8),
    /// batchLength smaller than the header it must contain.
    #[error("invalid batch length {0}")]
    Length(i32),
    /// CRC-32C mismatch.
    #[error("batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// CRC in the batch header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// The header's counts contradict each other.
    #[error("inconsistent batch header: {0}")]
    Inconsistent(&'static str),
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The decoded fixed header of one RecordBatch v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the batchLength field.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 here.
    pub magic: i8,
    /// Stored CRC-32C.
    pub crc: u32,
    /// Compression (bits 0-2), timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `b`; `b` may hold more than one batch.
    pub fn parse(b: &[u8]) -> Result<Self, BatchError> {
        if b.len() < HEADER_SIZE {
            return Err(BatchError::Truncated {
                need: HEADER_SIZE,
                have: b.len(),
            });
        }
        let magic = b[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(BatchError::Magic(magic));
        }
        let batch_length = i32_at(b, 8);
        if (batch_length as i64) < (HEADER_SIZE - LOG_OVERHEAD) as i64 {
            return Err(BatchError::Length(batch_length));
        }
        Ok(Self {
            base_offset: i64_at(b, 0),
            batch_length,
            partition_leader_epoch: i32_at(b, 12),
            magic,
            crc: u32::from_be_bytes([b[17], b[18], b[19], b[20]]),
            attributes: i16_at(b, 21),
            last_offset_delta: i32_at(b, 23),
            base_timestamp: i64_at(b, 27),
            max_timestamp: i64_at(b, 35),
            producer_id: i64_at(b, 43),
            producer_epoch: i16_at(b, 51),
            base_sequence: i32_at(b, 53),
            record_count: i32_at(b, 57),
        })
    }

    /// Total size of the batch including baseOffset and batchLength.
    pub fn total_size(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }

    /// Whether the batch is part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Whether the batch holds a transaction marker.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Sequence number of the last record (wrapping like Kafka's).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }
}

/// Computes the CRC-32C a batch should carry.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// A zigzag varint (Kafka's signed varint) at the start of `b`: its value and length.
fn varint(b: &[u8]) -> Option<(i32, usize)> {
    let mut v: u32 = 0;
    for (i, byte) in b.iter().take(5).enumerate() {
        v |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((((v >> 1) as i32) ^ -((v & 1) as i32), i + 1));
        }
    }
    None
}

/// An uncompressed batch holds exactly `count` length-prefixed records filling it: a header
/// claiming more (or fewer) records than it carries is refused, as Kafka's validator does
/// (otherwise one forged batch would move the log end by up to 2^31 offsets).
fn check_record_count(batch: &[u8], count: i32) -> Result<(), BatchError> {
    let (mut pos, mut n) = (HEADER_SIZE, 0i64);
    while pos < batch.len() {
        let (len, used) =
            varint(&batch[pos..]).ok_or(BatchError::Inconsistent("truncated record length"))?;
        let len =
            usize::try_from(len).map_err(|_| BatchError::Inconsistent("negative record length"))?;
        pos = pos.saturating_add(used).saturating_add(len);
        if pos > batch.len() {
            return Err(BatchError::Inconsistent(
                "record runs past the end of its batch",
            ));
        }
        n += 1;
    }
    if n != i64::from(count) {
        return Err(BatchError::Inconsistent(
            "record count does not match the records in the batch",
        ));
    }
    Ok(())
}

/// Fully validates one batch that occupies exactly `batch`: header, length, counts and CRC.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(batch)?;
    if h.total_size() != batch.len() {
        return Err(BatchError::Truncated {
            need: h.total_size(),
            have: batch.len(),
        });
    }
    if h.record_count < 0 || h.last_offset_delta < 0 {
        return Err(BatchError::Inconsistent(
            "negative record count or offset delta",
        ));
    }
    if h.record_count > 0 && h.last_offset_delta != h.record_count - 1 && !h.is_control() {
        // Producers number records 0..n-1; anything else would make offsets overlap.
        return Err(BatchError::Inconsistent(
            "last offset delta does not match record count",
        ));
    }
    if h.compression() == 0 {
        check_record_count(batch, h.record_count)?;
    }
    let computed = compute_crc(batch);
    if computed != h.crc {
        return Err(BatchError::Crc {
            stored: h.crc,
            computed,
        });
    }
    Ok(h)
}

/// Splits concatenated batches, validating each one. Fails on any trailing partial batch.
pub fn split_validated(bytes: &[u8]) -> Result<Vec<(usize, BatchHeader)>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..])?;
        let end = pos
            .checked_add(h.total_size())
            .filter(|e| *e <= bytes.len())
            .ok_or(BatchError::Truncated {
                need: h.total_size(),
                have: bytes.len() - pos,
            })?;
        validate(&bytes[pos..end])?;
        out.push((pos, h));
        pos = end;
    }
    Ok(out)
}

/// Rewrites baseOffset in place. The CRC does not cover it, so it stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites partitionLeaderEpoch in place (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Switches a batch to log-append time with the given timestamp and recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) {
    let attrs = i16_at(batch, ATTRIBUTES_OFFSET) | ATTR_LOG_APPEND_TIME;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[35..43].copy_from_slice(&timestamp.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Iterates over whole batches at the start of `bytes`, stopping silently at a trailing partial
/// batch (as a fetch response may end with one) or at the first unparsable header.
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BatchIter<'a> {
    /// Starts iterating at the first byte.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    /// Position of the batch within the input, its header, and its bytes.
    type Item = (usize, BatchHeader, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.pos..)?;
        let h = BatchHeader::parse(rest).ok()?;
        let batch = rest.get(..h.total_size())?;
        let at = self.pos;
        self.pos += h.total_size();
        Some((at, h, batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid uncompressed batch of `count` records with null keys and values.
    pub(crate) fn empty_batch(base: i64, count: i32) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_SIZE];
        for i in 0..count.max(0) {
            // attributes, timestamp delta 0, offset delta i, key null, value null, no headers
            let body = [0u8, 0, (i as u8) << 1, 1, 1, 0];
            b.push((body.len() as u8) << 1);
            b.extend_from_slice(&body);
        }
        b[0..8].copy_from_slice(&base.to_be_bytes());
        let length = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&length.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(count - 1).max(0).to_be_bytes());
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn forged_record_count_is_refused() {
        let mut b = empty_batch(0, 1);
        // Claims 2^31-1 records (offset delta to match, CRC recomputed) but carries one.
        b[23..27].copy_from_slice(&0x7fff_fffei32.to_be_bytes());
        b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(validate(&b), Err(BatchError::Inconsistent(_))));
        // And one whose record length runs past the batch.
        let mut c = empty_batch(0, 1);
        c[HEADER_SIZE] = 40 << 1;
        let crc = compute_crc(&c);
        c[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(validate(&c), Err(BatchError::Inconsistent(_))));
    }

    #[test]
    fn validate_and_patch() {
        let mut b = empty_batch(0, 3);
        let h = validate(&b).ok();
        assert_eq!(h.map(|h| h.last_offset_delta), Some(2));
        set_base_offset(&mut b, 42);
        set_partition_leader_epoch(&mut b, 7);
        let h = validate(&b).ok();
        assert_eq!(h.map(|h| (h.base_offset, h.last_offset())), Some((42, 44)));
        b[30] ^= 1;
        assert!(matches!(validate(&b), Err(BatchError::Crc { .. })));
    }

    #[test]
    fn split_rejects_partial() {
        let mut two = empty_batch(0, 1);
        two.extend(empty_batch(1, 1));
        assert_eq!(split_validated(&two).map(|v| v.len()), Ok(2));
        assert_eq!(BatchIter::new(&two[..100]).count(), 1);
        assert!(split_validated(&two[..100]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = split_validated(&data);
            let _ = BatchIter::new(&data).count();
            let _ = BatchHeader::parse(&data);
        }
    }
}

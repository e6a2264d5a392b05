//! Transaction markers: the control batches (COMMIT or ABORT) a transaction coordinator writes
//! into every partition of a transaction. One record each; its key is `version i16 = 0,
//! type i16` (0 abort, 1 commit) and its value `version i16 = 0, coordinator_epoch i32`.

use super::batch::{self, BatchHeader, ATTR_CONTROL, ATTR_TRANSACTIONAL, HEADER_SIZE};

/// What a transaction marker ends its transaction with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// The transaction's records are discarded by read_committed readers.
    Abort,
    /// The transaction's records become visible.
    Commit,
}

/// Encodes one control batch (base offset 0, to be re-offset on append) ending `producer_id`'s
/// transaction.
pub fn encode(
    marker: Marker,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let kind: i16 = match marker {
        Marker::Abort => 0,
        Marker::Commit => 1,
    };
    // Record body: attributes, timestampDelta 0, offsetDelta 0, key (4 bytes), value
    // (6 bytes), no headers; lengths are zigzag varints (2n for these small n).
    let mut record = vec![0u8, 0, 0, 8];
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&kind.to_be_bytes());
    record.push(12);
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&coordinator_epoch.to_be_bytes());
    record.push(0);
    let mut b = Vec::with_capacity(HEADER_SIZE + 1 + record.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    let batch_length = (HEADER_SIZE - batch::LOG_OVERHEAD + 1 + record.len()) as i32;
    b.extend_from_slice(&batch_length.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&(ATTR_TRANSACTIONAL | ATTR_CONTROL).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.push((record.len() as u8) << 1);
    b.extend_from_slice(&record);
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Reads a zigzag varint at `*pos`, advancing it; None when truncated or too long.
fn varint(b: &[u8], pos: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

/// The marker a control batch (`batch` holds the whole batch) carries; None when `batch` is
/// not a control batch or its record is malformed or of an unknown type.
pub fn marker_of(h: &BatchHeader, batch: &[u8]) -> Option<Marker> {
    if !h.is_control() || h.compression() != 0 || h.record_count < 1 {
        return None;
    }
    let mut pos = HEADER_SIZE;
    varint(batch, &mut pos)?; // record length
    pos += 1; // attributes
    varint(batch, &mut pos)?; // timestamp delta
    varint(batch, &mut pos)?; // offset delta
    let key_len = varint(batch, &mut pos)?;
    if key_len < 4 {
        return None;
    }
    let key = batch.get(pos..pos + 4)?;
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(Marker::Abort),
        1 => Some(Marker::Commit),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_valid_batch() {
        for m in [Marker::Abort, Marker::Commit] {
            let b = encode(m, 4000, 3, 7, 1_700_000_000_000);
            let h = batch::validate(&b).ok();
            let Some(h) = h else {
                panic!("marker batch does not validate");
            };
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.record_count),
                (4000, 3, 1)
            );
            assert_eq!(marker_of(&h, &b), Some(m));
        }
    }

    #[test]
    fn decodes_with_kafka_protocol() {
        let b = encode(Marker::Commit, 9, 1, 2, 5);
        let mut buf = bytes::Bytes::from(b);
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf);
        let Ok(sets) = sets else {
            panic!("kafka-protocol cannot decode the marker");
        };
        let r = &sets[0].records[0];
        assert!(r.control && r.transactional);
        assert_eq!(r.key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(r.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 2][..]));
    }

    #[test]
    fn garbage_is_not_a_marker() {
        let mut b = encode(Marker::Abort, 1, 0, 0, 0);
        b.truncate(HEADER_SIZE + 3);
        if let Ok(h) = BatchHeader::parse(&b) {
            assert_eq!(marker_of(&h, &b), None);
        }
    }
}

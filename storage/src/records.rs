//! Record-level views of stored batches, for the rare paths that need them (lookups by
//! timestamp). The produce and fetch paths never decode records.

use crate::error::{Result, StorageError};
use crate::log::TimestampOffset;
use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

/// Indexes (within their batch) of the data records in `batches` that have no key; control
/// records are not counted.
pub fn keyless_records(batches: &[u8]) -> Result<Vec<i32>> {
    let mut buf = Bytes::copy_from_slice(batches);
    let sets =
        RecordBatchDecoder::decode_all(&mut buf).map_err(|e| StorageError::InvalidRecords {
            message: format!("records cannot be decoded: {e}"),
            records: Vec::new(),
        })?;
    let mut out = Vec::new();
    for set in sets {
        for (i, r) in set.records.iter().enumerate() {
            if !r.control && r.key.is_none() {
                out.push(i as i32);
            }
        }
    }
    Ok(out)
}

/// Offsets and timestamps of every record in `batches` (decompressing as needed).
pub fn offsets_and_timestamps(mut batches: Bytes) -> Result<Vec<TimestampOffset>> {
    let sets = RecordBatchDecoder::decode_all(&mut batches)
        .map_err(|e| StorageError::CorruptMetadata("record batch".into(), e.to_string()))?;
    Ok(sets
        .into_iter()
        .flat_map(|s| s.records)
        .map(|r| TimestampOffset {
            offset: r.offset,
            timestamp: r.timestamp,
        })
        .collect())
}

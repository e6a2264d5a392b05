//! Record-level views of stored batches, for the rare paths that need them (lookups by
//! timestamp). The produce and fetch paths never decode records.

use crate::error::{Result, StorageError};
use crate::log::TimestampOffset;
use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

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

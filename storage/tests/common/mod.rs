//! Record batches for the storage tests, built with kafka-protocol's encoder.

#![allow(dead_code, unreachable_pub)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A record at `offset` of a batch (offsets and sequences relative to the batch).
pub fn record(offset: i64, ts: i64, key: Option<Bytes>, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        // kafka-protocol starts a new batch whenever offset - sequence changes.
        sequence: offset as i32,
        timestamp: ts,
        key,
        value,
        headers: Default::default(),
        delete_horizon: false,
    }
}

/// One v2 batch of `records`.
pub fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode test batch");
    buf.to_vec()
}

//! Bytes changed on disk after they were written are never served: reads check each batch's
//! CRC, return the intact batches before a corrupt one and fail when they start at it.

mod common;

use bytes::Bytes;
use codecs::kafka::batch::BatchError;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use storage::{LogConfig, PartitionLog, StorageError};

fn one(value: &str) -> Vec<u8> {
    common::encode(
        &[common::record(
            0,
            1_000,
            None,
            Some(Bytes::from(value.to_string())),
        )],
        Compression::None,
    )
}

#[test]
fn corrupt_batch_is_refused_and_the_ones_before_it_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), "t", 0, LogConfig::default()).expect("open");
    for v in ["first-value", "second-value", "third-value"] {
        log.append(&one(v)).expect("append");
    }
    let seg = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .expect("segment");
    let mut data = std::fs::read(&seg).expect("read");
    let at = data
        .windows(12)
        .position(|w| w == b"second-value")
        .expect("value on disk");
    data[at] = b'S';
    std::fs::write(&seg, &data).expect("write");

    let mut from0 = log.read(0, 1 << 20, true).expect("read from 0");
    let sets = RecordBatchDecoder::decode_all(&mut from0).expect("decode");
    let got: Vec<(i64, Option<Bytes>)> = sets
        .into_iter()
        .flat_map(|s| s.records)
        .map(|r| (r.offset, r.value))
        .collect();
    assert_eq!(got, vec![(0, Some(Bytes::from_static(b"first-value")))]);
    assert!(matches!(
        log.read(1, 1 << 20, true),
        Err(StorageError::CorruptBatch(BatchError::Crc { .. }))
    ));
    // The batch after it is intact and served when asked for.
    let mut from2 = log.read(2, 1 << 20, true).expect("read from 2");
    let sets = RecordBatchDecoder::decode_all(&mut from2).expect("decode");
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].records[0].offset, 2);
}

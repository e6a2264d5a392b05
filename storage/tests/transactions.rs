//! Transactions in a partition log: the last stable offset follows the oldest open
//! transaction, aborted transactions are listed for the ranges readers fetch and dropped by
//! `read_visible`, a marker with a newer epoch fences the older one, everything is rebuilt on
//! reopen, and the cleaner never lets an aborted record stand for its key, drops aborted
//! records and markers whose transactions have no records left, and stops at the last stable
//! offset.

mod common;

use bytes::Bytes;
use codecs::kafka::control::Marker;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use storage::{AbortedTxn, LogConfig, PartitionLog, StorageError};

const TS: i64 = 1_000_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A transactional batch of `pid`/`epoch` starting at sequence `seq`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, kvs: &[(&str, &str)]) -> Vec<u8> {
    let records: Vec<Record> = kvs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let mut r = common::record(
                i as i64,
                TS,
                Some(Bytes::from(k.to_string())),
                Some(Bytes::from(v.to_string())),
            );
            r.transactional = true;
            r.producer_id = pid;
            r.producer_epoch = epoch;
            r.sequence = seq + i as i32;
            r
        })
        .collect();
    common::encode(&records, Compression::None)
}

fn plain(kvs: &[(&str, &str)]) -> Vec<u8> {
    let records: Vec<Record> = kvs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            common::record(
                i as i64,
                TS,
                Some(Bytes::from(k.to_string())),
                Some(Bytes::from(v.to_string())),
            )
        })
        .collect();
    common::encode(&records, Compression::None)
}

/// (offset, value) of every data record a visible read returns from `from`.
fn visible(log: &PartitionLog, from: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.last_stable_offset() {
        let (bytes, examined) = log.read_visible(next, 1 << 20, true).expect("read");
        assert!(examined > next, "no progress at {next}");
        let mut b = bytes;
        for set in RecordBatchDecoder::decode_all(&mut b).expect("decode") {
            for r in set
                .records
                .into_iter()
                .filter(|r| !r.control && r.offset >= next)
            {
                let v = String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned();
                out.push((r.offset, v));
            }
        }
        next = examined;
    }
    out
}

#[test]
fn last_stable_offset_aborted_list_fencing_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig::default();
    {
        let log = PartitionLog::open(dir.path(), "t", 0, config.clone()).expect("open");
        log.append(&txn_batch(7, 0, 0, &[("a", "c0"), ("a", "c1")]))
            .expect("append");
        assert_eq!(log.last_stable_offset(), 0);
        log.append(&plain(&[("p", "plain")])).expect("append");
        log.append(&txn_batch(8, 0, 0, &[("b", "x0")]))
            .expect("append");
        assert_eq!((log.high_watermark(), log.last_stable_offset()), (4, 0));
        log.append_marker(7, 0, Marker::Commit, 0).expect("commit");
        // p7 committed at 4; p8 still open from 3.
        assert_eq!(log.last_stable_offset(), 3);
        log.append_marker(8, 1, Marker::Abort, 0).expect("abort");
        assert_eq!(log.last_stable_offset(), 6);
        // The newer epoch of the ABORT marker fences producer 8's epoch 0.
        let fenced = log.append(&txn_batch(8, 0, 1, &[("b", "zombie")]));
        assert!(matches!(
            fenced,
            Err(StorageError::InvalidProducerEpoch {
                current: 1,
                got: 0,
                ..
            })
        ));
        assert_eq!(
            log.aborted_between(0, 6),
            vec![AbortedTxn {
                producer_id: 8,
                first_offset: 3,
                last_offset: 5
            }]
        );
        assert_eq!(log.aborted_between(6, 10), vec![]);
        assert_eq!(
            visible(&log, 0),
            vec![(0, "c0".into()), (1, "c1".into()), (2, "plain".into())]
        );
        // A new transaction of producer 7 stays hidden until it is decided.
        log.append(&txn_batch(7, 0, 2, &[("a", "open")]))
            .expect("append");
        assert_eq!(log.last_stable_offset(), 6);
    }
    let log = PartitionLog::open(dir.path(), "t", 0, config).expect("reopen");
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (7, 6));
    assert_eq!(
        log.aborted_between(0, 7),
        vec![AbortedTxn {
            producer_id: 8,
            first_offset: 3,
            last_offset: 5
        }]
    );
    let producers = log.producers();
    let p7 = producers
        .iter()
        .find(|p| p.producer_id == 7)
        .expect("producer 7");
    assert_eq!(p7.txn_start_offset, 6);
    log.append_marker(7, 0, Marker::Commit, 0).expect("commit");
    assert_eq!(log.last_stable_offset(), 8);
    assert_eq!(
        visible(&log, 0),
        vec![
            (0, "c0".into()),
            (1, "c1".into()),
            (2, "plain".into()),
            (6, "open".into())
        ]
    );
}

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1, // every append rolls
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag_ms: 0,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

/// offset -> value of every data record a plain read returns, markers as "<marker>".
fn everything(log: &PartitionLog) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.high_watermark() {
        let bytes = log.read(next, 1 << 20, true).expect("read");
        let mut last = next;
        let mut b = bytes;
        for set in RecordBatchDecoder::decode_all(&mut b).expect("decode") {
            for r in set.records {
                last = last.max(r.offset);
                if r.offset < next {
                    continue;
                }
                let v = if r.control {
                    "<marker>".to_string()
                } else {
                    String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned()
                };
                out.push((r.offset, v));
            }
        }
        next = last + 1;
    }
    out
}

#[test]
fn cleaner_drops_aborted_records_and_spent_markers_and_stops_at_the_lso() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), "t", 0, compact_config()).expect("open");
    log.append(&plain(&[("k", "v1")])).expect("append"); // 0
    log.append(&txn_batch(7, 0, 0, &[("k", "aborted")]))
        .expect("append"); // 1
    log.append_marker(7, 0, Marker::Abort, 0).expect("abort"); // 2
    log.append(&txn_batch(7, 0, 1, &[("j", "committed")]))
        .expect("append"); // 3
    log.append_marker(7, 0, Marker::Commit, 0).expect("commit"); // 4
    log.append(&txn_batch(9, 0, 0, &[("k", "open")]))
        .expect("append"); // 5 (open)
    log.append(&plain(&[("k", "v2")])).expect("append"); // 6
    log.append(&plain(&[("z", "active")])).expect("append"); // 7, the active segment
    assert_eq!(log.last_stable_offset(), 5);
    // Markers carry the wall clock; now they are recent: the ABORT marker stays this time.
    let now = now_ms();
    let stats = log
        .clean(now, f64::INFINITY)
        .expect("clean")
        .expect("a pass");
    assert_eq!(stats.records_removed, 1);
    assert_eq!(
        everything(&log),
        vec![
            (0, "v1".into()),
            (2, "<marker>".into()),
            (3, "committed".into()),
            (4, "<marker>".into()),
            (5, "open".into()),
            (6, "v2".into()),
            (7, "active".into())
        ]
    );
    // The open transaction decided; everything is older than delete.retention.ms.
    log.append_marker(9, 0, Marker::Commit, 0).expect("commit"); // 8
    log.append(&plain(&[("z", "active2")])).expect("append"); // 9
    let stats = log
        .clean(now_ms() + 10_000, f64::INFINITY)
        .expect("clean")
        .expect("a pass");
    assert_eq!(stats.records_removed, 4, "{stats:?}");
    // k: v1 and "open" (committed at 8) superseded by v2; the ABORT marker at 2 and the
    // COMMIT marker at 8 end transactions with no record left; the COMMIT marker at 4 stays
    // with the record it commits.
    let expected: Vec<(i64, String)> = vec![
        (3, "committed".into()),
        (4, "<marker>".into()),
        (6, "v2".into()),
        (7, "active".into()),
        (9, "active2".into()),
    ];
    assert_eq!(everything(&log), expected);
    assert_eq!(log.last_stable_offset(), 10);
    // Rebuilt from the cleaned log: no transaction looks open.
    drop(log);
    let log = PartitionLog::open(dir.path(), "t", 0, compact_config()).expect("reopen");
    assert_eq!(log.last_stable_offset(), 10);
    assert_eq!(everything(&log), expected);
}

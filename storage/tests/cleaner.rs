//! The log cleaner: after a pass, a compacted log holds exactly the last record of every key
//! of its closed segments (tombstones past `delete.retention.ms` dropped) at their original
//! offsets, plus the untouched active segment; readers walk across the gaps; the result
//! survives reopening, and a pass a crash interrupted (its work directory left behind) is
//! discarded on open.

mod common;

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use proptest::prelude::*;
use std::collections::BTreeMap;
use storage::{LogConfig, PartitionLog};

type Rec = (Vec<u8>, Option<Vec<u8>>);

fn batch(records: &[Rec], ts: i64, compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            common::record(
                i as i64,
                ts,
                Some(Bytes::from(k.clone())),
                v.clone().map(Bytes::from),
            )
        })
        .collect();
    common::encode(&records, compression)
}

fn config() -> LogConfig {
    LogConfig {
        // Every append rolls: each batch is its own segment, the last one is active.
        segment_bytes: 1,
        index_interval_bytes: 64,
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag_ms: 0,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

/// offset -> (key, value) of every record readable from the start.
fn read_all(log: &PartitionLog) -> BTreeMap<i64, Rec> {
    let mut out = BTreeMap::new();
    let mut next = log.log_start_offset();
    while next < log.high_watermark() {
        let bytes = log.read(next, 1 << 20, true).expect("read");
        assert!(!bytes.is_empty(), "no progress at offset {next}");
        let mut b = bytes.clone();
        let mut last = next;
        for set in RecordBatchDecoder::decode_all(&mut b).expect("decode") {
            for r in set.records {
                last = last.max(r.offset);
                if r.offset >= next {
                    let k = r.key.map(|k| k.to_vec()).unwrap_or_default();
                    out.insert(r.offset, (k, r.value.map(|v| v.to_vec())));
                }
            }
        }
        next = last + 1;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn cleaning_keeps_the_last_record_per_key(
        batches in prop::collection::vec(
            prop::collection::vec((0u8..6, prop::option::weighted(0.8, any::<u8>())), 1..5), 2..25),
        old_tombstones in any::<bool>(),
        lz4 in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let compression = if lz4 { Compression::Lz4 } else { Compression::None };
        let ts = 1_000_000;
        // Tombstones are dropped when older than delete.retention.ms (1 s) at cleaning time.
        let now = if old_tombstones { ts + 10_000 } else { ts + 500 };
        let mut all: Vec<(i64, Rec, bool)> = Vec::new(); // (offset, record, in the active segment)
        {
            let log = PartitionLog::open(dir.path(), "t", 0, config()).expect("open");
            let mut next = 0i64;
            for (i, b) in batches.iter().enumerate() {
                let recs: Vec<Rec> =
                    b.iter().map(|(k, v)| (vec![b'k', *k], v.map(|v| vec![v]))).collect();
                let r = log.append(&batch(&recs, ts, compression)).expect("append");
                prop_assert_eq!(r.base_offset, next);
                for rec in recs {
                    all.push((next, rec, i == batches.len() - 1));
                    next += 1;
                }
            }
            let stats = log.clean(now, f64::INFINITY).expect("clean");
            prop_assert!(stats.is_some());
        }
        // The model: the active segment as it is; from the closed ones, the last record of
        // each key, unless it is an expired tombstone.
        let mut last: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for (o, (k, _), active) in &all {
            if !active {
                last.insert(k.clone(), *o);
            }
        }
        let want: BTreeMap<i64, Rec> = all
            .iter()
            .filter(|(o, (k, v), active)| {
                *active || (last.get(k) == Some(o) && (v.is_some() || !old_tombstones))
            })
            .map(|(o, r, _)| (*o, r.clone()))
            .collect();
        // A crashed pass left its work directory: dropped on open.
        std::fs::create_dir_all(dir.path().join("cleaning")).expect("mkdir");
        std::fs::write(dir.path().join("cleaning").join("00000000000000000000.log"), b"junk")
            .expect("write");
        let log = PartitionLog::open(dir.path(), "t", 0, config()).expect("reopen");
        prop_assert!(!dir.path().join("cleaning").exists());
        prop_assert_eq!(read_all(&log), want);
        // Appends go on at the same log end.
        let r = log.append(&batch(&[(b"k9".to_vec(), Some(b"x".to_vec()))], ts, compression))
            .expect("append");
        prop_assert_eq!(r.base_offset, all.len() as i64);
    }
}

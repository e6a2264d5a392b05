//! Property tests of the partition log: what is appended is read back exactly, across segment
//! rolls, reopen (recovery) and a torn tail; and a process killed with SIGKILL mid-write loses
//! nothing it acknowledged.

mod common;

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use storage::{LogConfig, PartitionLog};

fn batch(values: &[Vec<u8>], ts: i64, compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            common::record(
                i as i64,
                ts + i as i64,
                Some(Bytes::from(format!("k{i}"))),
                Some(Bytes::from(v.clone())),
            )
        })
        .collect();
    common::encode(&records, compression)
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// Reads every record from `from` to the end: offset -> (value, timestamp).
fn read_all(log: &PartitionLog, from: i64) -> BTreeMap<i64, (Vec<u8>, i64)> {
    let mut out = BTreeMap::new();
    let mut next = from;
    while next < log.high_watermark() {
        let bytes = log.read(next, 1000, true).expect("read");
        assert!(!bytes.is_empty(), "no progress at offset {next}");
        let mut b = bytes.clone();
        for set in RecordBatchDecoder::decode_all(&mut b).expect("decode") {
            for r in set.records {
                if r.offset >= next {
                    out.insert(
                        r.offset,
                        (r.value.map(|v| v.to_vec()).unwrap_or_default(), r.timestamp),
                    );
                }
            }
        }
        next = *out.keys().next_back().expect("some record") + 1;
    }
    out
}

fn open(dir: &Path, segment_bytes: u64) -> PartitionLog {
    PartitionLog::open(dir, "t", 0, config(segment_bytes)).expect("open log")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn append_read_reopen(
        batches in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 1..6), 1..40),
        segment_bytes in 300u64..4000,
        gzip in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut expected = BTreeMap::new();
        let compression = if gzip { Compression::Gzip } else { Compression::None };
        {
            let log = open(dir.path(), segment_bytes);
            let mut next = 0i64;
            for (i, values) in batches.iter().enumerate() {
                let ts = 1_000_000 + (i as i64) * 10;
                let r = log.append(&batch(values, ts, compression)).expect("append");
                prop_assert_eq!(r.base_offset, next);
                prop_assert_eq!(r.last_offset, next + values.len() as i64 - 1);
                for (j, v) in values.iter().enumerate() {
                    expected.insert(next + j as i64, (v.clone(), ts + j as i64));
                }
                next += values.len() as i64;
            }
            prop_assert_eq!(log.log_end_offset(), next);
            prop_assert_eq!(&read_all(&log, 0), &expected);
            // Reading from the middle of a batch returns that batch; records before the
            // requested offset are skipped by the reader, as Kafka consumers do.
            let mid = next / 2;
            let tail: BTreeMap<_, _> = expected.range(mid..).map(|(k, v)| (*k, v.clone())).collect();
            prop_assert_eq!(read_all(&log, mid), tail);
            // Timestamp lookup finds the first record at or after the time.
            let (probe_off, (_, probe_ts)) = expected.iter().nth(expected.len() / 3).expect("probe");
            let found = log.offset_for_timestamp(*probe_ts).expect("lookup").expect("some");
            prop_assert_eq!(found.offset, *probe_off);
            log.close().expect("close");
        }
        let log = open(dir.path(), segment_bytes);
        prop_assert_eq!(log.log_end_offset(), expected.len() as i64);
        prop_assert_eq!(read_all(&log, 0), expected);
    }

    #[test]
    fn torn_tail_is_truncated(
        sizes in prop::collection::vec(1usize..5, 2..12),
        cut in 1usize..60,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ends = Vec::new();
        {
            let log = open(dir.path(), 1 << 20);
            for (i, n) in sizes.iter().enumerate() {
                let values: Vec<Vec<u8>> = (0..*n).map(|j| vec![i as u8; j + 10]).collect();
                let r = log.append(&batch(&values, 5, Compression::None)).expect("append");
                ends.push(r.last_offset + 1);
            }
        }
        // Cut into the last batch: it must disappear, everything before it must stay.
        let seg = dir.path().join(format!("{:020}.log", 0));
        let len = std::fs::metadata(&seg).expect("meta").len();
        let f = std::fs::OpenOptions::new().write(true).open(&seg).expect("open seg");
        f.set_len(len - cut as u64).expect("truncate");
        let log = open(dir.path(), 1 << 20);
        let survivors = ends[ends.len() - 2];
        prop_assert_eq!(log.log_end_offset(), survivors);
        prop_assert_eq!(read_all(&log, 0).len() as i64, survivors);
        // The log keeps working after recovery.
        let r = log.append(&batch(&[b"after".to_vec()], 9, Compression::None)).expect("append");
        prop_assert_eq!(r.base_offset, survivors);
    }
}

#[test]
fn corrupt_byte_in_tail_truncates_from_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sizes = Vec::new();
    {
        let log = open(dir.path(), 1 << 20);
        for i in 0..5u8 {
            let b = batch(&[vec![i; 50]], 1, Compression::None);
            sizes.push(b.len());
            log.append(&b).expect("append");
        }
    }
    let seg = dir.path().join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&seg).expect("read");
    let third_start: usize = sizes[..3].iter().sum();
    bytes[third_start + 70] ^= 0xff; // inside batch 3's records: CRC must catch it
    std::fs::write(&seg, &bytes).expect("write");
    let log = open(dir.path(), 1 << 20);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(read_all(&log, 0).len(), 3);
}

#[test]
fn retention_and_delete_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), 400);
    for i in 0..20i64 {
        log.append(&batch(&[vec![1; 100]], 1_000 + i, Compression::None))
            .expect("append");
    }
    assert!(log.segment_count() > 3);
    assert_eq!(log.delete_records_before(7).expect("delete"), 7);
    assert!(matches!(
        log.read(6, 100, true),
        Err(storage::StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, 7).len(), 13);
    log.set_config(LogConfig {
        retention_bytes: 500,
        ..config(400)
    });
    log.enforce_retention(2_000).expect("retention");
    assert!(log.size_bytes() <= 500 + 400);
    let start = log.log_start_offset();
    assert!(start > 7);
    assert_eq!(read_all(&log, start).len() as i64, 20 - start);
    log.set_config(LogConfig {
        retention_ms: 10,
        ..config(400)
    });
    log.enforce_retention(1_000_000).expect("retention");
    assert_eq!(log.log_start_offset(), 20);
    assert_eq!(log.log_end_offset(), 20);
    drop(log);
    let log = open(dir.path(), 400);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (20, 20));
}

const CHILD_ENV: &str = "STORAGE_KILL_TEST_DIR";

/// Child half of `sigkill_loses_nothing_acknowledged`: appends until killed, printing each
/// acknowledged offset range after `append` returns.
#[test]
fn kill_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only meaningful when spawned by the parent test
    };
    let log = open(Path::new(&dir), 64 * 1024);
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let values: Vec<Vec<u8>> = (0..3).map(|j| format!("m{i}-{j}").into_bytes()).collect();
        let r = log
            .append(&batch(&values, i as i64, Compression::None))
            .expect("append");
        writeln!(out, "ACK {} {} {}", i, r.base_offset, r.last_offset).expect("stdout");
        out.flush().expect("flush");
    }
}

#[test]
fn sigkill_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("exe");
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "kill_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        let Some(rest) = line.strip_prefix("ACK ") else {
            continue;
        };
        let f: Vec<i64> = rest.split(' ').map(|x| x.parse().expect("num")).collect();
        acked.push((f[0], f[1], f[2]));
        if acked.len() == 3000 {
            nix_kill(child.id());
            break;
        }
    }
    let _ = child.wait();
    assert_eq!(acked.len(), 3000);
    let log = open(dir.path(), 64 * 1024);
    let all = read_all(&log, 0);
    for (i, base, last) in acked {
        for (j, off) in (base..=last).enumerate() {
            let (v, _) = all
                .get(&off)
                .unwrap_or_else(|| panic!("acked offset {off} lost"));
            assert_eq!(v, format!("m{i}-{j}").as_bytes());
        }
    }
}

fn nix_kill(pid: u32) {
    // SAFETY-free: use the kill command rather than libc.
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn key_index_finds_keys_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = open(dir.path(), 1 << 20);
        // batch() keys records k0, k1, ... within each batch.
        log.append(&batch(
            &[b"a".to_vec(), b"b".to_vec()],
            1,
            Compression::None,
        ))
        .expect("append");
        log.append(&batch(&[b"c".to_vec()], 2, Compression::Gzip))
            .expect("append");
        let idx = log.key_index().expect("index");
        assert_eq!(idx.lookup(b"k0"), vec![0, 2]);
        assert_eq!(idx.lookup(b"k1"), vec![1]);
        assert!(idx.lookup(b"nope").is_empty());
        assert_eq!(idx.indexed_to(), 3);
    }
    let log = open(dir.path(), 1 << 20);
    log.append(&batch(
        &[b"d".to_vec(), b"e".to_vec()],
        3,
        Compression::None,
    ))
    .expect("append");
    let idx = log.key_index().expect("index");
    assert_eq!(idx.lookup(b"k0"), vec![0, 2, 3]);
    assert_eq!(idx.lookup(b"k1"), vec![1, 4]);
    assert_eq!(idx.indexed_to(), 5);
}

/// Index entries are written behind; a crash may lose the files' tail (or all of them). The
/// log reopens with lookups by offset and by time as exact as before, and the rebuilt index
/// files are complete again.
#[test]
fn lost_index_tail_is_rebuilt_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("t-0");
    let mut expect = BTreeMap::new();
    {
        let log = open(&p, 1 << 20);
        for i in 0..200i64 {
            let v = vec![b'x'; 100];
            let r = log
                .append(&Bytes::from(batch(
                    std::slice::from_ref(&v),
                    1_000 + i * 10,
                    Compression::None,
                )))
                .expect("append");
            expect.insert(r.base_offset, (v, 1_000 + i * 10));
        }
        log.flush().expect("flush");
    }
    let index_files: Vec<_> = std::fs::read_dir(&p)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| {
            f.extension()
                .is_some_and(|x| x == "index" || x == "timeindex")
        })
        .collect();
    assert_eq!(index_files.len(), 2, "{index_files:?}");
    let full: Vec<u64> = index_files
        .iter()
        .map(|f| std::fs::metadata(f).expect("meta").len())
        .collect();
    assert!(full.iter().all(|l| *l > 24), "indexes written: {full:?}");
    // Keep only the first entries of each file, as if the buffered tail died with the process.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&index_files[0])
        .expect("open")
        .set_len(24)
        .expect("cut");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&index_files[1])
        .expect("open")
        .set_len(24)
        .expect("cut");
    let log = open(&p, 1 << 20);
    assert_eq!(read_all(&log, 0), expect);
    for (off, (_, ts)) in &expect {
        let found = log
            .offset_for_timestamp(*ts)
            .expect("lookup")
            .expect("some");
        assert_eq!(found.offset, *off, "timestamp {ts}");
    }
    drop(log);
    let rebuilt: Vec<u64> = index_files
        .iter()
        .map(|f| std::fs::metadata(f).expect("meta").len())
        .collect();
    // The time index is complete again; the offset index is rebuilt at the recovery interval
    // (4 KiB), so it covers the whole log with fewer entries than the 256-byte test interval.
    assert_eq!(rebuilt[1], full[1], "time index rebuilt in full");
    assert!(rebuilt[0] > 24, "offset index rebuilt: {rebuilt:?}");
}

/// A batch of `n` records whose first offset is `base` (as a source cluster stored it).
fn batch_at(base: i64, n: usize, epoch: i32) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("v{}", base + i as i64).into_bytes())
        .collect();
    let mut b = batch(&values, 1_000, Compression::None);
    codecs::kafka::batch::set_base_offset(&mut b, base);
    codecs::kafka::batch::set_partition_leader_epoch(&mut b, epoch);
    b
}

#[test]
fn mirrored_appends_keep_source_offsets_across_gaps_and_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = open(dir.path(), 4096);
        // The source's log starts at 100 (retention deleted the rest): the mirror restarts there.
        log.reset_to(100).expect("reset");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
        assert_eq!(
            log.append_mirrored(&batch_at(100, 3, 2)).expect("append"),
            103
        );
        // A gap the source has (compaction): accepted, offsets kept.
        assert_eq!(
            log.append_mirrored(&batch_at(110, 2, 2)).expect("append"),
            112
        );
        // A repeated fetch of what is already here changes nothing.
        assert_eq!(
            log.append_mirrored(&batch_at(110, 2, 2)).expect("append"),
            112
        );
        // A replica append still refuses a gap.
        assert!(log.append_replica(&batch_at(120, 1, 2)).is_err());
        log.set_high_watermark(112);
        let got = read_all(&log, 100);
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            vec![100, 101, 102, 110, 111]
        );
        assert_eq!(got[&110].0, b"v110".to_vec());
        assert_eq!(log.end_offset_for_epoch(2), (2, 112));
        log.close().expect("close");
    }
    let log = open(dir.path(), 4096);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 112));
    assert_eq!(log.latest_epoch(), Some(2));
    assert_eq!(read_all(&log, 100).len(), 5);
}

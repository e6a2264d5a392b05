//! `bench cleaner`: the log cleaner's throughput on one compacted partition, in process (the
//! storage crate directly): writes `--size-mib` of records whose keys repeat (`--unique` of
//! them distinct), closes the segments, and times one cleaning pass.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::path::PathBuf;
use std::time::Instant;
use storage::{LogConfig, PartitionLog};

/// Cleaner workload options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// MiB of record values to write.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Share of the records whose key is distinct (0.1: every key written 10 times).
    #[arg(long, default_value_t = 0.1)]
    unique: f64,
    /// Records per batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Batch compression: none or lz4.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Parent directory of the (fresh, then removed) log directory.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn record(offset: i64, ts: i64, key: Bytes, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: offset as i32,
        timestamp: ts,
        key: Some(key),
        value,
        headers: Default::default(),
        delete_horizon: false,
    }
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    let compression = match a.compression.as_str() {
        "none" => Compression::None,
        "lz4" => Compression::Lz4,
        other => anyhow::bail!("unsupported compression {other}"),
    };
    let records = (a.size_mib << 20) / a.record_size.max(1) as u64;
    let keys = ((records as f64 * a.unique) as u64).max(1);
    let dir = a
        .dir
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("bench-cleaner-{}", std::process::id()));
    let config = LogConfig {
        segment_bytes: 256 << 20,
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag_ms: 0,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(&dir, "bench", 0, config.clone())?;
    let mut value = vec![0u8; a.record_size];
    let mut seed = 0x9e3779b97f4a7c15u64;
    let ts = now_ms();
    let started = Instant::now();
    let mut written = 0u64;
    while written < records {
        let n = (a.batch as u64).min(records - written);
        let batch: Vec<Record> = (0..n)
            .map(|i| {
                for b in value.iter_mut() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *b = seed as u8;
                }
                // Keys spread over the log rather than in runs.
                let k = (written + i).wrapping_mul(2_654_435_761) % keys;
                record(
                    i as i64,
                    ts,
                    Bytes::from(format!("key-{k:010}")),
                    Some(Bytes::copy_from_slice(&value)),
                )
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &batch,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )?;
        log.append(&buf)?;
        written += n;
    }
    // Close the last data segment: everything written is cleanable.
    log.set_config(LogConfig {
        segment_bytes: 1,
        ..config
    });
    let mut marker = BytesMut::new();
    let m = record(0, ts, Bytes::from_static(b"marker"), None);
    RecordBatchEncoder::encode(
        &mut marker,
        [&m],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    log.append(&marker)?;
    log.flush()?;
    let size = log.size_bytes();
    println!(
        "cleaner: {records} records ({keys} keys) x {} B, {:.0} MiB in {} segments, written in {:.1} s",
        a.record_size,
        size as f64 / (1 << 20) as f64,
        log.segment_count(),
        started.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let stats = log
        .clean(now_ms() + 1, f64::INFINITY)?
        .ok_or_else(|| anyhow::anyhow!("the cleaner found nothing to do"))?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "clean: {:.1} MB/s read ({:.0} MB read, {:.0} MB written, {} records removed, {} segments) in {:.2} s",
        stats.bytes_read as f64 / 1e6 / secs,
        stats.bytes_read as f64 / 1e6,
        stats.bytes_written as f64 / 1e6,
        stats.records_removed,
        stats.segments,
        secs
    );
    drop(log);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

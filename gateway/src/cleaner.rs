//! The log cleaner's schedule: every `log.cleaner.backoff.ms`, one pass over the compacted
//! partitions (the work itself is `storage::cleaner`), with its metrics.

use std::sync::Arc;
use std::time::Duration;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs until the process ends.
pub(crate) async fn run(store: Arc<storage::Store>, every: Duration, io_bytes_per_sec: f64) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = store.clone();
        let Ok(done) =
            tokio::task::spawn_blocking(move || s.clean(now_ms(), io_bytes_per_sec)).await
        else {
            continue;
        };
        for (topic, partition, st) in done {
            let labels = [
                ("topic", topic.clone()),
                ("partition", partition.to_string()),
            ];
            metrics::counter!("log_cleaner_bytes_read_total", &labels).increment(st.bytes_read);
            metrics::counter!("log_cleaner_bytes_written_total", &labels)
                .increment(st.bytes_written);
            metrics::counter!("log_cleaner_records_removed_total", &labels)
                .increment(st.records_removed);
            metrics::gauge!("log_cleaner_last_run_timestamp_seconds", &labels)
                .set(now_ms() as f64 / 1000.0);
        }
        for t in store.topics() {
            for p in t.partitions.iter().filter(|p| p.config().compact) {
                metrics::gauge!("log_cleaner_dirty_ratio", "topic" => t.meta.name.clone(), "partition" => p.partition().to_string())
                    .set(p.dirty_ratio());
            }
        }
    }
}

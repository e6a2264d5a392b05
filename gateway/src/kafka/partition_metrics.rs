//! Periodic gauges: partition log size and offsets, and consumer-group lag.

use crate::broker::Broker;

/// Publishes partition and group gauges (called from the maintenance loop).
pub(crate) fn record(broker: &Broker) {
    let store = &broker.store;
    for t in store.topics() {
        for p in &t.partitions {
            let labels = [
                ("topic", t.meta.name.clone()),
                ("partition", p.partition().to_string()),
            ];
            metrics::gauge!("partition_log_size_bytes", &labels).set(p.size_bytes() as f64);
            metrics::gauge!("partition_log_end_offset", &labels).set(p.log_end_offset() as f64);
            metrics::gauge!("partition_log_start_offset", &labels).set(p.log_start_offset() as f64);
            metrics::gauge!("partition_high_watermark", &labels).set(p.high_watermark() as f64);
        }
    }
    let offsets = store.offsets();
    for g in offsets.groups() {
        for (topic, partition, c) in offsets.group(&g) {
            if let Ok(log) = store.partition(&topic, partition) {
                let lag = (log.high_watermark() - c.offset).max(0);
                metrics::gauge!(
                    "consumer_group_lag",
                    "group" => g.clone(),
                    "topic" => topic.clone(),
                    "partition" => partition.to_string()
                )
                .set(lag as f64);
            }
        }
    }
}

//! Per-topic log configuration, with Kafka's topic-level names, broker-level names and
//! defaults. A topic's effective value is its own override, else the broker's setting, else
//! the default listed here.

use crate::error::{Result, StorageError};
use std::collections::BTreeMap;

/// The type of a config value, as Kafka's DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true` / `false`.
    Boolean,
    /// 32-bit integer.
    Int,
    /// 64-bit integer.
    Long,
    /// Floating point number.
    Double,
    /// Free text.
    String,
    /// Comma-separated list.
    List,
}

/// One topic-level config key.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    /// Topic-level name, e.g. `retention.ms`.
    pub name: &'static str,
    /// Broker-level name that supplies the default, e.g. `log.retention.ms`.
    pub broker_name: &'static str,
    /// Default when neither topic nor broker sets it.
    pub default: &'static str,
    /// Value type.
    pub kind: ConfigType,
}

const fn def(
    name: &'static str,
    broker_name: &'static str,
    default: &'static str,
    kind: ConfigType,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_name,
        default,
        kind,
    }
}

/// Every topic-level config key the server accepts, in Kafka's alphabetical order.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def(
        "cleanup.policy",
        "log.cleanup.policy",
        "delete",
        ConfigType::List,
    ),
    def(
        "compression.type",
        "compression.type",
        "producer",
        ConfigType::String,
    ),
    def(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        "86400000",
        ConfigType::Long,
    ),
    def(
        "file.delete.delay.ms",
        "log.segment.delete.delay.ms",
        "60000",
        ConfigType::Long,
    ),
    def(
        "flush.messages",
        "log.flush.interval.messages",
        "9223372036854775807",
        ConfigType::Long,
    ),
    def(
        "flush.ms",
        "log.flush.interval.ms",
        "9223372036854775807",
        ConfigType::Long,
    ),
    def(
        "follower.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
        "",
        ConfigType::List,
    ),
    def(
        "index.interval.bytes",
        "log.index.interval.bytes",
        "4096",
        ConfigType::Int,
    ),
    def(
        "leader.replication.throttled.replicas",
        "leader.replication.throttled.replicas",
        "",
        ConfigType::List,
    ),
    def(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        "9223372036854775807",
        ConfigType::Long,
    ),
    def(
        "max.message.bytes",
        "message.max.bytes",
        "1048588",
        ConfigType::Int,
    ),
    // Deprecated in Kafka 3.x: accepted and ignored (every batch is v2), as Kafka 3.x does.
    def(
        "message.format.version",
        "log.message.format.version",
        "3.0-IV1",
        ConfigType::String,
    ),
    def(
        "message.timestamp.type",
        "log.message.timestamp.type",
        "CreateTime",
        ConfigType::String,
    ),
    def(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        "0.5",
        ConfigType::Double,
    ),
    def(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        "0",
        ConfigType::Long,
    ),
    def(
        "min.insync.replicas",
        "min.insync.replicas",
        "1",
        ConfigType::Int,
    ),
    // Not a Kafka key: how RocketMQ sends to this topic are acknowledged in a cluster
    // (leader = async master, isr = sync master, quorum = DLedger majority).
    def(
        "replication.policy",
        "replication.policy",
        "leader",
        ConfigType::String,
    ),
    def(
        "preallocate",
        "log.preallocate",
        "false",
        ConfigType::Boolean,
    ),
    def(
        "retention.bytes",
        "log.retention.bytes",
        "-1",
        ConfigType::Long,
    ),
    def(
        "retention.ms",
        "log.retention.ms",
        "604800000",
        ConfigType::Long,
    ),
    def(
        "segment.bytes",
        "log.segment.bytes",
        "1073741824",
        ConfigType::Int,
    ),
    def(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        "10485760",
        ConfigType::Int,
    ),
    def(
        "segment.jitter.ms",
        "log.roll.jitter.ms",
        "0",
        ConfigType::Long,
    ),
    def("segment.ms", "log.roll.ms", "604800000", ConfigType::Long),
    def(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        "false",
        ConfigType::Boolean,
    ),
];

/// `*`, empty, or `partition:broker,...` with integers.
fn throttled_replicas_valid(value: &str) -> bool {
    let v = value.trim();
    v.is_empty()
        || v == "*"
        || v.split(',').all(|e| {
            let mut it = e.trim().splitn(2, ':');
            matches!(
                (
                    it.next().map(|p| p.trim().parse::<u32>()),
                    it.next().map(|b| b.trim().parse::<i32>())
                ),
                (Some(Ok(_)), Some(Ok(_)))
            )
        })
}

/// Looks up a topic-level config key.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks that `value` parses as the key's type and lies in its allowed range.
pub fn validate_topic_config(name: &str, value: &str) -> Result<()> {
    let d = topic_config_def(name)
        .ok_or_else(|| StorageError::InvalidConfig(format!("unknown topic config {name}")))?;
    let bad = |why: &str| StorageError::InvalidConfig(format!("{name}={value}: {why}"));
    match d.kind {
        ConfigType::Boolean => {
            value.parse::<bool>().map_err(|_| bad("not a boolean"))?;
        }
        ConfigType::Int => {
            let v = value.parse::<i32>().map_err(|_| bad("not an int"))?;
            if v < 0 && name != "retention.bytes" {
                return Err(bad("must not be negative"));
            }
            if name == "segment.bytes" && v < 14 {
                return Err(bad("must be at least 14"));
            }
        }
        ConfigType::Long => {
            let v = value.parse::<i64>().map_err(|_| bad("not a long"))?;
            if v < -1 {
                return Err(bad("must be -1 or more"));
            }
        }
        ConfigType::Double => {
            value.parse::<f64>().map_err(|_| bad("not a number"))?;
        }
        ConfigType::String | ConfigType::List => match name {
            "cleanup.policy" => {
                for p in value.split(',').map(str::trim) {
                    if p != "delete" && p != "compact" {
                        return Err(bad("expected delete and/or compact"));
                    }
                }
            }
            "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas"
                if !throttled_replicas_valid(value) =>
            {
                return Err(bad("expected * or a list of partition:broker"));
            }
            "replication.policy" if !["leader", "isr", "quorum"].contains(&value) => {
                return Err(bad("expected leader, isr or quorum"));
            }
            "message.timestamp.type" if value != "CreateTime" && value != "LogAppendTime" => {
                return Err(bad("expected CreateTime or LogAppendTime"));
            }
            "compression.type"
                if !["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]
                    .contains(&value) =>
            {
                return Err(bad("unknown compression type"));
            }
            _ => {}
        },
    }
    Ok(())
}

/// The settings a partition log acts on, resolved from topic overrides and broker defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Roll the active segment at this size (`segment.bytes`).
    pub segment_bytes: u64,
    /// Roll the active segment at this age (`segment.ms`).
    pub segment_ms: i64,
    /// Delete segments older than this; -1 keeps forever (`retention.ms`).
    pub retention_ms: i64,
    /// Delete oldest segments beyond this size; -1 is unlimited (`retention.bytes`).
    pub retention_bytes: i64,
    /// Bytes between sparse index entries (`index.interval.bytes`).
    pub index_interval_bytes: u64,
    /// Largest batch accepted (`max.message.bytes`).
    pub max_message_bytes: usize,
    /// fsync after this many unflushed messages; 1 means before every acknowledgement
    /// (`flush.messages`).
    pub flush_messages: i64,
    /// fsync when the oldest unflushed data is this old (`flush.ms`).
    pub flush_ms: i64,
    /// Stamp batches with the broker's clock (`message.timestamp.type=LogAppendTime`).
    pub log_append_time: bool,
    /// `cleanup.policy` contains `delete`.
    pub delete: bool,
    /// `cleanup.policy` contains `compact`.
    pub compact: bool,
    /// Clean once this share of the cleanable bytes is dirty (`min.cleanable.dirty.ratio`).
    pub min_cleanable_dirty_ratio: f64,
    /// Records younger than this are not compacted (`min.compaction.lag.ms`).
    pub min_compaction_lag_ms: i64,
    /// Dirty records older than this are compacted whatever the ratio
    /// (`max.compaction.lag.ms`).
    pub max_compaction_lag_ms: i64,
    /// Tombstones older than this are removed by the cleaner (`delete.retention.ms`).
    pub delete_retention_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        let empty = BTreeMap::new();
        Self::resolve(&empty, &|_| None)
    }
}

impl LogConfig {
    /// Resolves every key from the topic's overrides, then `broker(broker_name)`, then the
    /// default. Unparsable values fall back to the default (they are validated on write).
    pub fn resolve(
        topic: &BTreeMap<String, String>,
        broker: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        let get = |name: &str| -> String {
            let d = topic_config_def(name);
            topic
                .get(name)
                .cloned()
                .or_else(|| d.and_then(|d| broker(d.broker_name)))
                .or_else(|| d.map(|d| d.default.to_string()))
                .unwrap_or_default()
        };
        let num = |name: &str| -> i64 {
            get(name).parse::<i64>().unwrap_or_else(|_| {
                topic_config_def(name)
                    .and_then(|d| d.default.parse().ok())
                    .unwrap_or(0)
            })
        };
        let policy = get("cleanup.policy");
        Self {
            segment_bytes: num("segment.bytes").max(14) as u64,
            segment_ms: num("segment.ms"),
            retention_ms: num("retention.ms"),
            retention_bytes: num("retention.bytes"),
            index_interval_bytes: num("index.interval.bytes").max(0) as u64,
            max_message_bytes: num("max.message.bytes").max(0) as usize,
            flush_messages: num("flush.messages"),
            flush_ms: num("flush.ms"),
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
            delete: policy.split(',').any(|p| p.trim() == "delete"),
            compact: policy.split(',').any(|p| p.trim() == "compact"),
            min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
                .parse::<f64>()
                .unwrap_or(0.5),
            min_compaction_lag_ms: num("min.compaction.lag.ms"),
            max_compaction_lag_ms: num("max.compaction.lag.ms"),
            delete_retention_ms: num("delete.retention.ms"),
        }
    }

    /// Whether every append must be fsynced before it is acknowledged.
    pub fn sync_every_append(&self) -> bool {
        self.flush_messages <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_order() {
        let mut t = BTreeMap::new();
        t.insert("retention.ms".to_string(), "1000".to_string());
        let broker = |k: &str| (k == "log.segment.bytes").then(|| "2048".to_string());
        let c = LogConfig::resolve(&t, &broker);
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.segment_bytes, 2048);
        assert_eq!(c.max_message_bytes, 1048588);
        assert!(c.delete && !c.compact);
    }

    #[test]
    fn validation() {
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("retention.ms", "abc").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "nope").is_err());
        assert!(validate_topic_config("no.such", "1").is_err());
    }
}

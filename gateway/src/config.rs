//! Server configuration with Kafka's setting names. Sources, lowest precedence first:
//! built-in defaults, a TOML file (nested tables or dotted keys, flattened to `a.b.c`),
//! `--set key=value`, and the dedicated flags (`--data-dir`, `--kafka-addr`, ...).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file is not valid TOML.
    #[error("invalid TOML in {0}: {1}")]
    Toml(PathBuf, String),
    /// A `--set` argument without `=`.
    #[error("--set expects key=value, got {0:?}")]
    Set(String),
    /// A value of the wrong type.
    #[error("config {key}={value:?}: {why}")]
    Value {
        /// Setting name.
        key: String,
        /// Offending value.
        value: String,
        /// What was expected.
        why: &'static str,
    },
}

/// Built-in defaults: every key the server reads, with Kafka's default where Kafka has one.
/// DescribeConfigs reports these as DEFAULT_CONFIG.
pub(crate) const DEFAULTS: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("log.dirs", "./data"),
    ("num.partitions", "1"),
    // Replication throttles (bytes/s) for kafka-reassign-partitions.sh; unlimited by default.
    ("leader.replication.throttled.rate", "9223372036854775807"),
    ("follower.replication.throttled.rate", "9223372036854775807"),
    (
        "replica.alter.log.dirs.io.max.bytes.per.second",
        "9223372036854775807",
    ),
    ("default.replication.factor", "1"),
    ("auto.create.topics.enable", "true"),
    ("delete.topic.enable", "true"),
    ("log.retention.check.interval.ms", "300000"),
    // The log cleaner of compacted topics (Kafka's names and defaults).
    ("log.cleaner.enable", "true"),
    ("log.cleaner.backoff.ms", "15000"),
    ("transaction.max.timeout.ms", "900000"),
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "10000",
    ),
    (
        "log.cleaner.io.max.bytes.per.second",
        "1.7976931348623157E308",
    ),
    ("log.retention.hours", "168"),
    ("log.roll.hours", "168"),
    ("message.max.bytes", "1048588"),
    ("socket.request.max.bytes", "104857600"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("group.max.size", "2147483647"),
    ("max.incremental.fetch.session.cache.slots", "1000"),
    ("offsets.retention.minutes", "10080"),
    ("kafka.listen", "0.0.0.0:9092"),
    ("rocketmq.namesrv.listen", "0.0.0.0:9876"),
    ("rocketmq.broker.listen", "0.0.0.0:10911"),
    ("metrics.listen", "0.0.0.0:9464"),
    ("broker.rack", ""),
    ("rocketmq.cluster.name", "DefaultCluster"),
    ("rocketmq.broker.name", ""),
    ("rocketmq.broker.advertised", ""),
    // Cluster only: a second RocketMQ broker listener through which this node serves a dead
    // broker's queues (empty: this node never stands in).
    ("rocketmq.standby.listen", ""),
    ("rocketmq.auto.create.topic.enable", "true"),
    ("rocketmq.max.frame.bytes", "16777216"),
    ("rocketmq.transaction.check.interval.ms", "60000"),
    ("rocketmq.transaction.timeout.ms", "6000"),
    (
        "messageDelayLevel",
        "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h",
    ),
    ("advertised.listeners", ""),
    // Cluster mode (empty voters: the single-node default).
    ("controller.quorum.voters", ""),
    ("controller.listen", ""),
    // Metadata quorum: a follower campaigns after 3-4x this without a leader (openraft's
    // leader lease of 2x, then a random 1-2x); the quorum leader heartbeats every quarter.
    ("controller.quorum.election.timeout.ms", "250"),
    ("broker.heartbeat.interval.ms", "500"),
    // SIGTERM first moves this node's leadership away (Kafka's controlled shutdown).
    ("controlled.shutdown.enable", "true"),
    ("broker.session.timeout.ms", "9000"),
    ("replica.lag.time.max.ms", "30000"),
    ("auto.leader.rebalance.enable", "true"),
    ("leader.imbalance.check.interval.seconds", "300"),
    // Listeners and security (Kafka's names; see docs/security.md).
    ("listeners", ""),
    ("listener.security.protocol.map", ""),
    ("inter.broker.listener.name", ""),
    (
        "sasl.enabled.mechanisms",
        "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
    ),
    ("connections.max.reauth.ms", "0"),
    // Not a Kafka setting: how long (ms) a SASL connection may take to authenticate.
    ("sasl.server.authn.timeout", "30000"),
    ("ssl.keystore.type", "PEM"),
    ("ssl.truststore.type", "PEM"),
    ("ssl.client.auth", "none"),
    ("ssl.principal.mapping.rules", "DEFAULT"),
    ("authorizer.class.name", ""),
    ("super.users", ""),
    ("allow.everyone.if.no.acl.found", "false"),
    ("max.connections", "2147483647"),
    ("max.connections.per.ip", "2147483647"),
    ("max.connections.per.ip.overrides", ""),
    // Memory for request bodies being read or handled (Kafka's default is unbounded).
    ("queued.max.request.bytes", "536870912"),
    // Node-to-node mutual TLS (empty: cluster traffic is not authenticated).
    ("cluster.ssl.keystore.location", ""),
    ("cluster.ssl.truststore.location", ""),
    ("rocketmq.tls.server.mode", "disabled"),
    ("rocketmq.acl.enable", "false"),
    ("rocketmq.acl.file", ""),
    ("metrics.ssl.enable", "false"),
    ("admin.ssl.enable", "false"),
    ("quota.window.num", "11"),
    // Admin HTTP API (mirror links, ...); the default is taken only if free.
    ("admin.listen", "127.0.0.1:9644"),
    ("mirror.offset.sync.interval.ms", "5000"),
    ("quota.window.size.seconds", "1"),
];

/// The resolved configuration: a flat map of Kafka-style keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    values: BTreeMap<String, String>,
    explicit: BTreeMap<String, String>,
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        toml::Value::Array(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|x| match x {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            out.insert(prefix.to_string(), items.join(","));
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

impl Config {
    /// Builds the configuration from an optional TOML file and `key=value` overrides.
    pub(crate) fn load(file: Option<&PathBuf>, sets: &[String]) -> Result<Self, ConfigError> {
        let mut explicit = BTreeMap::new();
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.clone(), e))?;
            let v: toml::Value = text
                .parse::<toml::Table>()
                .map(toml::Value::Table)
                .map_err(|e| ConfigError::Toml(path.clone(), e.to_string()))?;
            flatten("", &v, &mut explicit);
        }
        for s in sets {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| ConfigError::Set(s.clone()))?;
            explicit.insert(k.trim().to_string(), v.trim().to_string());
        }
        // Kafka accepts broker.id as the old name of node.id, and log.dir for log.dirs.
        for (old, new) in [("broker.id", "node.id"), ("log.dir", "log.dirs")] {
            if let Some(v) = explicit.get(old).cloned() {
                explicit.entry(new.to_string()).or_insert(v);
            }
        }
        let mut values: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        values.extend(explicit.clone());
        let c = Self { values, explicit };
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for k in [
            "node.id",
            "num.partitions",
            "message.max.bytes",
            "socket.request.max.bytes",
            "group.initial.rebalance.delay.ms",
        ] {
            self.int(k)?;
        }
        for k in [
            "kafka.listen",
            "rocketmq.namesrv.listen",
            "rocketmq.broker.listen",
            "metrics.listen",
        ] {
            self.addr(k)?;
        }
        self.bool("auto.create.topics.enable")?;
        Ok(())
    }

    /// Sets a value as if given explicitly (used for the dedicated flags).
    pub(crate) fn set(&mut self, key: &str, value: String) {
        self.values.insert(key.to_string(), value.clone());
        self.explicit.insert(key.to_string(), value);
    }

    /// A value, default included.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// A value only if the operator set it (file, `--set` or flag).
    pub(crate) fn explicit(&self, key: &str) -> Option<&str> {
        self.explicit.get(key).map(String::as_str)
    }

    /// A value parsed as an integer.
    pub(crate) fn int(&self, key: &str) -> Result<i64, ConfigError> {
        let v = self.get(key).unwrap_or("0");
        v.parse().map_err(|_| ConfigError::Value {
            key: key.into(),
            value: v.into(),
            why: "expected an integer",
        })
    }

    /// A value parsed as a boolean.
    pub(crate) fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        let v = self.get(key).unwrap_or("false");
        v.parse().map_err(|_| ConfigError::Value {
            key: key.into(),
            value: v.into(),
            why: "expected true or false",
        })
    }

    /// A value parsed as a socket address.
    pub(crate) fn addr(&self, key: &str) -> Result<SocketAddr, ConfigError> {
        let v = self.get(key).unwrap_or("");
        v.parse().map_err(|_| ConfigError::Value {
            key: key.into(),
            value: v.into(),
            why: "expected HOST:PORT with a numeric host",
        })
    }

    /// The data directory: the first entry of `log.dirs`.
    pub(crate) fn data_dir(&self) -> PathBuf {
        PathBuf::from(
            self.get("log.dirs")
                .unwrap_or("./data")
                .split(',')
                .next()
                .unwrap_or("./data")
                .trim(),
        )
    }

    /// Node id.
    pub(crate) fn node_id(&self) -> i32 {
        self.int("node.id").unwrap_or(1) as i32
    }

    /// Broker-level settings that topic configs inherit (explicit `log.*` and friends).
    pub(crate) fn broker_log_defaults(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for d in storage::config::TOPIC_CONFIGS {
            if let Some(v) = self.explicit(d.broker_name) {
                out.insert(d.broker_name.to_string(), v.to_string());
            }
        }
        // Kafka's coarser units: log.retention.hours/minutes and log.roll.hours.
        if !out.contains_key("log.retention.ms") {
            if let Some(m) = self
                .explicit("log.retention.minutes")
                .and_then(|v| v.parse::<i64>().ok())
            {
                out.insert("log.retention.ms".into(), (m * 60_000).to_string());
            } else if let Some(h) = self
                .explicit("log.retention.hours")
                .and_then(|v| v.parse::<i64>().ok())
            {
                out.insert("log.retention.ms".into(), (h * 3_600_000).to_string());
            }
        }
        if !out.contains_key("log.roll.ms") {
            if let Some(h) = self
                .explicit("log.roll.hours")
                .and_then(|v| v.parse::<i64>().ok())
            {
                out.insert("log.roll.ms".into(), (h * 3_600_000).to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sets_and_aliases() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile_dir()?;
        let path = dir.join("c.toml");
        std::fs::write(&path, "num.partitions = 3\n[log]\nretention.hours = 2\n")?;
        let c = Config::load(
            Some(&path),
            &["broker.id=7".into(), "num.partitions=5".into()],
        )?;
        assert_eq!(c.int("num.partitions")?, 5);
        assert_eq!(c.node_id(), 7);
        assert_eq!(
            c.broker_log_defaults()
                .get("log.retention.ms")
                .map(String::as_str),
            Some("7200000")
        );
        assert!(Config::load(None, &["nokey".into()]).is_err());
        assert!(Config::load(None, &["num.partitions=x".into()]).is_err());
        Ok(())
    }

    fn tempfile_dir() -> std::io::Result<PathBuf> {
        let d = std::env::temp_dir().join(format!("gw-config-{}", std::process::id()));
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }
}

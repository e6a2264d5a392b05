//! Effective topic and broker configs with Kafka's sources, shared by CreateTopics (v5+
//! returns the new topic's configs) and DescribeConfigs.

use crate::broker::Broker;
use std::collections::BTreeMap;
use storage::config::{ConfigType, TOPIC_CONFIGS};

/// Kafka's ConfigSource values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    DynamicTopic = 1,
    DynamicBroker = 2,
    StaticBroker = 4,
    Default = 5,
}

/// One config as reported to clients.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) source: Source,
    pub(crate) read_only: bool,
    pub(crate) kind: i8,
    /// Where else the value could come from, most specific first: (name, value, source).
    pub(crate) synonyms: Vec<(String, String, Source)>,
}

fn kind_code(k: ConfigType) -> i8 {
    match k {
        ConfigType::Boolean => 1,
        ConfigType::String => 2,
        ConfigType::Int => 3,
        ConfigType::Long => 5,
        ConfigType::Double => 6,
        ConfigType::List => 7,
    }
}

/// Broker keys that AlterConfigs may change at run time (they are the topic defaults).
pub(crate) fn broker_key_dynamic(key: &str) -> bool {
    TOPIC_CONFIGS.iter().any(|d| d.broker_name == key)
        || matches!(
            key,
            "num.partitions"
                | "leader.replication.throttled.rate"
                | "follower.replication.throttled.rate"
                | "replica.alter.log.dirs.io.max.bytes.per.second"
        )
}

/// The broker-level value of `broker_name` and its source, if any level sets it.
fn broker_level(broker: &Broker, broker_name: &str) -> Option<(String, Source)> {
    if let Some(v) = broker.dynamic.get(broker_name) {
        return Some((v, Source::DynamicBroker));
    }
    broker
        .config
        .broker_log_defaults()
        .get(broker_name)
        .cloned()
        .map(|v| (v, Source::StaticBroker))
}

/// Every topic-level config of a topic with the given overrides.
pub(crate) fn topic_entries(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<Entry> {
    TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(d.name) {
                synonyms.push((d.name.to_string(), v.clone(), Source::DynamicTopic));
            }
            if let Some((v, s)) = broker_level(broker, d.broker_name) {
                synonyms.push((d.broker_name.to_string(), v, s));
            }
            synonyms.push((
                d.broker_name.to_string(),
                d.default.to_string(),
                Source::Default,
            ));
            let (value, source) = synonyms
                .first()
                .map(|(_, v, s)| (v.clone(), *s))
                .unwrap_or_else(|| (d.default.to_string(), Source::Default));
            Entry {
                name: d.name.to_string(),
                value,
                source,
                read_only: false,
                kind: kind_code(d.kind),
                synonyms,
            }
        })
        .collect()
}

/// Every broker-level config of this node.
pub(crate) fn broker_entries(broker: &Broker) -> Vec<Entry> {
    let mut keys: BTreeMap<String, String> = crate::config::DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for d in TOPIC_CONFIGS {
        keys.entry(d.broker_name.to_string())
            .or_insert_with(|| d.default.to_string());
    }
    keys.into_iter()
        .map(|(k, default)| {
            let mut synonyms = Vec::new();
            if let Some(v) = broker.dynamic.get(&k) {
                synonyms.push((k.clone(), v, Source::DynamicBroker));
            }
            if let Some(v) = broker.config.explicit(&k) {
                synonyms.push((k.clone(), v.to_string(), Source::StaticBroker));
            }
            synonyms.push((k.clone(), default.clone(), Source::Default));
            let (value, source) = synonyms
                .first()
                .map(|(_, v, s)| (v.clone(), *s))
                .unwrap_or((default, Source::Default));
            let kind = TOPIC_CONFIGS
                .iter()
                .find(|d| d.broker_name == k)
                .map(|d| kind_code(d.kind))
                .unwrap_or(2);
            Entry {
                read_only: !broker_key_dynamic(&k),
                name: k,
                value,
                source,
                kind,
                synonyms,
            }
        })
        .collect()
}

/// Resource types of the config APIs.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
/// Broker resource type.
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// Why a config change was refused: a Kafka error and a message.
pub(crate) type ChangeError = (kafka_protocol::error::ResponseError, String);

/// Whether a broker resource name refers to this node ("" is the cluster-wide default).
pub(crate) fn is_this_broker(broker: &Broker, name: &str) -> bool {
    name.is_empty() || name.parse::<i32>().ok() == Some(broker.node_id)
}

/// The current dynamic overrides of a resource.
pub(crate) fn current(
    broker: &Broker,
    resource_type: i8,
    name: &str,
) -> Result<BTreeMap<String, String>, ChangeError> {
    use kafka_protocol::error::ResponseError as E;
    match resource_type {
        RESOURCE_TOPIC => broker
            .store
            .topic(name)
            .map(|t| t.meta.configs.clone())
            .ok_or((
                E::UnknownTopicOrPartition,
                format!("topic {name} does not exist"),
            )),
        RESOURCE_BROKER if is_this_broker(broker, name) => Ok(broker.dynamic.all()),
        RESOURCE_BROKER => Err((E::InvalidRequest, format!("unknown broker {name}"))),
        other => Err((
            E::InvalidRequest,
            format!("unsupported resource type {other}"),
        )),
    }
}

/// Replaces a resource's dynamic overrides with `configs` after validating them.
pub(crate) async fn replace(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ChangeError> {
    use kafka_protocol::error::ResponseError as E;
    match resource_type {
        RESOURCE_TOPIC => broker
            .set_topic_configs(name, configs, validate_only)
            .await
            .map_err(|e| {
                (
                    E::try_from_code(e.code()).unwrap_or(E::UnknownServerError),
                    e.to_string(),
                )
            }),
        RESOURCE_BROKER => {
            for (k, v) in &configs {
                if !broker_key_dynamic(k) {
                    return Err((
                        E::InvalidConfig,
                        format!("broker config {k} cannot be changed dynamically"),
                    ));
                }
                if let Some(d) = TOPIC_CONFIGS.iter().find(|d| d.broker_name == k) {
                    storage::config::validate_topic_config(d.name, v)
                        .map_err(|e| (E::InvalidConfig, e.to_string()))?;
                } else if v.parse::<i64>().is_err() {
                    return Err((E::InvalidConfig, format!("{k}={v}: expected an integer")));
                }
            }
            if validate_only {
                return Ok(());
            }
            let old = broker.dynamic.all();
            broker
                .dynamic
                .replace(configs.clone())
                .map_err(|e| (E::KafkaStorageError, e.to_string()))?;
            // Re-resolve topic defaults: removed keys fall back to the static value.
            let statics = broker.config.broker_log_defaults();
            for k in old.keys().filter(|k| !configs.contains_key(*k)) {
                broker.store.set_broker_setting(k, statics.get(k).cloned());
            }
            for (k, v) in configs {
                broker.store.set_broker_setting(&k, Some(v));
            }
            Ok(())
        }
        other => Err((
            E::InvalidRequest,
            format!("unsupported resource type {other}"),
        )),
    }
}

/// Whether the principal may describe (DESCRIBE_CONFIGS) or alter (ALTER_CONFIGS) a config
/// resource: a topic's configs are governed by the topic, a broker's by the cluster. The
/// error carries Kafka's default message.
pub(crate) fn config_access(
    ctx: &super::RequestContext<'_>,
    resource_type: i8,
    name: &str,
    op: crate::auth::acl::Operation,
) -> Result<(), (kafka_protocol::error::ResponseError, String)> {
    use crate::auth::acl::ResourceType;
    use kafka_protocol::error::ResponseError as E;
    match resource_type {
        RESOURCE_TOPIC if !ctx.allowed(op, ResourceType::Topic, name) => Err((
            E::TopicAuthorizationFailed,
            "Topic authorization failed.".into(),
        )),
        RESOURCE_BROKER if !ctx.allowed_on_cluster(op) => Err((
            E::ClusterAuthorizationFailed,
            "Cluster authorization failed.".into(),
        )),
        _ => Ok(()),
    }
}

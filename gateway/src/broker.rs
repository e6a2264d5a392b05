//! State shared by every connection of one node: configuration, the storage core, the group
//! coordinator, fetch sessions and producer-id allocation.

use crate::config::Config;
use crate::dynamic_config::DynamicConfig;
use crate::kafka::group::GroupCoordinator;
use crate::producer_ids::ProducerIds;
use parking_lot::RwLock;
use std::sync::Arc;
use storage::Store;

/// Limits enforced on every connection.
pub(crate) struct Limits {
    pub(crate) max_request_bytes: usize,
}

/// Where clients should connect to this node's Kafka listener.
#[derive(Debug, Clone)]
pub(crate) struct Advertised {
    pub(crate) host: String,
    pub(crate) port: i32,
}

/// One node's shared state.
pub(crate) struct Broker {
    pub(crate) config: Config,
    pub(crate) store: Arc<Store>,
    pub(crate) node_id: i32,
    pub(crate) cluster_id: String,
    pub(crate) rack: Option<String>,
    pub(crate) advertised: RwLock<Advertised>,
    pub(crate) limits: Limits,
    pub(crate) groups: Arc<GroupCoordinator>,
    pub(crate) fetch_sessions: crate::kafka::FetchSessions,
    pub(crate) producer_ids: ProducerIds,
    pub(crate) dynamic: DynamicConfig,
    /// Cluster mode: the metadata quorum and replication; `None` on the single-node default.
    pub(crate) cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Credentials, ACLs and quotas, and the authorizer.
    pub(crate) security: Arc<crate::auth::Security>,
    /// Connection limits of every listener.
    pub(crate) connections: crate::connections::Connections,
    /// With cluster TLS: the trust store whose certificates identify nodes (only they may
    /// fetch as replicas).
    pub(crate) cluster_trust: Option<crate::auth::tls::ClusterTrust>,
    /// This node's Kafka listeners.
    pub(crate) listeners: Vec<Arc<crate::kafka::session::KafkaListener>>,
    /// Client quotas.
    pub(crate) quotas: crate::auth::quota::Quotas,
    /// The transaction coordinator.
    pub(crate) txns: crate::txn::Transactions,
    /// Mirror links.
    pub(crate) mirrors: Arc<crate::mirror::Mirrors>,
    /// Set by the RocketMQ front end: whether a consumer group has consumers online there.
    pub(crate) rocketmq_online: RwLock<Option<GroupProbe>>,
}

/// Tells whether a group has members online.
pub(crate) type GroupProbe = Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl Broker {
    /// Whether a consumer group has active members here (a Kafka group with members, or
    /// RocketMQ consumers online).
    pub(crate) fn group_is_active(&self, group: &str) -> bool {
        !self.groups.describe_group(group).members.is_empty()
            || self
                .rocketmq_online
                .read()
                .as_ref()
                .is_some_and(|probe| probe(group))
    }

    /// The mirror link a topic belongs to while it is read-only, if any.
    pub(crate) fn mirror_link_of(&self, topic: &str) -> Option<String> {
        self.store.topic(topic).and_then(|t| {
            t.meta
                .attributes
                .get(crate::mirror::link::MIRROR_ATTRIBUTE)
                .cloned()
        })
    }

    /// Whether this node coordinates a transactional id (always, on one node).
    pub(crate) fn coordinates_transaction(&self, id: &str) -> bool {
        match &self.cluster {
            None => true,
            Some(c) => c.coordinator_for(id).is_none_or(|n| n.id == self.node_id),
        }
    }

    /// Whether this node leads a partition (always, on one node).
    pub(crate) fn leads(&self, topic: &str, partition: i32) -> bool {
        match &self.cluster {
            None => true,
            Some(c) => c
                .replicas
                .get(topic, partition)
                .is_some_and(|p| p.check_leader(self.node_id, -1).is_ok()),
        }
    }

    /// This node's advertised endpoint on a listener (the default one if it has no such
    /// listener).
    pub(crate) fn endpoint(&self, listener: &str) -> (String, i32) {
        self.listeners
            .iter()
            .find(|l| l.name == listener)
            .map(|l| l.advertised.clone())
            .unwrap_or_else(|| {
                let a = self.advertised();
                (a.host, a.port)
            })
    }

    /// This node's advertised Kafka endpoint.
    pub(crate) fn advertised(&self) -> Advertised {
        self.advertised.read().clone()
    }

    /// Default partition count for new topics (`num.partitions`).
    pub(crate) fn default_partitions(&self) -> i32 {
        self.dynamic
            .get("num.partitions")
            .or_else(|| self.config.get("num.partitions").map(str::to_string))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// Whether Metadata requests may create topics (`auto.create.topics.enable`).
    pub(crate) fn auto_create(&self) -> bool {
        self.config
            .bool("auto.create.topics.enable")
            .unwrap_or(true)
    }
}

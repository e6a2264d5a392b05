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
}

impl Broker {
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

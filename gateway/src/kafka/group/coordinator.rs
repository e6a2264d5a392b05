//! Group state machine. STUB: to be replaced by the real coordinator.

use kafka_protocol::error::ResponseError;
use std::collections::HashSet;
use std::sync::Arc;
use storage::Store;

/// Group coordinator settings (Kafka's `group.*` broker configs).
#[derive(Debug, Clone)]
pub(crate) struct GroupConfig {
    pub(crate) initial_rebalance_delay_ms: u64,
    pub(crate) min_session_timeout_ms: i32,
    pub(crate) max_session_timeout_ms: i32,
    pub(crate) max_size: i32,
}

/// All groups of this node.
pub(crate) struct GroupCoordinator {
    #[allow(dead_code)]
    config: GroupConfig,
    #[allow(dead_code)]
    store: Arc<Store>,
}

impl GroupCoordinator {
    pub(crate) fn new(config: GroupConfig, store: Arc<Store>) -> Arc<Self> {
        Arc::new(Self { config, store })
    }

    /// Whether an OffsetCommit from this member/generation may proceed.
    pub(crate) fn validate_commit(
        &self,
        _group: &str,
        _member_id: &str,
        _generation_id: i32,
        _group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        Ok(())
    }

    /// Topics the group's live consumer members subscribe to (for OffsetDelete).
    pub(crate) fn subscribed_topics(&self, _group: &str) -> HashSet<String> {
        HashSet::new()
    }

    /// Whether the group has live state (members or a pending rebalance).
    pub(crate) fn exists(&self, _group: &str) -> bool {
        false
    }
}

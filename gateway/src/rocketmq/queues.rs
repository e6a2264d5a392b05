//! How a RocketMQ broker's queues map onto partitions (DESIGN.md): a node is one broker, and
//! its queues of a topic are the partitions whose preferred (first) replica is that node,
//! numbered 0..k-1 in partition order. On the single-node default every partition is a
//! queue of the one broker and `queueId == partition`.

use super::RocketMq;
use crate::cluster::state::ClusterState;
use std::sync::Arc;
use storage::{PartitionLog, StorageError};

/// The partitions that are `node`'s queues of `topic`, in queue-id order.
pub(crate) fn preferred_by(state: &ClusterState, topic: &str, node: i32) -> Vec<i32> {
    state
        .topics
        .get(topic)
        .map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.replicas.first() == Some(&node))
                .map(|(i, _)| i as i32)
                .collect()
        })
        .unwrap_or_default()
}

impl RocketMq {
    /// This broker's queues of `topic` as partitions, in queue-id order.
    pub(crate) fn queue_partitions(&self, topic: &str) -> Vec<i32> {
        match &self.broker.cluster {
            Some(c) => preferred_by(&c.state(), topic, self.broker.node_id),
            None => self
                .broker
                .store
                .topic(topic)
                .map(|t| (0..t.partitions.len() as i32).collect())
                .unwrap_or_default(),
        }
    }

    /// The partition behind queue `queue` of `topic` on this broker.
    pub(crate) fn partition_of(&self, topic: &str, queue: i32) -> Option<i32> {
        if queue < 0 {
            return None;
        }
        match &self.broker.cluster {
            Some(_) => self.queue_partitions(topic).get(queue as usize).copied(),
            None => Some(queue),
        }
    }

    /// The queue id of `partition` on this broker, if it is one of this broker's queues.
    pub(crate) fn queue_of(&self, topic: &str, partition: i32) -> Option<i32> {
        match &self.broker.cluster {
            Some(_) => self
                .queue_partitions(topic)
                .iter()
                .position(|p| *p == partition)
                .map(|q| q as i32),
            None => Some(partition),
        }
    }

    /// The log behind queue `queue` of `topic` on this broker.
    pub(crate) fn queue_log(
        &self,
        topic: &str,
        queue: i32,
    ) -> Result<Arc<PartitionLog>, StorageError> {
        let partition = self
            .partition_of(topic, queue)
            .ok_or(StorageError::UnknownPartition(topic.to_string(), queue))?;
        self.broker.store.partition(topic, partition)
    }

    /// This broker's queues of `topic` as (queue id, log).
    pub(crate) fn queue_logs(&self, topic: &str) -> Vec<(i32, Arc<PartitionLog>)> {
        self.queue_partitions(topic)
            .into_iter()
            .enumerate()
            .filter_map(|(q, p)| {
                self.broker
                    .store
                    .partition(topic, p)
                    .ok()
                    .map(|l| (q as i32, l))
            })
            .collect()
    }
}

//! How a RocketMQ broker's queues map onto partitions (DESIGN.md): a node is one broker, and
//! its queues of a topic are the partitions whose preferred (first) replica is that node,
//! numbered 0..k-1 in partition order. On the single-node default every partition is a
//! queue of the one broker and `queueId == partition`.
//!
//! While a node is dead, a live node stands in for its broker on a second listener (the
//! stand-in instance): RocketMQ 4.x requests do not say which broker they are for, so the
//! address a client connects to is what names the broker.

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
    /// The node whose broker this instance serves: this node, or for the stand-in instance
    /// the dead node it stands in for now (none when no broker needs it).
    pub(crate) fn group_node(&self) -> Option<i32> {
        if !self.standby {
            return Some(self.broker.node_id);
        }
        let c = self.broker.cluster.as_ref()?;
        c.state()
            .stand_ins()
            .into_iter()
            .find(|(_, s)| *s == self.broker.node_id)
            .map(|(dead, _)| dead)
    }

    /// The broker name this instance answers as.
    pub(crate) fn name(&self) -> String {
        if !self.standby {
            return self.broker_name.clone();
        }
        let dead = self.group_node();
        self.broker
            .cluster
            .as_ref()
            .zip(dead)
            .and_then(|(c, d)| {
                c.state()
                    .nodes
                    .get(&d)
                    .map(|n| n.info.rocketmq_name.clone())
            })
            .filter(|n| !n.is_empty())
            .or_else(|| dead.map(|d| format!("broker-{d}")))
            .unwrap_or_default()
    }

    /// This broker's queues of `topic` as partitions, in queue-id order.
    pub(crate) fn queue_partitions(&self, topic: &str) -> Vec<i32> {
        match &self.broker.cluster {
            Some(c) => match self.group_node() {
                Some(n) => preferred_by(&c.state(), topic, n),
                None => Vec::new(),
            },
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

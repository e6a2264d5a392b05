//! Committed consumer offsets, shared by Kafka groups and RocketMQ consumers. On one node a
//! change goes straight to the store's offset journal; in a cluster it is committed through
//! the metadata quorum and applied to every node's journal before it is acknowledged, so a
//! group's offsets survive the loss of the node that coordinated it.

use crate::broker::Broker;
use crate::cluster::state::{Command, OffsetEntry, Outcome};
use crate::cluster::ClusterError;
use storage::{CommittedOffset, StorageError};

/// Why an offset change was not stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OffsetsError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("refused by the controller: {0}")]
    Rejected(String),
}

fn outcome(o: Outcome) -> Result<(), OffsetsError> {
    match o {
        Outcome::Ok => Ok(()),
        Outcome::Rejected(_, msg) => Err(OffsetsError::Rejected(msg)),
    }
}

impl Broker {
    /// Stores a group's committed offsets durably (and, in a cluster, on every node).
    pub(crate) async fn commit_offsets(
        &self,
        group: &str,
        entries: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), OffsetsError> {
        let Some(cluster) = &self.cluster else {
            return Ok(self.store.offsets().commit(group, &entries)?);
        };
        let offsets = entries.into_iter().map(OffsetEntry::from).collect();
        outcome(
            cluster
                .propose(Command::CommitOffsets {
                    group: group.to_string(),
                    offsets,
                })
                .await?,
        )
    }

    /// Removes a group's offsets for `partitions`, or all of them.
    pub(crate) async fn delete_offsets(
        &self,
        group: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<(), OffsetsError> {
        let Some(cluster) = &self.cluster else {
            match partitions {
                Some(p) => self.store.offsets().delete(group, &p)?,
                None => self.store.offsets().delete_group(group)?,
            }
            return Ok(());
        };
        outcome(
            cluster
                .propose(Command::DeleteOffsets {
                    group: group.to_string(),
                    partitions,
                })
                .await?,
        )
    }
}

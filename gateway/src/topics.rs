//! Topic administration for both front ends: on the single-node default it goes straight to
//! the storage core; in a cluster it is validated here, committed through the controller and
//! materialised on every node from the applied metadata.

use crate::broker::Broker;
use crate::cluster::state::{Command, Outcome};
use crate::cluster::ClusterError;
use kafka_protocol::error::ResponseError;
use std::collections::BTreeMap;
use storage::StorageError;
use uuid::Uuid;

/// Why a topic change was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{1}")]
    Rejected(i16, String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl AdminError {
    /// The Kafka error code.
    pub(crate) fn code(&self) -> i16 {
        match self {
            AdminError::Storage(e) => crate::kafka::storage_error_code(e),
            AdminError::Rejected(c, _) => *c,
            AdminError::Cluster(_) => ResponseError::RequestTimedOut.code(),
        }
    }

    /// Whether the topic already existed.
    pub(crate) fn is_exists(&self) -> bool {
        matches!(self, AdminError::Storage(StorageError::TopicExists(_)))
            || matches!(self, AdminError::Rejected(c, _) if *c == ResponseError::TopicAlreadyExists.code())
    }
}

fn outcome(o: Outcome) -> Result<(), AdminError> {
    match o {
        Outcome::Ok => Ok(()),
        Outcome::Rejected(c, m) => Err(AdminError::Rejected(c, m)),
    }
}

fn rejected(e: ResponseError, msg: impl Into<String>) -> AdminError {
    AdminError::Rejected(e.code(), msg.into())
}

/// A topic creation request.
pub(crate) struct NewTopic {
    pub(crate) name: String,
    pub(crate) partitions: i32,
    /// -1: `default.replication.factor`.
    pub(crate) replication_factor: i16,
    pub(crate) configs: BTreeMap<String, String>,
    /// Explicit replicas per partition.
    pub(crate) assignment: Option<Vec<Vec<i32>>>,
    /// Protocol attributes set with the topic (a mirror topic's link).
    pub(crate) attributes: BTreeMap<String, String>,
}

impl Broker {
    fn default_replication_factor(&self) -> i16 {
        self.config
            .int("default.replication.factor")
            .unwrap_or(1)
            .clamp(1, i16::MAX as i64) as i16
    }

    /// Creates a topic; returns its id (nil when only validated) and replication factor.
    pub(crate) async fn create_topic(
        &self,
        t: NewTopic,
        validate_only: bool,
    ) -> Result<(Uuid, i16), AdminError> {
        let rf = if let Some(a) = &t.assignment {
            a.first().map(|r| r.len() as i16).unwrap_or(1)
        } else if t.replication_factor == -1 {
            self.default_replication_factor()
        } else {
            t.replication_factor
        };
        let Some(cluster) = &self.cluster else {
            if t.assignment
                .iter()
                .flatten()
                .any(|r| r.iter().any(|b| *b != self.node_id))
            {
                return Err(rejected(
                    ResponseError::InvalidReplicaAssignment,
                    format!("replicas must be [{}]", self.node_id),
                ));
            }
            // The single-node default treats an unset replication factor as 1.
            let rf = if t.replication_factor == -1 && t.assignment.is_none() {
                1
            } else {
                rf
            };
            if rf != 1 {
                return Err(rejected(
                    ResponseError::InvalidReplicationFactor,
                    format!("replication factor {rf} larger than the 1 available broker"),
                ));
            }
            let meta =
                self.store
                    .create_topic(&t.name, t.partitions, 1, t.configs, validate_only)?;
            if !t.attributes.is_empty() && !validate_only {
                self.store.set_topic_attributes(&t.name, t.attributes)?;
            }
            return Ok((meta.id, 1));
        };
        storage::store::validate_topic_name(&t.name)?;
        if t.partitions < 1 {
            return Err(rejected(
                ResponseError::InvalidPartitions,
                "number of partitions must be at least 1",
            ));
        }
        for (k, v) in &t.configs {
            storage::config::validate_topic_config(k, v)?;
        }
        let state = cluster.state();
        if state.topics.contains_key(&t.name) {
            return Err(rejected(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{}' already exists.", t.name),
            ));
        }
        let live = state.nodes.values().filter(|n| !n.fenced).count();
        if t.assignment.is_none() && (rf < 1 || rf as usize > live) {
            return Err(rejected(
                ResponseError::InvalidReplicationFactor,
                format!("Replication factor: {rf} larger than available brokers: {live}."),
            ));
        }
        if validate_only {
            return Ok((Uuid::nil(), rf));
        }
        let id = Uuid::new_v4();
        outcome(
            cluster
                .propose(Command::CreateTopic {
                    name: t.name.clone(),
                    id,
                    partitions: t.partitions,
                    replication_factor: rf,
                    configs: t.configs,
                    attributes: t.attributes,
                    assignment: t.assignment,
                    preferred: None,
                })
                .await?,
        )?;
        Ok((id, rf))
    }

    /// Creates a topic unless it exists (auto-creation by either protocol).
    pub(crate) async fn ensure_topic(&self, name: &str, partitions: i32) -> Result<(), AdminError> {
        if self.store.topic(name).is_some() {
            return Ok(());
        }
        let t = NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor: -1,
            configs: BTreeMap::new(),
            assignment: None,
            attributes: BTreeMap::new(),
        };
        match self.create_topic(t, false).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_exists() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A RocketMQ broker's queues: makes this node the preferred replica of at least
    /// `queues` partitions of the topic, creating it or adding partitions preferred by this
    /// node (on one node: at least `queues` partitions).
    pub(crate) async fn ensure_queues(&self, name: &str, queues: i32) -> Result<(), AdminError> {
        let Some(cluster) = &self.cluster else {
            return match self.store.topic(name) {
                Some(t) if t.partitions.len() as i32 >= queues => Ok(()),
                Some(_) => self.create_partitions(name, queues, false).await,
                None => self.ensure_topic(name, queues).await,
            };
        };
        let me = self.node_id;
        let state = cluster.state();
        let cmd = match state.topics.get(name) {
            Some(t) => {
                let mine = t
                    .partitions
                    .iter()
                    .filter(|p| p.replicas.first() == Some(&me))
                    .count() as i32;
                if mine >= queues {
                    return Ok(());
                }
                Command::CreatePartitions {
                    name: name.to_string(),
                    total: t.partitions.len() as i32 + queues - mine,
                    preferred: Some(me),
                }
            }
            None => {
                storage::store::validate_topic_name(name)?;
                let live = state.live_ids().len() as i16;
                Command::CreateTopic {
                    name: name.to_string(),
                    id: Uuid::new_v4(),
                    partitions: queues,
                    replication_factor: self.default_replication_factor().min(live.max(1)),
                    configs: BTreeMap::new(),
                    attributes: BTreeMap::new(),
                    assignment: None,
                    preferred: Some(me),
                }
            }
        };
        match outcome(cluster.propose(cmd).await?) {
            // Another broker created it at the same moment: add ours next time round.
            Err(e) if e.is_exists() => Box::pin(self.ensure_queues(name, queues)).await,
            r => r,
        }
    }

    /// Deletes a topic; returns its id.
    pub(crate) async fn delete_topic(&self, name: &str) -> Result<Uuid, AdminError> {
        let Some(cluster) = &self.cluster else {
            return Ok(self.store.delete_topic(name)?.id);
        };
        let id = cluster
            .state()
            .topics
            .get(name)
            .map(|t| t.id)
            .unwrap_or_default();
        outcome(
            cluster
                .propose(Command::DeleteTopic {
                    name: name.to_string(),
                })
                .await?,
        )?;
        Ok(id)
    }

    /// Grows a topic to `total` partitions.
    pub(crate) async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let Some(cluster) = &self.cluster else {
            return Ok(self.store.create_partitions(name, total, validate_only)?);
        };
        let state = cluster.state();
        let Some(t) = state.topics.get(name) else {
            return Err(StorageError::UnknownTopic(name.to_string()).into());
        };
        if total <= t.partitions.len() as i32 {
            return Err(rejected(
                ResponseError::InvalidPartitions,
                format!(
                    "Topic currently has {} partitions, {total} would not be an increase.",
                    t.partitions.len()
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        outcome(
            cluster
                .propose(Command::CreatePartitions {
                    name: name.to_string(),
                    total,
                    preferred: None,
                })
                .await?,
        )
    }

    /// Replaces a topic's config overrides.
    pub(crate) async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let Some(cluster) = &self.cluster else {
            return Ok(self.store.set_topic_configs(name, configs, validate_only)?);
        };
        for (k, v) in &configs {
            storage::config::validate_topic_config(k, v)?;
        }
        if !cluster.state().topics.contains_key(name) {
            return Err(StorageError::UnknownTopic(name.to_string()).into());
        }
        if validate_only {
            return Ok(());
        }
        outcome(
            cluster
                .propose(Command::SetConfigs {
                    name: name.to_string(),
                    configs,
                })
                .await?,
        )
    }

    /// Replaces a topic's protocol attributes (RocketMQ perm and queue counts).
    pub(crate) async fn set_topic_attributes(
        &self,
        name: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        self.set_topic_attributes_and_epochs(name, attributes, BTreeMap::new())
            .await
    }

    /// Sets a topic's attributes; in a cluster, also raises the leader epochs of the listed
    /// partitions to at least the given floors (a mirror topic's failover).
    pub(crate) async fn set_topic_attributes_and_epochs(
        &self,
        name: &str,
        attributes: BTreeMap<String, String>,
        epoch_floors: BTreeMap<i32, i32>,
    ) -> Result<(), AdminError> {
        let Some(cluster) = &self.cluster else {
            return Ok(self.store.set_topic_attributes(name, attributes)?);
        };
        outcome(
            cluster
                .propose(Command::SetAttributes {
                    name: name.to_string(),
                    attributes,
                    epoch_floors,
                })
                .await?,
        )
    }
}

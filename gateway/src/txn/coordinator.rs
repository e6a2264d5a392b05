//! Coordinator state transitions, one transactional id at a time (Kafka's
//! TransactionCoordinator, with markers written synchronously before EndTxn answers).

use crate::broker::Broker;
use crate::cluster::state::{Command, Outcome};
use codecs::kafka::control::Marker;
use dashmap::DashMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use storage::{CommittedOffset, PendingOffset, StorageError, TxnMeta, TxnState};

/// Why a coordinator request was refused; mapped to Kafka codes in `kafka::errors`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TxnError {
    #[error("transaction timeout {got} ms is not within (0, transaction.max.timeout.ms = {max}]")]
    InvalidTimeout { got: i32, max: i64 },
    #[error("producer id {got} is not the one bound to this transactional id")]
    InvalidProducerIdMapping { got: i64 },
    #[error("producer epoch {got} is fenced by epoch {current}")]
    ProducerFenced { current: i16, got: i16 },
    #[error("a previous transaction of this id is still being completed")]
    Concurrent,
    #[error("{op} is not valid in state {state}")]
    InvalidState {
        op: &'static str,
        state: &'static str,
    },
    #[error("writing a transaction marker to {topic}-{partition}: {error}")]
    Marker {
        topic: String,
        partition: i32,
        error: StorageError,
    },
    #[error("committing the transaction's offsets: {0}")]
    Offsets(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the metadata quorum did not record the change: {0}")]
    Replication(String),
    #[error("cannot allocate a producer id: {0}")]
    ProducerId(std::io::Error),
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The coordinator of this node.
pub(crate) struct Transactions {
    /// One lock per transactional id: its requests are handled one after the other.
    locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    max_timeout_ms: i64,
}

impl Transactions {
    pub(crate) fn new(max_timeout_ms: i64) -> Self {
        Self {
            locks: DashMap::new(),
            max_timeout_ms,
        }
    }

    async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self
            .locks
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        m.lock_owned().await
    }

    /// Records a transactional id's new state durably: in the local table on one node,
    /// through the metadata quorum (into every node's table) in a cluster.
    async fn persist(&self, broker: &Broker, id: &str, m: &TxnMeta) -> Result<(), TxnError> {
        match &broker.cluster {
            None => Ok(broker.store.transactions().put(id, Some(m.clone()))?),
            Some(c) => match c
                .propose(Command::Txn {
                    id: id.to_string(),
                    meta: Some(m.clone()),
                })
                .await
            {
                Ok(Outcome::Ok) => Ok(()),
                Ok(Outcome::Rejected(_, msg)) => Err(TxnError::Replication(msg)),
                Err(e) => Err(TxnError::Replication(e.to_string())),
            },
        }
    }

    fn check_producer(m: &TxnMeta, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
        if m.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping { got: producer_id });
        }
        if m.producer_epoch != epoch {
            return Err(TxnError::ProducerFenced {
                current: m.producer_epoch,
                got: epoch,
            });
        }
        Ok(())
    }

    fn current(broker: &Broker, id: &str, producer_id: i64) -> Result<TxnMeta, TxnError> {
        broker
            .store
            .transactions()
            .get(id)
            .ok_or(TxnError::InvalidProducerIdMapping { got: producer_id })
    }

    /// InitProducerId with a transactional id: a new producer id at epoch 0, or the bound one
    /// with its epoch bumped, which fences every older instance. An open transaction of the
    /// id is aborted first. `expected` is the (producer id, epoch) a restarting producer
    /// presents (KIP-360).
    pub(crate) async fn init_producer(
        &self,
        broker: &Broker,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        if timeout_ms <= 0 || timeout_ms as i64 > self.max_timeout_ms {
            return Err(TxnError::InvalidTimeout {
                got: timeout_ms,
                max: self.max_timeout_ms,
            });
        }
        let _g = self.lock(id).await;
        let now = now_ms();
        let mut m = match broker.store.transactions().get(id) {
            None => {
                let pid = broker
                    .producer_ids
                    .allocate()
                    .map_err(TxnError::ProducerId)?;
                let m = fresh(pid, 0, timeout_ms, now);
                self.persist(broker, id, &m).await?;
                return Ok((pid, 0));
            }
            Some(m) => m,
        };
        if let Some((pid, epoch)) = expected {
            if pid != m.producer_id || epoch != m.producer_epoch {
                return Err(TxnError::ProducerFenced {
                    current: m.producer_epoch,
                    got: epoch,
                });
            }
        }
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                m = self.complete(broker, id, m).await?;
            }
            TxnState::Ongoing => {
                // The new instance fences the old one: its transaction is aborted with a
                // newer epoch, so the zombie's next write is refused by every partition.
                m.producer_epoch = m.producer_epoch.saturating_add(1);
                m.state = TxnState::PrepareAbort;
                m.update_ms = now;
                self.persist(broker, id, &m).await?;
                m = self.complete(broker, id, m).await?;
            }
            _ => {}
        }
        if m.producer_epoch >= i16::MAX - 1 {
            let pid = broker
                .producer_ids
                .allocate()
                .map_err(TxnError::ProducerId)?;
            m = fresh(pid, 0, timeout_ms, now);
        } else {
            m.producer_epoch += 1;
            m.timeout_ms = timeout_ms;
            m.state = TxnState::Empty;
            m.partitions.clear();
            m.groups.clear();
            m.offsets.clear();
            m.start_ms = -1;
            m.update_ms = now;
        }
        self.persist(broker, id, &m).await?;
        Ok((m.producer_id, m.producer_epoch))
    }

    /// Starts the transaction if none is open (from Empty or a completed one).
    fn begin(m: &mut TxnMeta, now: i64) -> Result<(), TxnError> {
        match m.state {
            TxnState::Ongoing => Ok(()),
            TxnState::PrepareCommit | TxnState::PrepareAbort => Err(TxnError::Concurrent),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                m.state = TxnState::Ongoing;
                m.start_ms = now;
                m.partitions.clear();
                m.groups.clear();
                m.offsets.clear();
                Ok(())
            }
        }
    }

    /// AddPartitionsToTxn: the partitions join the transaction (which starts if needed).
    pub(crate) async fn add_partitions(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), TxnError> {
        let _g = self.lock(id).await;
        let mut m = Self::current(broker, id, producer_id)?;
        Self::check_producer(&m, producer_id, epoch)?;
        if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
            return Ok(());
        }
        let now = now_ms();
        Self::begin(&mut m, now)?;
        m.partitions.extend(partitions.iter().cloned());
        m.update_ms = now;
        self.persist(broker, id, &m).await?;
        Ok(())
    }

    /// Whether `producer_id`/`epoch` has an open transaction of `id` holding the partition
    /// (AddPartitionsToTxn verify-only, and the produce path's check of KIP-890).
    pub(crate) fn verify(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &(String, i32),
    ) -> Result<bool, TxnError> {
        let m = Self::current(broker, id, producer_id)?;
        Self::check_producer(&m, producer_id, epoch)?;
        Ok(m.state == TxnState::Ongoing && m.partitions.contains(partition))
    }

    /// AddOffsetsToTxn: the group's offsets will be committed with the transaction.
    pub(crate) async fn add_offsets(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
    ) -> Result<(), TxnError> {
        let _g = self.lock(id).await;
        let mut m = Self::current(broker, id, producer_id)?;
        Self::check_producer(&m, producer_id, epoch)?;
        let now = now_ms();
        Self::begin(&mut m, now)?;
        m.groups.insert(group.to_string());
        m.update_ms = now;
        self.persist(broker, id, &m).await?;
        Ok(())
    }

    /// TxnOffsetCommit: offsets held with the transaction, visible to the group only when
    /// it commits.
    pub(crate) async fn commit_offsets(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        epoch: i16,
        offsets: Vec<PendingOffset>,
    ) -> Result<(), TxnError> {
        let _g = self.lock(id).await;
        let mut m = Self::current(broker, id, producer_id)?;
        Self::check_producer(&m, producer_id, epoch)?;
        if m.state != TxnState::Ongoing {
            return Err(TxnError::InvalidState {
                op: "TxnOffsetCommit",
                state: m.state.name(),
            });
        }
        for o in offsets {
            m.groups.insert(o.group.clone());
            m.offsets.retain(|x| {
                !(x.group == o.group && x.topic == o.topic && x.partition == o.partition)
            });
            m.offsets.push(o);
        }
        m.update_ms = now_ms();
        self.persist(broker, id, &m).await?;
        Ok(())
    }

    /// EndTxn: commits or aborts the open transaction; answers once every marker is written.
    pub(crate) async fn end(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let _g = self.lock(id).await;
        let mut m = Self::current(broker, id, producer_id)?;
        Self::check_producer(&m, producer_id, epoch)?;
        match (m.state, commit) {
            (TxnState::Ongoing, _) => {
                m.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                m.update_ms = now_ms();
                self.persist(broker, id, &m).await?;
                self.complete(broker, id, m).await?;
                Ok(())
            }
            // A retried EndTxn whose first attempt completed.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => Err(TxnError::Concurrent),
            (state, _) => Err(TxnError::InvalidState {
                op: if commit { "commit" } else { "abort" },
                state: state.name(),
            }),
        }
    }

    /// Writes the markers of a PrepareCommit/PrepareAbort transaction, applies its offsets
    /// on commit, and records it complete.
    async fn complete(
        &self,
        broker: &Broker,
        id: &str,
        mut m: TxnMeta,
    ) -> Result<TxnMeta, TxnError> {
        let commit = m.state == TxnState::PrepareCommit;
        let marker = if commit {
            Marker::Commit
        } else {
            Marker::Abort
        };
        super::markers::write_all(
            broker,
            &m.partitions,
            m.producer_id,
            m.producer_epoch,
            marker,
        )
        .await?;
        if commit {
            let mut by_group: std::collections::BTreeMap<
                &str,
                Vec<(String, i32, CommittedOffset)>,
            > = Default::default();
            let now = now_ms();
            for o in &m.offsets {
                by_group.entry(&o.group).or_default().push((
                    o.topic.clone(),
                    o.partition,
                    CommittedOffset {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata.clone(),
                        commit_ms: now,
                    },
                ));
            }
            for (group, entries) in by_group {
                broker
                    .commit_offsets(group, entries)
                    .await
                    .map_err(|e| TxnError::Offsets(e.to_string()))?;
            }
        }
        m.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        m.partitions = BTreeSet::new();
        m.groups.clear();
        m.offsets.clear();
        m.update_ms = now_ms();
        self.persist(broker, id, &m).await?;
        metrics::counter!("kafka_transactions_completed_total", "result" => if commit { "commit" } else { "abort" }).increment(1);
        Ok(m)
    }

    /// Aborts transactions open longer than their timeout (bumping the epoch, so the late
    /// producer is fenced) and finishes transactions a restart left half-completed.
    pub(crate) async fn expire(&self, broker: &Broker) {
        let now = now_ms();
        for (id, m) in broker.store.transactions().all() {
            if !broker.coordinates_transaction(&id) {
                continue;
            }
            let overdue = m.state == TxnState::Ongoing && now - m.start_ms > m.timeout_ms as i64;
            let half_done = matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort);
            if !overdue && !half_done {
                continue;
            }
            let _g = self.lock(&id).await;
            let Some(mut m) = broker.store.transactions().get(&id) else {
                continue;
            };
            if m.state == TxnState::Ongoing && now_ms() - m.start_ms > m.timeout_ms as i64 {
                tracing::info!(transactional_id = %id, producer_id = m.producer_id, timeout_ms = m.timeout_ms, "aborting timed-out transaction");
                m.producer_epoch = m.producer_epoch.saturating_add(1);
                m.state = TxnState::PrepareAbort;
                m.update_ms = now_ms();
                if let Err(e) = self.persist(broker, &id, &m).await {
                    tracing::error!(transactional_id = %id, error = %e, "cannot record the abort of a timed-out transaction");
                    continue;
                }
            }
            if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                if let Err(e) = self.complete(broker, &id, m).await {
                    tracing::warn!(transactional_id = %id, error = %e, "completing transaction failed; retrying");
                }
            }
        }
    }
}

fn fresh(producer_id: i64, epoch: i16, timeout_ms: i32, now: i64) -> TxnMeta {
    TxnMeta {
        producer_id,
        producer_epoch: epoch,
        timeout_ms,
        state: TxnState::Empty,
        partitions: BTreeSet::new(),
        groups: BTreeSet::new(),
        offsets: Vec::new(),
        start_ms: -1,
        update_ms: now,
    }
}

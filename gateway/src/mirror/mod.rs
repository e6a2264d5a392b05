//! Mirror links: offset-preserving copies of another Kafka-compatible cluster's topics.
//!
//! A link pulls record batches from its source over the Kafka protocol (any cluster: this
//! server, Apache Kafka, Redpanda, Tansu) and appends them unchanged at the offsets the source
//! gave them into read-only mirror topics, through the same append path followers use. The
//! committed offsets of consumer groups (Kafka and RocketMQ alike: they share one offset
//! store) are synced for the mirrored topics, so after a failover every group resumes at the
//! same offset. Link definitions live in the replicated metadata; their tasks run on the
//! node (and, in a cluster, for the partitions it leads).

mod engine;
pub(crate) mod link;
mod offsets;
pub(crate) mod ops;
pub(crate) mod source;
pub(crate) mod status;

use crate::broker::Broker;
use link::{LinkChange, LinkSpec, LinkState, MirrorState};
use parking_lot::{Mutex, RwLock};
use status::LinkStatus;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

/// Why a link operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MirrorError {
    #[error("{0}")]
    Invalid(String),
    #[error("mirror link {0} does not exist")]
    UnknownLink(String),
    #[error("mirror link {0} already exists")]
    Exists(String),
    #[error("cannot persist mirror links in {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("{0}")]
    Source(String),
}

struct Runtime {
    spec: LinkSpec,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The node's mirror links and their running tasks.
pub(crate) struct Mirrors {
    state: RwLock<Arc<MirrorState>>,
    /// Single node: where the links are kept (`None` in a cluster).
    local: Option<PathBuf>,
    write_lock: tokio::sync::Mutex<()>,
    runtimes: tokio::sync::Mutex<HashMap<String, Runtime>>,
    statuses: Mutex<HashMap<String, Arc<LinkStatus>>>,
    changed: tokio::sync::Notify,
    broker: Mutex<Weak<Broker>>,
}

impl Mirrors {
    pub(crate) fn open(cfg: &crate::config::Config, clustered: bool) -> anyhow::Result<Arc<Self>> {
        let local = (!clustered).then(|| cfg.data_dir().join("meta").join("mirror-links.json"));
        let state: MirrorState = match &local {
            Some(p) => crate::meta_file::read_json(p)?,
            None => MirrorState::default(),
        };
        Ok(Arc::new(Self {
            state: RwLock::new(Arc::new(state)),
            local,
            write_lock: tokio::sync::Mutex::new(()),
            runtimes: tokio::sync::Mutex::new(HashMap::new()),
            statuses: Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
            broker: Mutex::new(Weak::new()),
        }))
    }

    /// The links now.
    pub(crate) fn state(&self) -> Arc<MirrorState> {
        self.state.read().clone()
    }

    /// Takes a new state (from the applied cluster metadata) if it differs.
    pub(crate) fn install(&self, state: &MirrorState) {
        if *self.state.read().as_ref() == *state {
            return;
        }
        *self.state.write() = Arc::new(state.clone());
        self.changed.notify_one();
    }

    /// The status of a link's partitions.
    pub(crate) fn status(&self, name: &str) -> Arc<LinkStatus> {
        self.statuses
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(LinkStatus::default()))
            .clone()
    }

    /// Starts the supervisor: it keeps one task per active link.
    pub(crate) fn start(self: &Arc<Self>, broker: &Arc<Broker>) {
        *self.broker.lock() = Arc::downgrade(broker);
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.reconcile().await;
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(1), me.changed.notified())
                        .await;
            }
        });
    }

    /// Starts tasks for active links and stops those of links that are gone, paused or failed
    /// over (or whose definition changed). Returns once stopped tasks have ended.
    async fn reconcile(&self) {
        let Some(broker) = self.broker.lock().upgrade() else {
            return;
        };
        let state = self.state();
        for (name, l) in &state.links {
            for st in [
                LinkState::Active,
                LinkState::Paused,
                LinkState::FailingOver,
                LinkState::FailedOver,
            ] {
                metrics::gauge!("mirror_link_state", "link" => name.clone(), "state" => st.label())
                    .set(if l.state == st { 1.0 } else { 0.0 });
            }
        }
        let mut runtimes = self.runtimes.lock().await;
        let stale: Vec<String> = runtimes
            .iter()
            .filter(|(name, rt)| {
                state
                    .links
                    .get(*name)
                    .is_none_or(|l| l.state != LinkState::Active || *l != rt.spec)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale {
            if let Some(rt) = runtimes.remove(&name) {
                let _ = rt.stop.send(true);
                let _ = rt.task.await;
                tracing::info!(link = %name, "mirror link stopped");
            }
        }
        for (name, spec) in state
            .links
            .iter()
            .filter(|(_, l)| l.state == LinkState::Active)
        {
            if runtimes.contains_key(name) {
                continue;
            }
            let (stop, stop_rx) = tokio::sync::watch::channel(false);
            let status = self.status(name);
            let task = tokio::spawn(engine::run(broker.clone(), spec.clone(), status, stop_rx));
            tracing::info!(link = %name, source = %spec.source, "mirror link started");
            runtimes.insert(
                name.clone(),
                Runtime {
                    spec: spec.clone(),
                    stop,
                    task,
                },
            );
        }
    }

    /// Stores a change (through the quorum in a cluster) and brings the tasks in line with
    /// it before returning: once a pause returns, no fetch of that link starts.
    pub(crate) async fn change(
        &self,
        broker: &Broker,
        change: LinkChange,
    ) -> Result<(), MirrorError> {
        match (&broker.cluster, &self.local) {
            (Some(c), _) => {
                match c
                    .propose(crate::cluster::state::Command::Mirror(change))
                    .await?
                {
                    crate::cluster::state::Outcome::Ok => {}
                    crate::cluster::state::Outcome::Rejected(_, m) => {
                        return Err(MirrorError::Invalid(m))
                    }
                }
            }
            (None, Some(path)) => {
                let _g = self.write_lock.lock().await;
                let mut state = (*self.state()).clone();
                state.apply(change);
                crate::meta_file::write_json(path, &state)
                    .await
                    .map_err(|e| MirrorError::Io(path.clone(), e))?;
                self.install(&state);
            }
            (None, None) => return Err(MirrorError::Invalid("no place to keep links".into())),
        }
        self.reconcile().await;
        Ok(())
    }

    /// A link's definition.
    pub(crate) fn link(&self, name: &str) -> Result<LinkSpec, MirrorError> {
        self.state()
            .links
            .get(name)
            .cloned()
            .ok_or_else(|| MirrorError::UnknownLink(name.to_string()))
    }
}

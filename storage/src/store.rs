//! The storage core of one node: topics and their partition logs, topic metadata persisted in
//! `meta/topics.json`, and the committed-offsets store.
//!
//! Layout under the data directory:
//! `meta/topics.json`, `offsets/offsets.journal`, `logs/<topic>-<partition>/<segments>`.

use crate::cleaner::CleanStats;
use crate::config::{validate_topic_config, LogConfig};
use crate::error::{Result, StorageError};
use crate::log::PartitionLog;
use crate::offsets::OffsetStore;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

/// Persistent description of a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Topic id (Kafka's topic UUID).
    pub id: Uuid,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor (1 on a single node).
    pub replication_factor: i16,
    /// Topic-level config overrides.
    pub configs: BTreeMap<String, String>,
    /// Whether the topic is internal (hidden from ordinary listings).
    #[serde(default)]
    pub internal: bool,
    /// Small number unique among this node's topics, never reused while the topic exists;
    /// RocketMQ's commit-log offsets and message ids are built from it.
    #[serde(default)]
    pub code: u32,
    /// Protocol-specific attributes (RocketMQ `perm`, `readQueueNums`, `writeQueueNums`, ...).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// A topic with its open partition logs. Replaced as a whole when it changes.
pub struct Topic {
    /// Its metadata.
    pub meta: TopicMeta,
    /// Partition logs, indexed by partition number.
    pub partitions: Vec<Arc<PartitionLog>>,
}

/// Broker-level settings that topic configs inherit (`log.retention.ms`, ...).
pub type BrokerDefaults = BTreeMap<String, String>;

/// The storage core.
pub struct Store {
    data_dir: PathBuf,
    broker: RwLock<BrokerDefaults>,
    topics: DashMap<String, Arc<Topic>>,
    meta_lock: Mutex<()>,
    offsets: OffsetStore,
    transactions: crate::transactions::TxnStore,
}

/// Checks a topic name: Kafka's rules, plus `%` and `|` which RocketMQ's retry and DLQ topics
/// use.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |why| Err(StorageError::InvalidTopic(name.to_string(), why));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 249 {
        return bad("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '%' | '|'))
    {
        return bad("only ASCII letters, digits, '.', '_', '-', '%' and '|' are allowed");
    }
    Ok(())
}

impl Store {
    /// Opens the store, loading topics and recovering every partition log.
    pub fn open(data_dir: &Path, broker: BrokerDefaults) -> Result<Self> {
        std::fs::create_dir_all(data_dir.join("meta"))?;
        std::fs::create_dir_all(data_dir.join("logs"))?;
        let sync_offsets = broker
            .get("log.flush.interval.messages")
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|v| v <= 1);
        let store = Self {
            data_dir: data_dir.to_path_buf(),
            broker: RwLock::new(broker),
            topics: DashMap::new(),
            meta_lock: Mutex::new(()),
            offsets: OffsetStore::open(&data_dir.join("offsets"), sync_offsets)?,
            transactions: crate::transactions::TxnStore::open(
                &data_dir.join("meta"),
                sync_offsets,
            )?,
        };
        let mut metas = store.load_meta()?;
        let mut next = metas.iter().map(|m| m.code).max().unwrap_or(0);
        for m in metas.iter_mut().filter(|m| m.code == 0) {
            next += 1;
            m.code = next;
        }
        for meta in metas {
            let config = store.resolve(&meta.configs);
            let mut partitions = Vec::with_capacity(meta.partitions.max(0) as usize);
            for p in 0..meta.partitions {
                partitions.push(Arc::new(PartitionLog::open(
                    &store.partition_dir(&meta.name, p),
                    &meta.name,
                    p,
                    config.clone(),
                )?));
            }
            store
                .topics
                .insert(meta.name.clone(), Arc::new(Topic { meta, partitions }));
        }
        Ok(store)
    }

    /// The smallest code no live topic uses, so codes stay as small as the topic count
    /// (RocketMQ ids pack them into a few bits). Caller holds meta_lock.
    fn next_code(&self) -> u32 {
        let used: std::collections::HashSet<u32> =
            self.topics.iter().map(|t| t.meta.code).collect();
        (1..).find(|c| !used.contains(c)).unwrap_or(u32::MAX)
    }

    fn meta_path(&self) -> PathBuf {
        self.data_dir.join("meta").join("topics.json")
    }

    fn load_meta(&self) -> Result<Vec<TopicMeta>> {
        let path = self.meta_path();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                StorageError::CorruptMetadata(path.display().to_string(), e.to_string())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes all topic metadata atomically (temp file, fsync, rename). Caller holds meta_lock.
    fn save_meta(&self) -> Result<()> {
        let mut metas: Vec<TopicMeta> = self.topics.iter().map(|t| t.meta.clone()).collect();
        metas.sort_by(|a, b| a.name.cmp(&b.name));
        let json = serde_json::to_vec_pretty(&metas)
            .map_err(|e| StorageError::CorruptMetadata("topics".into(), e.to_string()))?;
        let path = self.meta_path();
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir
            .join("logs")
            .join(format!("{topic}-{partition}"))
    }

    /// Resolves a topic's effective log config from its overrides and the broker defaults.
    pub fn resolve(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let broker = self.broker.read();
        LogConfig::resolve(overrides, &|k| broker.get(k).cloned())
    }

    /// A broker-level setting, if set.
    pub fn broker_setting(&self, key: &str) -> Option<String> {
        self.broker.read().get(key).cloned()
    }

    /// Changes (or with `None`, removes) a broker-level setting and re-resolves every log.
    pub fn set_broker_setting(&self, key: &str, value: Option<String>) {
        {
            let mut b = self.broker.write();
            match value {
                Some(v) => b.insert(key.to_string(), v),
                None => b.remove(key),
            };
        }
        for t in self.topics.iter() {
            let c = self.resolve(&t.meta.configs);
            for p in &t.partitions {
                p.set_config(c.clone());
            }
        }
    }

    /// Creates a topic. With `validate_only` nothing is changed.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicMeta> {
        validate_topic_name(name)?;
        if partitions < 1 {
            return Err(StorageError::InvalidPartitions(format!(
                "number of partitions must be at least 1, got {partitions}"
            )));
        }
        for (k, v) in &configs {
            validate_topic_config(k, v)?;
        }
        let _g = self.meta_lock.lock();
        if self.topics.contains_key(name) {
            return Err(StorageError::TopicExists(name.to_string()));
        }
        let meta = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
            internal: false,
            code: self.next_code(),
            attributes: BTreeMap::new(),
        };
        if validate_only {
            return Ok(meta);
        }
        let config = self.resolve(&meta.configs);
        let mut logs = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let dir = self.partition_dir(name, p);
            // A leftover directory from a crash during an earlier delete must not resurface.
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            logs.push(Arc::new(PartitionLog::open(&dir, name, p, config.clone())?));
        }
        self.topics.insert(
            name.to_string(),
            Arc::new(Topic {
                meta: meta.clone(),
                partitions: logs,
            }),
        );
        self.save_meta()?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(meta)
    }

    /// Deletes a topic, its logs and every committed offset on it.
    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta> {
        let _g = self.meta_lock.lock();
        let Some((_, topic)) = self.topics.remove(name) else {
            return Err(StorageError::UnknownTopic(name.to_string()));
        };
        self.save_meta()?;
        for p in &topic.partitions {
            p.delete()?;
        }
        self.offsets.delete_topic(name)?;
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.meta.clone())
    }

    /// Grows a topic to `total` partitions.
    pub fn create_partitions(&self, name: &str, total: i32, validate_only: bool) -> Result<()> {
        let _g = self.meta_lock.lock();
        let Some(old) = self.topics.get(name).map(|t| t.clone()) else {
            return Err(StorageError::UnknownTopic(name.to_string()));
        };
        if total <= old.meta.partitions {
            return Err(StorageError::InvalidPartitions(format!(
                "topic currently has {} partitions, {} would not be an increase",
                old.meta.partitions, total
            )));
        }
        if validate_only {
            return Ok(());
        }
        let config = self.resolve(&old.meta.configs);
        let mut partitions = old.partitions.clone();
        for p in old.meta.partitions..total {
            let dir = self.partition_dir(name, p);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            partitions.push(Arc::new(PartitionLog::open(&dir, name, p, config.clone())?));
        }
        let mut meta = old.meta.clone();
        meta.partitions = total;
        self.topics
            .insert(name.to_string(), Arc::new(Topic { meta, partitions }));
        self.save_meta()
    }

    /// Replaces a topic's config overrides (validated) and applies them to its logs.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        for (k, v) in &configs {
            validate_topic_config(k, v)?;
        }
        let _g = self.meta_lock.lock();
        let Some(old) = self.topics.get(name).map(|t| t.clone()) else {
            return Err(StorageError::UnknownTopic(name.to_string()));
        };
        if validate_only {
            return Ok(());
        }
        let mut meta = old.meta.clone();
        meta.configs = configs;
        let config = self.resolve(&meta.configs);
        for p in &old.partitions {
            p.set_config(config.clone());
        }
        self.topics.insert(
            name.to_string(),
            Arc::new(Topic {
                meta,
                partitions: old.partitions.clone(),
            }),
        );
        self.save_meta()
    }

    /// Replaces a topic's protocol attributes.
    pub fn set_topic_attributes(
        &self,
        name: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<()> {
        let _g = self.meta_lock.lock();
        let Some(old) = self.topics.get(name).map(|t| t.clone()) else {
            return Err(StorageError::UnknownTopic(name.to_string()));
        };
        let mut meta = old.meta.clone();
        meta.attributes = attributes;
        self.topics.insert(
            name.to_string(),
            Arc::new(Topic {
                meta,
                partitions: old.partitions.clone(),
            }),
        );
        self.save_meta()
    }

    /// Makes the local copy of a topic match `meta` as decided by the cluster's metadata:
    /// creates it (with the given id and code), recreates it if the id changed, adds
    /// partitions, and takes over configs and attributes. Returns whether anything changed.
    pub fn adopt_topic(&self, meta: &TopicMeta) -> Result<bool> {
        let existing = self.topics.get(&meta.name).map(|t| t.clone());
        if let Some(old) = &existing {
            if old.meta.id != meta.id {
                self.delete_topic(&meta.name)?;
            }
        }
        let _g = self.meta_lock.lock();
        let current = self.topics.get(&meta.name).map(|t| t.clone());
        let config = self.resolve(&meta.configs);
        let (mut partitions, changed) = match current {
            Some(old) if old.meta == *meta => return Ok(false),
            Some(old) => (old.partitions.clone(), true),
            None => (Vec::new(), true),
        };
        for p in partitions.len() as i32..meta.partitions {
            let dir = self.partition_dir(&meta.name, p);
            if dir.exists() && existing.as_ref().is_none_or(|o| o.meta.id != meta.id) {
                std::fs::remove_dir_all(&dir)?;
            }
            partitions.push(Arc::new(PartitionLog::open(
                &dir,
                &meta.name,
                p,
                config.clone(),
            )?));
        }
        for p in &partitions {
            p.set_config(config.clone());
        }
        self.topics.insert(
            meta.name.clone(),
            Arc::new(Topic {
                meta: meta.clone(),
                partitions,
            }),
        );
        self.save_meta()?;
        Ok(changed)
    }

    /// A topic by its numeric code.
    pub fn topic_by_code(&self, code: u32) -> Option<Arc<Topic>> {
        self.topics
            .iter()
            .find(|t| t.meta.code == code)
            .map(|t| t.clone())
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.get(name).map(|t| t.clone())
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .iter()
            .find(|t| t.meta.id == id)
            .map(|t| t.clone())
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<Arc<Topic>> = self.topics.iter().map(|t| t.clone()).collect();
        v.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        v
    }

    /// One partition's log.
    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<PartitionLog>> {
        let t = self
            .topics
            .get(topic)
            .ok_or_else(|| StorageError::UnknownTopic(topic.to_string()))?;
        usize::try_from(partition)
            .ok()
            .and_then(|p| t.partitions.get(p).cloned())
            .ok_or_else(|| StorageError::UnknownPartition(topic.to_string(), partition))
    }

    /// The committed-offsets store.
    pub fn offsets(&self) -> &OffsetStore {
        &self.offsets
    }

    /// The transaction coordinator's durable table.
    pub fn transactions(&self) -> &crate::transactions::TxnStore {
        &self.transactions
    }

    /// Data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Background work: retention and interval flushes over every partition.
    pub fn maintenance(&self, now_ms: i64, retention: bool) {
        for t in self.topics() {
            for p in &t.partitions {
                if retention {
                    if let Err(e) = p.enforce_retention(now_ms) {
                        tracing::error!(topic = %t.meta.name, partition = p.partition(), error = %e, "retention failed");
                    }
                }
                if let Err(e) = p.maintain_key_index() {
                    tracing::error!(topic = %t.meta.name, partition = p.partition(), error = %e, "key index failed");
                }
                if let Err(e) = p.flush_if_due(now_ms) {
                    tracing::error!(topic = %t.meta.name, partition = p.partition(), error = %e, "flush failed");
                }
            }
        }
    }

    /// One cleaning pass over every compacted partition that is due; what each pass did.
    pub fn clean(&self, now_ms: i64, io_bytes_per_sec: f64) -> Vec<(String, i32, CleanStats)> {
        let mut out = Vec::new();
        for t in self.topics() {
            for p in &t.partitions {
                match p.clean(now_ms, io_bytes_per_sec) {
                    Ok(Some(stats)) => out.push((t.meta.name.clone(), p.partition(), stats)),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(topic = %t.meta.name, partition = p.partition(), error = %e, "log cleaning failed");
                    }
                }
            }
        }
        out
    }

    /// fsyncs every log and the offsets journal (clean shutdown).
    pub fn close(&self) -> Result<()> {
        for t in self.topics() {
            for p in &t.partitions {
                p.close()?;
            }
        }
        self.offsets.sync()
    }
}

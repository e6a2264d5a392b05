//! Broker configs changed at run time through AlterConfigs / IncrementalAlterConfigs
//! (Kafka's DYNAMIC_BROKER_CONFIG and DYNAMIC_DEFAULT_BROKER_CONFIG), persisted so that they
//! survive a restart.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Dynamic broker configs of this node.
pub(crate) struct DynamicConfig {
    path: PathBuf,
    values: Mutex<BTreeMap<String, String>>,
}

impl DynamicConfig {
    /// Loads persisted dynamic configs (none if the file is absent or unreadable).
    pub(crate) fn open(path: PathBuf) -> Self {
        let values = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            path,
            values: Mutex::new(values),
        }
    }

    /// A dynamic value.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        self.values.lock().get(key).cloned()
    }

    /// All dynamic values.
    pub(crate) fn all(&self) -> BTreeMap<String, String> {
        self.values.lock().clone()
    }

    /// Replaces the dynamic values and persists them.
    pub(crate) fn replace(&self, values: BTreeMap<String, String>) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(&values).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, json)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        *self.values.lock() = values;
        Ok(())
    }
}

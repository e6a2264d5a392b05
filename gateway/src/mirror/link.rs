//! Mirror link definitions: what a link pulls (source cluster, topic and group filters) and
//! where it stands (active, paused, failed over). Replicated with the cluster metadata, or
//! kept in `meta/mirror-links.json` on one node; every change is a [`LinkChange`].

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The topic attribute that marks a mirror topic (its value is the link's name): such a
/// topic is read-only until it is failed over.
pub(crate) const MIRROR_ATTRIBUTE: &str = "mirror.link";

/// The prefix of a RocketMQ group's retry topic.
const RETRY_PREFIX: &str = "%RETRY%";

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LinkState {
    Active,
    Paused,
    FailingOver,
    FailedOver,
}

impl LinkState {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Paused => "PAUSED",
            Self::FailingOver => "FAILING_OVER",
            Self::FailedOver => "FAILED_OVER",
        }
    }
}

/// One link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LinkSpec {
    pub(crate) name: String,
    /// Bootstrap servers of the source cluster.
    pub(crate) source: String,
    /// Topics to mirror: regexes matching whole names (none: every topic not starting with
    /// `__`).
    pub(crate) topics: Vec<String>,
    /// Topics never mirrored, regexes matching whole names.
    pub(crate) exclude: Vec<String>,
    /// Consumer groups whose committed offsets are synced (regex; `None`: all).
    pub(crate) groups: Option<String>,
    /// Client settings for the source: `security.protocol`, `ssl.truststore.location`,
    /// `sasl.mechanism`, `sasl.username`, `sasl.password`, ...
    pub(crate) source_config: BTreeMap<String, String>,
    pub(crate) state: LinkState,
    /// Topics failed over one by one while the link goes on with the others.
    #[serde(default)]
    pub(crate) failed_over: BTreeSet<String>,
}

/// Every link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MirrorState {
    #[serde(default)]
    pub(crate) links: BTreeMap<String, LinkSpec>,
}

/// A change to the links.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum LinkChange {
    Create(LinkSpec),
    SetState { name: String, state: LinkState },
    FailoverTopic { name: String, topic: String },
    Delete { name: String },
}

impl MirrorState {
    /// Applies a change (deterministic: the same on every node).
    pub(crate) fn apply(&mut self, change: LinkChange) {
        match change {
            LinkChange::Create(spec) => {
                self.links.insert(spec.name.clone(), spec);
            }
            LinkChange::SetState { name, state } => {
                if let Some(l) = self.links.get_mut(&name) {
                    l.state = state;
                }
            }
            LinkChange::FailoverTopic { name, topic } => {
                if let Some(l) = self.links.get_mut(&name) {
                    l.failed_over.insert(topic);
                }
            }
            LinkChange::Delete { name } => {
                self.links.remove(&name);
            }
        }
    }
}

/// A link's compiled topic and group filters.
pub(crate) struct Filters {
    include: Vec<regex::Regex>,
    exclude: Vec<regex::Regex>,
    groups: Option<regex::Regex>,
}

fn whole(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("invalid regex {pattern:?}: {e}"))
}

impl Filters {
    pub(crate) fn new(spec: &LinkSpec) -> Result<Self, String> {
        Ok(Self {
            include: spec
                .topics
                .iter()
                .map(|p| whole(p))
                .collect::<Result<_, _>>()?,
            exclude: spec
                .exclude
                .iter()
                .map(|p| whole(p))
                .collect::<Result<_, _>>()?,
            groups: spec.groups.as_deref().map(whole).transpose()?,
        })
    }

    /// Whether the link mirrors `topic`. A RocketMQ group's `%RETRY%` topic goes with the
    /// group: it is mirrored when the group's offsets are synced (unless excluded), so that
    /// messages waiting for redelivery are there after a failover.
    pub(crate) fn topic(&self, topic: &str) -> bool {
        let retry_of_group = topic
            .strip_prefix(RETRY_PREFIX)
            .is_some_and(|g| self.group(g));
        let included = if retry_of_group {
            true
        } else if self.include.is_empty() {
            !topic.starts_with("__")
        } else {
            self.include.iter().any(|r| r.is_match(topic))
        };
        included && !self.exclude.iter().any(|r| r.is_match(topic))
    }

    /// Whether the link syncs the offsets of `group`.
    pub(crate) fn group(&self, group: &str) -> bool {
        self.groups.as_ref().is_none_or(|r| r.is_match(group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(topics: &[&str], exclude: &[&str], groups: Option<&str>) -> LinkSpec {
        LinkSpec {
            name: "l".into(),
            source: "h:1".into(),
            topics: topics.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            groups: groups.map(str::to_string),
            source_config: BTreeMap::new(),
            state: LinkState::Active,
            failed_over: BTreeSet::new(),
        }
    }

    #[test]
    fn filters_match_whole_names() -> Result<(), String> {
        let f = Filters::new(&spec(
            &["orders.*", "payments"],
            &["orders-tmp"],
            Some("g-.*"),
        ))?;
        assert!(f.topic("orders"));
        assert!(f.topic("orders-eu"));
        assert!(!f.topic("orders-tmp"));
        assert!(f.topic("payments"));
        assert!(!f.topic("payments-eu"));
        assert!(!f.topic("xorders"));
        assert!(f.group("g-1") && !f.group("other"));
        assert!(f.topic("%RETRY%g-1") && !f.topic("%RETRY%other"));
        let all = Filters::new(&spec(&[], &[], None))?;
        assert!(all.topic("anything") && !all.topic("__consumer_offsets") && all.group("x"));
        assert!(Filters::new(&spec(&["("], &[], None)).is_err());
        Ok(())
    }
}

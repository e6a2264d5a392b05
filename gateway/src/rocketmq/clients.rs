//! Live RocketMQ clients: their connections, producer groups and consumer groups with
//! subscriptions, as heartbeats report them. Consumers are told when their group changes
//! (NOTIFY_CONSUMER_IDS_CHANGED), and transaction check-backs go to a producer of the group.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A client silent for this long is dropped (RocketMQ's channel expiry).
pub(crate) const CLIENT_EXPIRY: Duration = Duration::from_secs(120);

/// A connection that the broker can push frames to.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) tx: mpsc::Sender<Bytes>,
}

/// One subscription of a consumer group to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) expression: String,
    pub(crate) expression_type: String,
    /// Tags to deliver; empty means every message.
    pub(crate) tags: HashSet<String>,
    pub(crate) sub_version: i64,
}

impl Subscription {
    /// Parses a TAG expression (`*`, `TagA || TagB`).
    pub(crate) fn from_expression(
        expression: &str,
        expression_type: &str,
        sub_version: i64,
    ) -> Self {
        let tags = if expression.trim().is_empty() || expression.trim() == "*" {
            HashSet::new()
        } else {
            expression
                .split("||")
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        };
        Self {
            expression: expression.to_string(),
            expression_type: if expression_type.is_empty() {
                "TAG".into()
            } else {
                expression_type.to_string()
            },
            tags,
            sub_version,
        }
    }

    /// Whether a message with these tags passes the filter.
    pub(crate) fn matches(&self, tags: Option<&str>) -> bool {
        self.tags.is_empty() || tags.is_some_and(|t| self.tags.contains(t))
    }
}

/// A consumer as its heartbeat describes it.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerInfo {
    pub(crate) conn: ConnHandle,
    pub(crate) last_seen: Instant,
    pub(crate) consume_type: String,
    pub(crate) message_model: String,
    pub(crate) consume_from_where: String,
    pub(crate) subscriptions: BTreeMap<String, Subscription>,
    pub(crate) language: String,
    pub(crate) version: i32,
}

#[derive(Default)]
struct State {
    /// group -> client id -> consumer.
    consumers: HashMap<String, BTreeMap<String, ConsumerInfo>>,
    /// group -> client id -> (connection, last heartbeat).
    producers: HashMap<String, BTreeMap<String, (ConnHandle, Instant)>>,
}

/// The registry of live clients.
#[derive(Default)]
pub(crate) struct Clients {
    state: Mutex<State>,
}

/// What a consumer heartbeat carries for one group.
pub(crate) struct ConsumerHeartbeat {
    pub(crate) group: String,
    pub(crate) consume_type: String,
    pub(crate) message_model: String,
    pub(crate) consume_from_where: String,
    pub(crate) subscriptions: BTreeMap<String, Subscription>,
}

impl Clients {
    /// Records a heartbeat. Returns the consumer groups whose membership changed.
    pub(crate) fn heartbeat(
        &self,
        conn: &ConnHandle,
        client_id: &str,
        producer_groups: &[String],
        consumers: Vec<ConsumerHeartbeat>,
        language: &str,
        version: i32,
    ) -> Vec<String> {
        let now = Instant::now();
        let mut s = self.state.lock();
        for g in producer_groups {
            s.producers
                .entry(g.clone())
                .or_default()
                .insert(client_id.to_string(), (conn.clone(), now));
        }
        let mut changed = Vec::new();
        for c in consumers {
            let members = s.consumers.entry(c.group.clone()).or_default();
            let is_new = !members.contains_key(client_id);
            members.insert(
                client_id.to_string(),
                ConsumerInfo {
                    conn: conn.clone(),
                    last_seen: now,
                    consume_type: c.consume_type,
                    message_model: c.message_model,
                    consume_from_where: c.consume_from_where,
                    subscriptions: c.subscriptions,
                    language: language.to_string(),
                    version,
                },
            );
            if is_new {
                changed.push(c.group);
            }
        }
        changed
    }

    /// Removes a client from the named groups. Returns consumer groups that changed.
    pub(crate) fn unregister(
        &self,
        client_id: &str,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) -> Vec<String> {
        let mut s = self.state.lock();
        if let Some(g) = producer_group {
            if let Some(m) = s.producers.get_mut(g) {
                m.remove(client_id);
            }
        }
        let mut changed = Vec::new();
        if let Some(g) = consumer_group {
            if let Some(m) = s.consumers.get_mut(g) {
                if m.remove(client_id).is_some() {
                    changed.push(g.to_string());
                }
                if m.is_empty() {
                    s.consumers.remove(g);
                }
            }
        }
        changed
    }

    /// Drops everything registered through a closed connection, or silent for too long.
    /// Returns consumer groups that changed.
    pub(crate) fn remove_where(&self, gone: impl Fn(&ConnHandle, Instant) -> bool) -> Vec<String> {
        let mut s = self.state.lock();
        let mut changed = Vec::new();
        for (g, members) in s.consumers.iter_mut() {
            let before = members.len();
            members.retain(|_, c| !gone(&c.conn, c.last_seen));
            if members.len() != before {
                changed.push(g.clone());
            }
        }
        s.consumers.retain(|_, m| !m.is_empty());
        for members in s.producers.values_mut() {
            members.retain(|_, (c, seen)| !gone(c, *seen));
        }
        s.producers.retain(|_, m| !m.is_empty());
        changed
    }

    /// Client ids of a consumer group, sorted.
    pub(crate) fn consumer_ids(&self, group: &str) -> Vec<String> {
        self.state
            .lock()
            .consumers
            .get(group)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every consumer of a group.
    pub(crate) fn consumers(&self, group: &str) -> Vec<(String, ConsumerInfo)> {
        self.state
            .lock()
            .consumers
            .get(group)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Every consumer group with live members, and the topics each subscribes to.
    pub(crate) fn consumer_groups(&self) -> BTreeMap<String, HashSet<String>> {
        self.state
            .lock()
            .consumers
            .iter()
            .map(|(g, m)| {
                (
                    g.clone(),
                    m.values()
                        .flat_map(|c| c.subscriptions.keys().cloned())
                        .collect(),
                )
            })
            .collect()
    }

    /// The group's subscription to a topic: the newest version any member reported, as
    /// RocketMQ keeps one subscription table per group.
    pub(crate) fn subscription(&self, group: &str, topic: &str) -> Option<Subscription> {
        self.state.lock().consumers.get(group).and_then(|m| {
            m.values()
                .filter_map(|c| c.subscriptions.get(topic))
                .max_by_key(|s| s.sub_version)
                .cloned()
        })
    }

    /// Connections of a consumer group's members.
    pub(crate) fn consumer_conns(&self, group: &str) -> Vec<ConnHandle> {
        self.state
            .lock()
            .consumers
            .get(group)
            .map(|m| m.values().map(|c| c.conn.clone()).collect())
            .unwrap_or_default()
    }

    /// A live producer connection of the group (for transaction check-backs).
    pub(crate) fn producer_conn(&self, group: &str) -> Option<ConnHandle> {
        self.state.lock().producers.get(group).and_then(|m| {
            m.values()
                .max_by_key(|(_, seen)| *seen)
                .map(|(c, _)| c.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_expressions() {
        let s = Subscription::from_expression("TagA || TagB", "TAG", 1);
        assert!(s.matches(Some("TagA")) && s.matches(Some("TagB")));
        assert!(!s.matches(Some("TagC")) && !s.matches(None));
        let all = Subscription::from_expression("*", "", 1);
        assert!(all.matches(None) && all.matches(Some("x")));
    }

    #[test]
    fn membership_changes() {
        let (tx, _rx) = mpsc::channel(1);
        let conn = ConnHandle {
            id: 1,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            tx,
        };
        let c = Clients::default();
        let hb = || ConsumerHeartbeat {
            group: "g".into(),
            consume_type: "CONSUME_PASSIVELY".into(),
            message_model: "CLUSTERING".into(),
            consume_from_where: "CONSUME_FROM_LAST_OFFSET".into(),
            subscriptions: BTreeMap::new(),
        };
        assert_eq!(
            c.heartbeat(&conn, "c1", &[], vec![hb()], "JAVA", 401),
            vec!["g".to_string()]
        );
        assert!(c
            .heartbeat(&conn, "c1", &[], vec![hb()], "JAVA", 401)
            .is_empty());
        assert_eq!(c.consumer_ids("g"), vec!["c1".to_string()]);
        assert_eq!(c.remove_where(|h, _| h.id == 1), vec!["g".to_string()]);
        assert!(c.consumer_ids("g").is_empty());
    }
}

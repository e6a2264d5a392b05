//! Name-server requests, answered from this node's metadata: topic routes (including the
//! default-topic route clients use before a topic exists), cluster info, topic lists, KV config.

use super::{ok, reply, RocketMq};
use codecs::rocketmq::codes::response as rs;
use codecs::rocketmq::RemotingCommand;
use serde_json::json;
use std::collections::BTreeMap;
use storage::Topic;

/// RocketMQ's template topic for auto-creation.
pub(crate) const DEFAULT_TOPIC: &str = "TBW102";
/// Read and write permission.
pub(crate) const PERM_RW: i64 = 6;
/// Read, write and inherit permission (the default topic's).
const PERM_RWI: i64 = 7;

/// A topic's RocketMQ queue view on a broker holding `queues` of its partitions:
/// (read queues, write queues, perm, sys flag).
fn view_with(t: &Topic, queues: i64) -> (i64, i64, i64, i64) {
    let attr = |k: &str, d: i64| {
        t.meta
            .attributes
            .get(k)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(d)
    };
    (
        attr("readQueueNums", queues).min(queues),
        attr("writeQueueNums", queues).min(queues),
        attr("perm", PERM_RW),
        attr("topicSysFlag", 0),
    )
}

/// A topic's RocketMQ queue view on this broker: (read queues, write queues, perm, sys flag).
pub(crate) fn queue_view(rmq: &RocketMq, t: &Topic) -> (i64, i64, i64, i64) {
    view_with(t, rmq.queue_partitions(&t.meta.name).len() as i64)
}

/// One broker of a route: name, master address and its queue counts.
struct RouteBroker {
    name: String,
    addr: String,
    view: (i64, i64, i64, i64),
}

fn broker_data(rmq: &RocketMq, b: &RouteBroker) -> serde_json::Value {
    json!({
        "brokerAddrs": { "0": b.addr },
        "brokerName": b.name,
        "cluster": rmq.cluster,
        "enableActingMaster": false,
    })
}

fn route_body(rmq: &RocketMq, brokers: &[RouteBroker]) -> Vec<u8> {
    // Standard JSON with quoted keys: every client parses it (fastjson's unquoted integer
    // keys break some), plus the fields newer clients expect.
    let body = json!({
        "brokerDatas": brokers.iter().map(|b| broker_data(rmq, b)).collect::<Vec<_>>(),
        "filterServerTable": {},
        "queueDatas": brokers.iter().map(|b| json!({
            "brokerName": b.name,
            "perm": b.view.2,
            "readQueueNums": b.view.0,
            "topicSysFlag": b.view.3,
            "writeQueueNums": b.view.1,
        })).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The brokers clients can reach as (node, name, master address): every live node at its own
/// address, and every dead node that has a stand-in at the stand-in's standby address; this
/// node alone on the single-node default.
fn live_brokers(rmq: &RocketMq) -> Vec<(i32, String, String)> {
    match &rmq.broker.cluster {
        None => vec![(
            rmq.broker.node_id,
            rmq.broker_name.clone(),
            rmq.broker_addr.to_string(),
        )],
        Some(c) => {
            let state = c.state();
            let stand_ins = state.stand_ins();
            state
                .nodes
                .values()
                .filter_map(|n| {
                    let name = if n.info.rocketmq_name.is_empty() {
                        format!("broker-{}", n.info.id)
                    } else {
                        n.info.rocketmq_name.clone()
                    };
                    let addr = if !n.fenced {
                        n.info.rocketmq_addr.clone()
                    } else {
                        let s = stand_ins.get(&n.info.id)?;
                        state.nodes.get(s)?.info.rocketmq_standby_addr.clone()
                    };
                    Some((n.info.id, name, addr))
                })
                .collect()
        }
    }
}

pub(super) fn route(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let topic = cmd.ext("topic").unwrap_or("");
    if let Some(t) = rmq.broker.store.topic(topic) {
        let brokers: Vec<RouteBroker> = match &rmq.broker.cluster {
            None => vec![RouteBroker {
                name: rmq.broker_name.clone(),
                addr: rmq.broker_addr.to_string(),
                view: queue_view(rmq, &t),
            }],
            Some(c) => {
                let state = c.state();
                live_brokers(rmq)
                    .into_iter()
                    .filter_map(|(id, name, addr)| {
                        let n = super::queues::preferred_by(&state, topic, id).len() as i64;
                        (n > 0).then(|| RouteBroker {
                            name,
                            addr,
                            view: view_with(&t, n),
                        })
                    })
                    .collect()
            }
        };
        if !brokers.is_empty() {
            return ok().with_body(route_body(rmq, &brokers));
        }
    } else if topic == DEFAULT_TOPIC && rmq.auto_create {
        let brokers: Vec<RouteBroker> = live_brokers(rmq)
            .into_iter()
            .map(|(_, name, addr)| RouteBroker {
                name,
                addr,
                view: (8, 8, PERM_RWI, 0),
            })
            .collect();
        return ok().with_body(route_body(rmq, &brokers));
    }
    reply(
        rs::TOPIC_NOT_EXIST,
        format!("No topic route info in name server for the topic: {topic}\nSee http://rocketmq.apache.org/docs/faq/ for further details."),
    )
}

pub(super) fn cluster_info(rmq: &RocketMq) -> RemotingCommand {
    let brokers = live_brokers(rmq);
    let mut table = serde_json::Map::new();
    for (_, name, addr) in &brokers {
        table.insert(
            name.clone(),
            json!({
                "brokerAddrs": { "0": addr },
                "brokerName": name,
                "cluster": rmq.cluster,
                "enableActingMaster": false,
            }),
        );
    }
    let names: Vec<&String> = brokers.iter().map(|(_, n, _)| n).collect();
    let body = json!({
        "brokerAddrTable": table,
        "clusterAddrTable": { rmq.cluster.clone(): names },
    });
    ok().with_body(serde_json::to_vec(&body).unwrap_or_default())
}

pub(super) fn topic_list(rmq: &RocketMq) -> RemotingCommand {
    let mut names: Vec<String> = rmq
        .broker
        .store
        .topics()
        .iter()
        .map(|t| t.meta.name.clone())
        .collect();
    // The real name server lists the cluster and broker names as topics too.
    names.push(rmq.cluster.clone());
    names.extend(live_brokers(rmq).into_iter().map(|(_, n, _)| n));
    if rmq.auto_create {
        names.push(DEFAULT_TOPIC.to_string());
    }
    names.sort();
    names.dedup();
    ok().with_body(serde_json::to_vec(&json!({ "topicList": names })).unwrap_or_default())
}

/// The name server's KV config (namespace -> key -> value), persisted in
/// `meta/rocketmq-kv.json` (RocketMQ keeps it in `kvConfig.json`).
pub(crate) struct KvConfig {
    path: std::path::PathBuf,
    table: parking_lot::Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl KvConfig {
    pub(crate) fn open(path: std::path::PathBuf) -> Self {
        let table = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            path,
            table: parking_lot::Mutex::new(table),
        }
    }

    fn save(&self, table: &BTreeMap<String, BTreeMap<String, String>>) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(table).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &self.path)
    }
}

pub(super) fn get_kv_config(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let ns = cmd.ext("namespace").unwrap_or("");
    let key = cmd.ext("key").unwrap_or("");
    let value = rmq
        .kv
        .table
        .lock()
        .get(ns)
        .and_then(|m| m.get(key))
        .cloned();
    match value {
        Some(v) => ok().with_ext("value", v),
        None => reply(
            rs::QUERY_NOT_FOUND,
            format!("No config item, Namespace: {ns} Key: {key}"),
        ),
    }
}

pub(super) fn put_kv_config(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let (Some(ns), Some(key), Some(value)) =
        (cmd.ext("namespace"), cmd.ext("key"), cmd.ext("value"))
    else {
        return reply(rs::SYSTEM_ERROR, "namespace, key and value are required");
    };
    let mut table = rmq.kv.table.lock();
    table
        .entry(ns.to_string())
        .or_default()
        .insert(key.to_string(), value.to_string());
    match rmq.kv.save(&table) {
        Ok(()) => ok(),
        Err(e) => reply(rs::SYSTEM_ERROR, e.to_string()),
    }
}

pub(super) fn delete_kv_config(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let ns = cmd.ext("namespace").unwrap_or("");
    let key = cmd.ext("key").unwrap_or("");
    let mut table = rmq.kv.table.lock();
    if let Some(m) = table.get_mut(ns) {
        m.remove(key);
        if m.is_empty() {
            table.remove(ns);
        }
    }
    match rmq.kv.save(&table) {
        Ok(()) => ok(),
        Err(e) => reply(rs::SYSTEM_ERROR, e.to_string()),
    }
}

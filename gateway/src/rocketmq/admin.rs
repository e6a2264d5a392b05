//! Admin requests `mqadmin` and the admin clients use: create/update and delete topics, all
//! topic configs, broker runtime info, consumer connections, consume stats, topic stats and
//! which groups consume a topic.

use super::namesrv::{queue_view, PERM_RW};
use super::offsets::now_ms;
use super::{ok, reply, RocketMq};
use codecs::rocketmq::codes::response as rs;
use codecs::rocketmq::RemotingCommand;
use serde_json::json;
use std::collections::BTreeSet;

fn int(cmd: &RemotingCommand, key: &str, default: i64) -> i64 {
    cmd.ext(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// UPDATE_AND_CREATE_TOPIC: `writeQueueNums`/`readQueueNums` queues on this broker (partitions
/// are added when the count grows; they are never removed), `perm` and flags as attributes.
pub(super) async fn create_topic(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let store = &rmq.broker.store;
    let topic = cmd.ext("topic").unwrap_or("").to_string();
    if topic == super::namesrv::DEFAULT_TOPIC {
        return reply(
            rs::SYSTEM_ERROR,
            format!("The topic[{topic}] is conflict with system reserved words."),
        );
    }
    let read = int(cmd, "readQueueNums", 16);
    let write = int(cmd, "writeQueueNums", 16);
    if read <= 0 || write <= 0 || read > 1024 || write > 1024 {
        return reply(rs::SYSTEM_ERROR, "queue numbers must be between 1 and 1024");
    }
    let queues = read.max(write) as i32;
    let broker = &rmq.broker;
    let result = broker.ensure_queues(&topic, queues).await;
    if let Err(e) = result {
        if !e.is_exists() {
            tracing::warn!(%topic, error = %e, "UPDATE_AND_CREATE_TOPIC failed");
            return reply(rs::SYSTEM_ERROR, e.to_string());
        }
    }
    let mut attrs = store
        .topic(&topic)
        .map(|t| t.meta.attributes.clone())
        .unwrap_or_default();
    attrs.insert("readQueueNums".into(), read.to_string());
    attrs.insert("writeQueueNums".into(), write.to_string());
    attrs.insert("perm".into(), int(cmd, "perm", PERM_RW).to_string());
    attrs.insert(
        "topicSysFlag".into(),
        int(cmd, "topicSysFlag", 0).to_string(),
    );
    attrs.insert(
        "order".into(),
        cmd.ext("order").unwrap_or("false").to_string(),
    );
    if let Some(f) = cmd.ext("topicFilterType") {
        attrs.insert("topicFilterType".into(), f.to_string());
    }
    match broker.set_topic_attributes(&topic, attrs).await {
        Ok(()) => ok(),
        Err(e) => reply(rs::SYSTEM_ERROR, e.to_string()),
    }
}

pub(super) async fn delete_topic(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let topic = cmd.ext("topic").unwrap_or("");
    match rmq.broker.delete_topic(topic).await {
        // Deleting an absent topic succeeds, as in RocketMQ.
        Ok(_) => ok(),
        Err(e)
            if e.code() == kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code() =>
        {
            ok()
        }
        Err(e) => reply(rs::SYSTEM_ERROR, e.to_string()),
    }
}

fn topic_config(rmq: &RocketMq, name: &str, t: &storage::Topic) -> serde_json::Value {
    let (read, write, perm, sys) = queue_view(rmq, t);
    json!({
        "order": t.meta.attributes.get("order").map(|v| v == "true").unwrap_or(false),
        "perm": perm,
        "readQueueNums": read,
        "topicFilterType": t.meta.attributes.get("topicFilterType").cloned().unwrap_or_else(|| "SINGLE_TAG".into()),
        "topicName": name,
        "topicSysFlag": sys,
        "writeQueueNums": write,
    })
}

pub(super) fn all_topic_config(rmq: &RocketMq) -> RemotingCommand {
    let table: serde_json::Map<String, serde_json::Value> = rmq
        .broker
        .store
        .topics()
        .iter()
        .map(|t| (t.meta.name.clone(), topic_config(rmq, &t.meta.name, t)))
        .collect();
    let body = json!({
        "dataVersion": { "counter": table.len(), "timestamp": now_ms() },
        "topicConfigTable": table,
    });
    ok().with_body(serde_json::to_vec(&body).unwrap_or_default())
}

fn runtime(secs: u64) -> String {
    format!(
        "[ {} days, {} hours, {} minutes, {} seconds ]",
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

pub(super) fn runtime_info(rmq: &RocketMq) -> RemotingCommand {
    let store = &rmq.broker.store;
    let mut total_msgs = 0i64;
    let mut total_bytes = 0u64;
    for t in store.topics() {
        for p in &t.partitions {
            total_msgs += p.log_end_offset();
            total_bytes += p.size_bytes();
        }
    }
    let dir = store.data_dir().join("logs");
    let (total, free) = nix::sys::statvfs::statvfs(&dir)
        .map(|s| {
            (
                s.blocks() as f64 * s.fragment_size() as f64,
                s.blocks_available() as f64 * s.fragment_size() as f64,
            )
        })
        .unwrap_or((0.0, 0.0));
    let gib = |b: f64| b / (1024.0 * 1024.0 * 1024.0);
    let ratio = if total > 0.0 {
        (total - free) / total
    } else {
        0.0
    };
    let boot = now_ms() - rmq.started.elapsed().as_millis() as i64;
    let table = json!({
        "bootTimestamp": boot.to_string(),
        "brokerVersion": "401",
        "brokerVersionDesc": "V4_9_4",
        "commitLogDirCapacity": format!("Total : {:.1} GiB, Free : {:.1} GiB.", gib(total), gib(free)),
        "commitLogDiskRatio": format!("{ratio:.2}"),
        "commitLogMaxOffset": total_bytes.to_string(),
        "commitLogMinOffset": "0",
        "earliestMessageTimeStamp": "-1",
        "getTotalTps": "0.0 0.0 0.0",
        "getTransferedTps": "0.0",
        "msgGetTotalTodayMorning": "0",
        "msgGetTotalTodayNow": "0",
        "msgGetTotalYesterdayMorning": "0",
        "msgPutTotalTodayMorning": "0",
        "msgPutTotalTodayNow": total_msgs.to_string(),
        "msgPutTotalYesterdayMorning": "0",
        "putTps": "0.0",
        "remainHowManyDataToFlush": "0 B",
        "runtime": runtime(rmq.started.elapsed().as_secs()),
    });
    ok().with_body(serde_json::to_vec(&json!({ "table": table })).unwrap_or_default())
}

pub(super) fn consumer_connections(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let group = cmd.ext("consumerGroup").unwrap_or("");
    let members = rmq.clients.consumers(group);
    let Some((_, first)) = members.first() else {
        return reply(
            rs::CONSUMER_NOT_ONLINE,
            format!("the consumer group[{group}] not online"),
        );
    };
    let connections: Vec<serde_json::Value> = members
        .iter()
        .map(|(id, c)| {
            json!({
                "clientAddr": c.conn.peer.to_string(),
                "clientId": id,
                "language": c.language,
                "version": c.version,
            })
        })
        .collect();
    let subscriptions: serde_json::Map<String, serde_json::Value> = first
        .subscriptions
        .iter()
        .map(|(topic, s)| {
            let mut tags: Vec<&String> = s.tags.iter().collect();
            tags.sort();
            (
                topic.clone(),
                json!({
                    "classFilterMode": false,
                    "codeSet": [],
                    "expressionType": s.expression_type,
                    "subString": s.expression,
                    "subVersion": s.sub_version,
                    "tagsSet": tags,
                    "topic": topic,
                }),
            )
        })
        .collect();
    let body = json!({
        "connectionSet": connections,
        "consumeFromWhere": first.consume_from_where,
        "consumeType": first.consume_type,
        "messageModel": first.message_model,
        "subscriptionTable": subscriptions,
    });
    ok().with_body(serde_json::to_vec(&body).unwrap_or_default())
}

/// fastjson writes maps keyed by MessageQueue with the key object itself as the key; the Java
/// admin tools parse exactly that, so it is written the same way.
fn mq_key(rmq: &RocketMq, topic: &str, queue: i32) -> String {
    format!(
        "{{\"brokerName\":{},\"queueId\":{queue},\"topic\":{}}}",
        serde_json::Value::String(rmq.name()),
        serde_json::Value::String(topic.to_string())
    )
}

pub(super) fn consume_stats(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let group = cmd.ext("consumerGroup").unwrap_or("");
    let only_topic = cmd.ext("topic").filter(|t| !t.is_empty());
    let store = &rmq.broker.store;
    let mut topics: BTreeSet<String> = store
        .offsets()
        .group(group)
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    if let Some(subs) = rmq.clients.consumer_groups().get(group) {
        topics.extend(subs.iter().cloned());
    }
    let mut entries = Vec::new();
    for topic in topics
        .iter()
        .filter(|t| only_topic.is_none_or(|o| o == t.as_str()))
    {
        for (queue, p) in rmq.queue_logs(topic) {
            let committed = store.offsets().fetch(group, topic, p.partition());
            let (offset, ts) = committed.map(|c| (c.offset, c.commit_ms)).unwrap_or((0, 0));
            entries.push(format!(
                "{}:{{\"brokerOffset\":{},\"consumerOffset\":{},\"lastTimestamp\":{}}}",
                mq_key(rmq, topic, queue),
                p.high_watermark(),
                offset,
                ts
            ));
        }
    }
    if entries.is_empty() && !topics.is_empty() && only_topic.is_some() {
        return reply(
            rs::CONSUMER_NOT_ONLINE,
            format!("the consumer group[{group}] not online"),
        );
    }
    let body = format!(
        "{{\"consumeTps\":0.0,\"offsetTable\":{{{}}}}}",
        entries.join(",")
    );
    ok().with_body(body.into_bytes())
}

pub(super) fn topic_stats(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let topic = cmd.ext("topic").unwrap_or("");
    if rmq.broker.store.topic(topic).is_none() {
        return reply(rs::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist"));
    }
    let entries: Vec<String> = rmq
        .queue_logs(topic)
        .into_iter()
        .map(|(queue, p)| {
            format!(
                "{}:{{\"lastUpdateTimestamp\":0,\"maxOffset\":{},\"minOffset\":{}}}",
                mq_key(rmq, topic, queue),
                p.high_watermark(),
                p.log_start_offset()
            )
        })
        .collect();
    ok().with_body(format!("{{\"offsetTable\":{{{}}}}}", entries.join(",")).into_bytes())
}

pub(super) fn consumed_by(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let topic = cmd.ext("topic").unwrap_or("");
    let store = &rmq.broker.store;
    let mut groups: BTreeSet<String> = store
        .offsets()
        .groups()
        .into_iter()
        .filter(|g| store.offsets().group(g).iter().any(|(t, _, _)| t == topic))
        .collect();
    for (g, topics) in rmq.clients.consumer_groups() {
        if topics.contains(topic) {
            groups.insert(g);
        }
    }
    ok().with_body(serde_json::to_vec(&json!({ "groupList": groups })).unwrap_or_default())
}

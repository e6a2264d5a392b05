//! HEART_BEAT, UNREGISTER_CLIENT and GET_CONSUMER_LIST_BY_GROUP: who is alive in which group.

use super::clients::{ConnHandle, ConsumerHeartbeat, Subscription};
use super::{ok, reply, RocketMq};
use codecs::rocketmq::codes::response as rs;
use codecs::rocketmq::RemotingCommand;
use serde_json::Value;
use std::collections::BTreeMap;

/// Consumers of a clustering group redeliver through this topic.
pub(super) fn retry_topic(group: &str) -> String {
    format!("%RETRY%{group}")
}

fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) async fn heartbeat(
    rmq: &RocketMq,
    conn: &ConnHandle,
    cmd: &RemotingCommand,
) -> RemotingCommand {
    let Ok(body) = serde_json::from_slice::<Value>(&cmd.body) else {
        return reply(rs::SYSTEM_ERROR, "heartbeat body is not JSON");
    };
    let client_id = s(&body, "clientID");
    let producers: Vec<String> = body["producerDataSet"]
        .as_array()
        .map(|a| a.iter().map(|p| s(p, "groupName")).collect())
        .unwrap_or_default();
    let mut consumers = Vec::new();
    for c in body["consumerDataSet"].as_array().into_iter().flatten() {
        let group = s(c, "groupName");
        let mut subscriptions = BTreeMap::new();
        for sub in c["subscriptionDataSet"].as_array().into_iter().flatten() {
            let topic = s(sub, "topic");
            let version = sub["subVersion"].as_i64().unwrap_or(0);
            subscriptions.insert(
                topic,
                Subscription::from_expression(
                    &s(sub, "subString"),
                    &s(sub, "expressionType"),
                    version,
                ),
            );
        }
        let message_model = s(c, "messageModel");
        if message_model != "BROADCASTING" {
            // The real broker creates the group's retry topic on the first heartbeat.
            let retry = retry_topic(&group);
            if !rmq.standby && rmq.queue_partitions(&retry).is_empty() {
                if let Err(e) = rmq.broker.ensure_queues(&retry, 1).await {
                    tracing::warn!(peer = %conn.peer, topic = %retry, error = %e, "cannot create retry topic");
                }
            }
        }
        consumers.push(ConsumerHeartbeat {
            group,
            consume_type: s(c, "consumeType"),
            message_model,
            consume_from_where: s(c, "consumeFromWhere"),
            subscriptions,
        });
    }
    let changed = rmq.clients.heartbeat(
        conn,
        &client_id,
        &producers,
        consumers,
        &cmd.language,
        cmd.version,
    );
    rmq.notify_groups_changed(&changed);
    ok()
}

pub(super) fn unregister(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let client_id = cmd.ext("clientID").unwrap_or("");
    let changed = rmq.clients.unregister(
        client_id,
        cmd.ext("producerGroup").filter(|g| !g.is_empty()),
        cmd.ext("consumerGroup").filter(|g| !g.is_empty()),
    );
    rmq.notify_groups_changed(&changed);
    ok()
}

pub(super) fn consumer_list(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let group = cmd.ext("consumerGroup").unwrap_or("");
    let ids = rmq.clients.consumer_ids(group);
    if ids.is_empty() {
        return reply(
            rs::SYSTEM_ERROR,
            format!("no consumer for this group, {group}"),
        );
    }
    ok().with_body(
        serde_json::to_vec(&serde_json::json!({ "consumerIdList": ids })).unwrap_or_default(),
    )
}

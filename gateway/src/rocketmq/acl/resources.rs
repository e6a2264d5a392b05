//! What a RocketMQ request touches, as `PlainAccessValidator.parse` sees it: the topics and
//! groups (a group is its `%RETRY%` topic) with the permission each needs, and whether the
//! request code is an administrative one.

use super::plain::{PUB, RETRY_PREFIX, SUB};
use codecs::rocketmq::body::{decode_json, HeartbeatData};
use codecs::rocketmq::codes::request as rq;
use codecs::rocketmq::RemotingCommand;

/// Codes only an admin account may send. 4.9.4's list (17, 25, 215, 200, 207), plus the
/// name-server deletions and KV writes (this server's name server changes real state) and
/// the ACL requests (in 4.9.4 any account may rewrite the ACL file and read every secret).
pub(crate) fn needs_admin(code: i32) -> bool {
    matches!(
        code,
        rq::UPDATE_AND_CREATE_TOPIC
            | rq::UPDATE_BROKER_CONFIG
            | rq::DELETE_TOPIC_IN_BROKER
            | rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
            | rq::DELETE_SUBSCRIPTIONGROUP
            | rq::DELETE_TOPIC_IN_NAMESRV
            | rq::PUT_KV_CONFIG
            | rq::DELETE_KV_CONFIG
            | rq::UPDATE_AND_CREATE_ACL_CONFIG
            | rq::DELETE_ACL_CONFIG
            | rq::GET_BROKER_CLUSTER_ACL_INFO
            | rq::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG
            | rq::GET_BROKER_CLUSTER_ACL_CONFIG
    )
}

/// Name-server reads, which RocketMQ's name server answers to anyone (it has no ACL).
pub(crate) fn unchecked(code: i32) -> bool {
    matches!(
        code,
        rq::GET_ROUTEINFO_BY_TOPIC
            | rq::GET_BROKER_CLUSTER_INFO
            | rq::GET_ALL_TOPIC_LIST_FROM_NAMESERVER
            | rq::GET_KV_CONFIG
            | rq::REGISTER_BROKER
            | rq::UNREGISTER_BROKER
            | rq::GET_TOPICS_BY_CLUSTER
            | rq::GET_SYSTEM_TOPIC_LIST_FROM_NS
    )
}

/// The (resource, permission) pairs a request needs. A later entry for the same resource
/// replaces an earlier one, as in the broker's map.
pub(crate) fn needed(cmd: &RemotingCommand) -> Vec<(String, u8)> {
    let mut out: Vec<(String, u8)> = Vec::new();
    let mut add = |name: Option<&str>, perm: u8| {
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            out.retain(|(r, _)| r != n);
            out.push((n.to_string(), perm));
        }
    };
    let retry = |g: Option<&str>| g.map(|g| format!("{RETRY_PREFIX}{g}"));
    match cmd.code {
        rq::SEND_MESSAGE => {
            let topic = cmd.ext("topic");
            if topic.is_some_and(|t| t.starts_with(RETRY_PREFIX)) {
                add(retry(cmd.ext("group")).as_deref(), SUB);
            } else {
                add(topic, PUB);
            }
        }
        // Batches are checked like single sends (4.9.4 checks nothing for them).
        rq::SEND_MESSAGE_V2 | rq::SEND_BATCH_MESSAGE => {
            let topic = cmd.ext("b");
            if topic.is_some_and(|t| t.starts_with(RETRY_PREFIX)) {
                add(retry(cmd.ext("a")).as_deref(), SUB);
            } else {
                add(topic, PUB);
            }
        }
        rq::CONSUMER_SEND_MSG_BACK => add(retry(cmd.ext("group")).as_deref(), SUB),
        rq::PULL_MESSAGE => {
            add(cmd.ext("topic"), SUB);
            add(retry(cmd.ext("consumerGroup")).as_deref(), SUB);
        }
        rq::QUERY_MESSAGE => add(cmd.ext("topic"), SUB),
        rq::HEART_BEAT => {
            if let Ok(hb) = decode_json::<HeartbeatData>(&cmd.body) {
                for c in &hb.consumer_data_set {
                    add(Some(&format!("{RETRY_PREFIX}{}", c.group_name)), SUB);
                    for s in &c.subscription_data_set {
                        add(Some(&s.topic), SUB);
                    }
                }
            }
        }
        rq::UNREGISTER_CLIENT | rq::GET_CONSUMER_LIST_BY_GROUP => {
            add(retry(cmd.ext("consumerGroup")).as_deref(), SUB)
        }
        rq::UPDATE_CONSUMER_OFFSET => {
            add(retry(cmd.ext("consumerGroup")).as_deref(), SUB);
            add(cmd.ext("topic"), SUB);
        }
        _ => {}
    }
    out
}

//! LOCK_BATCH_MQ / UNLOCK_BATCH_MQ: orderly consumers lock the queues they consume so that
//! only one member of the group processes a queue at a time. Locks lapse after 60 s without
//! renewal (RocketMQ's REBALANCE_LOCK_MAX_LIVE_TIME).

use super::{ok, reply, RocketMq};
use codecs::rocketmq::codes::response as rs;
use codecs::rocketmq::RemotingCommand;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const LOCK_LIFETIME: Duration = Duration::from_secs(60);

type Key = (String, String, String, i64); // group, topic, broker name, queue id

/// Queue locks of every group.
#[derive(Default)]
pub(crate) struct Locks {
    held: Mutex<HashMap<Key, (String, Instant)>>,
}

struct Request {
    group: String,
    client: String,
    queues: Vec<(String, String, i64)>,
}

fn parse(cmd: &RemotingCommand) -> Option<Request> {
    let v: Value = serde_json::from_slice(&cmd.body).ok()?;
    let queues = v["mqSet"]
        .as_array()?
        .iter()
        .map(|q| {
            (
                q["topic"].as_str().unwrap_or("").to_string(),
                q["brokerName"].as_str().unwrap_or("").to_string(),
                q["queueId"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    Some(Request {
        group: v["consumerGroup"].as_str()?.to_string(),
        client: v["clientId"].as_str()?.to_string(),
        queues,
    })
}

pub(super) fn lock(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let Some(req) = parse(cmd) else {
        return reply(rs::SYSTEM_ERROR, "malformed lock request body");
    };
    let now = Instant::now();
    let mut granted = Vec::new();
    {
        let mut held = rmq.locks.held.lock();
        for (topic, broker, queue) in req.queues {
            let key = (req.group.clone(), topic.clone(), broker.clone(), queue);
            let mine = match held.get(&key) {
                Some((owner, at)) => {
                    *owner == req.client || now.duration_since(*at) > LOCK_LIFETIME
                }
                None => true,
            };
            if mine {
                held.insert(key, (req.client.clone(), now));
                granted.push(json!({ "brokerName": broker, "queueId": queue, "topic": topic }));
            }
        }
    }
    ok().with_body(serde_json::to_vec(&json!({ "lockOKMQSet": granted })).unwrap_or_default())
}

pub(super) fn unlock(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let Some(req) = parse(cmd) else {
        return reply(rs::SYSTEM_ERROR, "malformed unlock request body");
    };
    let mut held = rmq.locks.held.lock();
    for (topic, broker, queue) in req.queues {
        let key = (req.group.clone(), topic, broker, queue);
        if held
            .get(&key)
            .is_some_and(|(owner, _)| *owner == req.client)
        {
            held.remove(&key);
        }
    }
    ok()
}

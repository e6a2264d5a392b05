//! Consumer offsets and queue offsets: QUERY/UPDATE_CONSUMER_OFFSET, GET_MIN/MAX_OFFSET,
//! SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME. Consumer offsets live in the store
//! shared with Kafka groups, keyed by (group, topic, partition behind the queue).

use super::{ok, reply, RocketMq};
use codecs::rocketmq::codes::response as rs;
use codecs::rocketmq::RemotingCommand;
use std::sync::Arc;
use storage::{CommittedOffset, PartitionLog};

fn int<T: std::str::FromStr>(cmd: &RemotingCommand, key: &str) -> Option<T> {
    cmd.ext(key).and_then(|v| v.trim().parse().ok())
}

/// The queue named by `topic` and `queueId`, or the error response for it.
pub(super) fn queue(
    rmq: &RocketMq,
    cmd: &RemotingCommand,
) -> Result<Arc<PartitionLog>, RemotingCommand> {
    let topic = cmd.ext("topic").unwrap_or("");
    let queue_id: i32 = int(cmd, "queueId").unwrap_or(-1);
    if rmq.broker.store.topic(topic).is_none() {
        return Err(reply(
            rs::TOPIC_NOT_EXIST,
            format!("topic[{topic}] not exist, apply first please!"),
        ));
    }
    rmq.queue_log(topic, queue_id).map_err(|_| {
        reply(
            rs::SYSTEM_ERROR,
            format!("queueId[{queue_id}] is illegal, topic:[{topic}]"),
        )
    })
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Stores a consumer offset of this broker's queue `queue_id` (also used by pulls that carry
/// `commitOffset`).
pub(super) fn commit(
    rmq: &RocketMq,
    group: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
) -> Result<(), String> {
    let partition = rmq
        .partition_of(topic, queue_id)
        .ok_or_else(|| format!("queueId[{queue_id}] is illegal, topic:[{topic}]"))?;
    rmq.broker
        .store
        .offsets()
        .commit(
            group,
            &[(
                topic.to_string(),
                partition,
                CommittedOffset {
                    offset,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_ms: now_ms(),
                },
            )],
        )
        .map_err(|e| e.to_string())
}

pub(super) fn query_consumer_offset(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let group = cmd.ext("consumerGroup").unwrap_or("");
    let topic = cmd.ext("topic").unwrap_or("");
    let queue_id: i32 = int(cmd, "queueId").unwrap_or(-1);
    let partition = rmq.partition_of(topic, queue_id).unwrap_or(-1);
    if let Some(c) = rmq.broker.store.offsets().fetch(group, topic, partition) {
        return ok().with_ext("offset", c.offset);
    }
    // Like the real broker: a queue that still starts at 0 tells a new group to start there,
    // so CONSUME_FROM_LAST_OFFSET consumers of a fresh topic miss nothing.
    match rmq.broker.store.partition(topic, partition) {
        Ok(log) if log.log_start_offset() == 0 => ok().with_ext("offset", 0),
        _ => reply(
            rs::QUERY_NOT_FOUND,
            "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
        ),
    }
}

/// UPDATE_CONSUMER_OFFSET (the consumer's periodic persist): durable, and in a cluster on
/// every node. Offsets carried by pulls (`commitOffset`) stay on the serving node only, as a
/// RocketMQ slave only syncs them periodically.
pub(super) async fn update_consumer_offset(
    rmq: &RocketMq,
    cmd: &RemotingCommand,
) -> RemotingCommand {
    let group = cmd.ext("consumerGroup").unwrap_or("");
    let topic = cmd.ext("topic").unwrap_or("");
    let queue_id: i32 = int(cmd, "queueId").unwrap_or(-1);
    let Some(offset) = int::<i64>(cmd, "commitOffset") else {
        return reply(rs::SYSTEM_ERROR, "commitOffset missing");
    };
    let Some(partition) = rmq
        .partition_of(topic, queue_id)
        .filter(|p| rmq.broker.store.partition(topic, *p).is_ok())
    else {
        return reply(
            rs::SYSTEM_ERROR,
            format!("queueId[{queue_id}] is illegal, topic:[{topic}]"),
        );
    };
    let entry = CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_ms: now_ms(),
    };
    match rmq
        .broker
        .commit_offsets(group, vec![(topic.to_string(), partition, entry)])
        .await
    {
        Ok(()) => ok(),
        Err(e) => reply(rs::SYSTEM_ERROR, e.to_string()),
    }
}

pub(super) fn max_offset(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    match queue(rmq, cmd) {
        Ok(log) => ok().with_ext("offset", log.last_stable_offset()),
        Err(e) => e,
    }
}

pub(super) fn min_offset(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    match queue(rmq, cmd) {
        Ok(log) => ok().with_ext("offset", log.log_start_offset()),
        Err(e) => e,
    }
}

pub(super) fn search_by_timestamp(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let ts: i64 = int(cmd, "timestamp").unwrap_or(0);
    match queue(rmq, cmd) {
        Ok(log) => match log.offset_for_timestamp(ts) {
            Ok(Some(r)) => ok().with_ext("offset", r.offset),
            // Nothing at or after that time: the end of the queue.
            Ok(None) => ok().with_ext("offset", log.last_stable_offset()),
            Err(e) => reply(rs::SYSTEM_ERROR, e.to_string()),
        },
        Err(e) => e,
    }
}

pub(super) fn earliest_store_time(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    match queue(rmq, cmd) {
        Ok(log) => {
            let start = log.log_start_offset();
            let ts = log
                .read(start, 1, true)
                .ok()
                .and_then(|b| codecs::kafka::batch::BatchHeader::parse(&b).ok())
                .map(|h| h.base_timestamp)
                .unwrap_or(-1);
            ok().with_ext("timestamp", ts)
        }
        Err(e) => e,
    }
}

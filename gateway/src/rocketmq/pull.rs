//! PULL_MESSAGE: reads a queue (a partition) from an offset, filters by the group's tag
//! subscription, and returns messages in RocketMQ's stored layout. With the suspend flag an
//! empty pull waits (long polling) until a message arrives or the suspend timeout passes.

use super::clients::Subscription;
use super::convert::{self, Location};
use super::offsets;
use super::{reply, RocketMq};
use bytes::BytesMut;
use codecs::rocketmq::codes::response as rs;
use codecs::rocketmq::header::{CustomHeader, PullMessageHeader, PullMessageResponseHeader};
use codecs::rocketmq::message::{self as rmsg, property, pull_sys_flag};
use codecs::rocketmq::{encode_stored, RemotingCommand};
use std::sync::Arc;
use std::time::Duration;

/// PERM_READ bit of a topic's `perm`.
const PERM_READ: i64 = 0x4;
/// Bytes read from the log per pull at most (RocketMQ transfers at most 256 KiB from memory).
const READ_BYTES: usize = 256 * 1024;
/// Bytes read per requested message (a typical message with its batch header fits easily).
const READ_BYTES_PER_MESSAGE: usize = 2048;
/// Bytes read per pull at least.
const MIN_READ_BYTES: usize = 16 * 1024;
/// Upper bound on a suspended pull, whatever the client asks.
const MAX_SUSPEND_MS: i64 = 30_000;

fn response(code: i32, remark: &str, next: i64, min: i64, max: i64) -> RemotingCommand {
    let mut r = reply(code, remark);
    r.ext_fields = PullMessageResponseHeader {
        suggest_which_broker_id: 0,
        next_begin_offset: next,
        min_offset: min,
        max_offset: max,
    }
    .to_ext();
    r
}

fn subscription(rmq: &RocketMq, h: &PullMessageHeader) -> Result<Subscription, RemotingCommand> {
    if pull_sys_flag::has_subscription(h.sys_flag) {
        return Ok(Subscription::from_expression(
            h.subscription.as_deref().unwrap_or("*"),
            h.expression_type.as_deref().unwrap_or("TAG"),
            h.sub_version,
        ));
    }
    if rmq.clients.consumer_ids(&h.consumer_group).is_empty() {
        return Err(reply(
            rs::SUBSCRIPTION_NOT_EXIST,
            format!(
                "the consumer's group info not exist, group: {}",
                h.consumer_group
            ),
        ));
    }
    let Some(s) = rmq.clients.subscription(&h.consumer_group, &h.topic) else {
        return Err(reply(
            rs::SUBSCRIPTION_NOT_EXIST,
            "the consumer's subscription not exist",
        ));
    };
    if s.sub_version < h.sub_version {
        return Err(reply(
            rs::SUBSCRIPTION_NOT_LATEST,
            "the consumer's subscription not latest",
        ));
    }
    Ok(s)
}

pub(super) async fn pull(rmq: &Arc<RocketMq>, cmd: RemotingCommand) -> RemotingCommand {
    let h = match PullMessageHeader::from_command(&cmd) {
        Ok(h) => h,
        Err(e) => return reply(rs::SYSTEM_ERROR, e.to_string()),
    };
    let store = &rmq.broker.store;
    let Some(topic) = store.topic(&h.topic) else {
        return reply(
            rs::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist, apply first please!", h.topic),
        );
    };
    if super::namesrv::queue_view(rmq, &topic).2 & PERM_READ == 0 {
        return reply(
            rs::NO_PERMISSION,
            format!("the topic[{}] pulling message is forbidden", h.topic),
        );
    }
    let Ok(log) = rmq.queue_log(&h.topic, h.queue_id) else {
        return reply(
            rs::SYSTEM_ERROR,
            format!("queueId[{}] is illegal, topic:[{}]", h.queue_id, h.topic),
        );
    };
    let sub = match subscription(rmq, &h) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if pull_sys_flag::has_commit_offset(h.sys_flag) && h.commit_offset >= 0 {
        if let Err(e) = offsets::commit(
            rmq,
            &h.consumer_group,
            &h.topic,
            h.queue_id,
            h.commit_offset,
        ) {
            tracing::warn!(group = %h.consumer_group, topic = %h.topic, error = %e, "commit with pull failed");
        }
    }
    let at = Location {
        topic: &h.topic,
        topic_code: topic.meta.code,
        queue_id: h.queue_id,
        partition: log.partition(),
        store_host: rmq.broker_addr,
    };
    let max_msgs = h.max_msg_nums.clamp(1, 1024) as usize;
    let suspend = pull_sys_flag::has_suspend(h.sys_flag);
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(h.suspend_timeout_millis.clamp(0, MAX_SUSPEND_MS) as u64);
    let mut watch = log.subscribe();
    loop {
        // Records of open Kafka transactions are not consumable yet: the queue ends at the
        // last stable offset.
        let (min, max) = (log.log_start_offset(), log.last_stable_offset());
        let offset = h.queue_offset;
        if max == 0 && offset != 0 {
            return response(rs::PULL_OFFSET_MOVED, "NO_MESSAGE_IN_QUEUE", 0, min, max);
        }
        if offset < min {
            return response(rs::PULL_OFFSET_MOVED, "OFFSET_TOO_SMALL", min, min, max);
        }
        if offset > max {
            return response(
                rs::PULL_OFFSET_MOVED,
                "OFFSET_OVERFLOW_BADLY",
                max,
                min,
                max,
            );
        }
        if offset < max {
            // Read about what maxMsgNums needs rather than the whole 256 KiB: every byte read
            // is decoded. A filtered-out stretch just ends in PULL_RETRY_IMMEDIATELY.
            let want = (max_msgs * READ_BYTES_PER_MESSAGE).clamp(MIN_READ_BYTES, READ_BYTES);
            // Transaction markers and aborted Kafka transactions are dropped here.
            let (bytes, examined) = match log.read_visible(offset, want, true) {
                Ok(b) => b,
                Err(e) => return reply(rs::SYSTEM_ERROR, e.to_string()),
            };
            let msgs = match convert::from_batches(bytes, offset, &at) {
                Ok(m) => m,
                Err(e) => {
                    return reply(rs::SYSTEM_ERROR, format!("cannot decode stored batch: {e}"))
                }
            };
            let mut body = BytesMut::new();
            let mut found = 0usize;
            let mut next = offset;
            let mut all_examined = true;
            for m in msgs {
                if found == max_msgs {
                    all_examined = false;
                    break;
                }
                next = m.queue_offset + 1;
                if sub.matches(rmsg::get_property(&m.properties, property::TAGS)) {
                    encode_stored(&m, &mut body);
                    found += 1;
                }
            }
            if all_examined {
                // Past hidden records (markers, aborted transactions) as well.
                next = next.max(examined);
            }
            if found > 0 {
                metrics::counter!("rocketmq_messages_out_total", "topic" => h.topic.clone())
                    .increment(found as u64);
                return response(rs::SUCCESS, "FOUND", next, min, max).with_body(body.freeze());
            }
            if next > offset {
                // Everything examined was filtered out: let the client move on at once.
                return response(rs::PULL_RETRY_IMMEDIATELY, "NO_MATCHED_MSG", next, min, max);
            }
        }
        if !suspend || tokio::time::Instant::now() >= deadline {
            return response(rs::PULL_NOT_FOUND, "OFFSET_OVERFLOW_ONE", offset, min, max);
        }
        // Long poll: wake when the queue grows, or give up at the deadline.
        watch.borrow_and_update();
        if log.last_stable_offset() > offset {
            continue;
        }
        match tokio::time::timeout_at(deadline, watch.changed()).await {
            Ok(Ok(())) => {}
            // Timed out, or the queue went away (topic deleted).
            _ => {
                let (min, max) = (log.log_start_offset(), log.last_stable_offset());
                return response(rs::PULL_NOT_FOUND, "OFFSET_OVERFLOW_ONE", offset, min, max);
            }
        }
    }
}

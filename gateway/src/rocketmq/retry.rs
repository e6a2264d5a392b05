//! CONSUMER_SEND_MSG_BACK: a consumer gives a message back for a later retry. It goes to the
//! group's `%RETRY%` topic after a delay that grows with the times it was already retried
//! (level 3 + that count), or to the dead-letter topic `%DLQ%<group>` (read-write, as
//! RocketMQ 4.9 creates it) once it has been retried `maxReconsumeTimes` times.

use super::convert::Outgoing;
use super::heartbeat::retry_topic;
use super::query::read_by_commit_log_offset;
use super::send::append;
use super::{ok, reply, RocketMq};
use codecs::rocketmq::codes::response as rs;
use codecs::rocketmq::header::{ConsumerSendMsgBackHeader, CustomHeader};
use codecs::rocketmq::message::{self as rmsg, property};
use codecs::rocketmq::{offset_msg_id, RemotingCommand};
use std::sync::Arc;

/// RocketMQ's default `maxReconsumeTimes`.
const DEFAULT_MAX_RECONSUME: i32 = 16;

/// The group's dead-letter topic.
pub(super) fn dlq_topic(group: &str) -> String {
    format!("%DLQ%{group}")
}

pub(super) async fn send_back(rmq: &Arc<RocketMq>, cmd: &RemotingCommand) -> RemotingCommand {
    let h = match ConsumerSendMsgBackHeader::from_command(cmd) {
        Ok(h) => h,
        Err(e) => return reply(rs::SYSTEM_ERROR, e.to_string()),
    };
    let Some(orig) = read_by_commit_log_offset(rmq, h.offset) else {
        return reply(
            rs::SYSTEM_ERROR,
            format!("look message by offset failed, {}", h.offset),
        );
    };
    let mut props = orig.properties.clone();
    if rmsg::get_property(&props, property::RETRY_TOPIC).is_none() {
        rmsg::set_property(&mut props, property::RETRY_TOPIC, orig.topic.clone());
    }
    // The first send-back records the original's id; later ones keep it (RocketMQ 4.9).
    if rmsg::get_property(&props, property::ORIGIN_MESSAGE_ID).is_none_or(str::is_empty) {
        let id = offset_msg_id(rmq.broker_addr, h.offset);
        rmsg::set_property(&mut props, property::ORIGIN_MESSAGE_ID, id);
    }
    rmsg::remove_property(&mut props, property::DELAY);
    let tried = orig.reconsume_times;
    let reconsume = tried + 1;
    let max = h.max_reconsume_times.unwrap_or(DEFAULT_MAX_RECONSUME);
    let msg = Outgoing {
        body: orig.body,
        flag: orig.flag,
        sys_flag: orig.sys_flag,
        born_timestamp: orig.born_timestamp,
        born_host: orig.born_host,
        reconsume_times: reconsume,
        prepared_transaction_offset: 0,
        properties: props,
    };
    if tried >= max || h.delay_level < 0 {
        let dlq = dlq_topic(&h.group);
        if let Err(e) = super::ensure_topic(rmq, &dlq, 1).await {
            return reply(rs::SYSTEM_ERROR, e);
        }
        let log = match rmq.queue_log(&dlq, 0) {
            Ok(l) => l,
            Err(e) => return reply(rs::SYSTEM_ERROR, e.to_string()),
        };
        tracing::info!(group = %h.group, topic = %orig.topic, reconsume, "message moved to the dead-letter topic");
        return match append(rmq, &log, &[msg]).await {
            Ok(_) => ok(),
            Err(e) => reply(rs::SYSTEM_ERROR, e),
        };
    }
    let retry = retry_topic(&h.group);
    if let Err(e) = super::ensure_topic(rmq, &retry, 1).await {
        return reply(rs::SYSTEM_ERROR, e);
    }
    let level = if h.delay_level == 0 {
        3 + tried
    } else {
        h.delay_level
    };
    let resp = super::delay::schedule(rmq, &retry, 0, level, vec![msg]).await;
    if resp.code == rs::SUCCESS {
        ok()
    } else {
        resp
    }
}

//! QUERY_MESSAGE (by key through each queue's key index, or by UNIQ_KEY) and
//! VIEW_MESSAGE_BY_ID (by offset message id).

use super::convert::{self, Location};
use super::{ok, reply, RocketMq};
use bytes::BytesMut;
use codecs::rocketmq::codes::response as rs;
use codecs::rocketmq::header::{unique_key_query, CustomHeader, QueryMessageHeader};
use codecs::rocketmq::message::{self as rmsg, property, StoredMessage};
use codecs::rocketmq::{encode_stored, RemotingCommand};

/// Records examined per queue by one UNIQ_KEY lookup (not indexed), at most.
const SCAN_LIMIT: i64 = 1_000_000;

/// Reads the record at `offset` of a queue.
fn read_at(log: &storage::PartitionLog, at: &Location<'_>, offset: i64) -> Option<StoredMessage> {
    // Only committed records: never one of an open or aborted Kafka transaction.
    let (bytes, _) = log.read_visible(offset, 64 * 1024, true).ok()?;
    convert::from_batches(bytes, offset, at)
        .ok()?
        .into_iter()
        .find(|m| m.queue_offset == offset)
}

/// The message a commit-log offset names, with its topic.
pub(super) fn read_by_commit_log_offset(rmq: &RocketMq, v: i64) -> Option<StoredMessage> {
    let (code, partition, offset) = convert::split_commit_log_offset(v);
    let topic = rmq.broker.store.topic_by_code(code)?;
    let log = topic
        .partitions
        .get(usize::try_from(partition).ok()?)?
        .clone();
    let at = Location {
        topic: &topic.meta.name,
        topic_code: code,
        queue_id: rmq
            .queue_of(&topic.meta.name, partition)
            .unwrap_or(partition),
        partition,
        store_host: rmq.broker_addr,
    };
    let (bytes, _) = log.read_visible(offset, 64 * 1024, true).ok()?;
    convert::from_batches(bytes, offset, &at)
        .ok()?
        .into_iter()
        .find(|m| m.queue_offset == offset)
}

pub(super) fn view_by_id(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let offset: i64 = cmd.ext("offset").and_then(|v| v.parse().ok()).unwrap_or(-1);
    match read_by_commit_log_offset(rmq, offset) {
        Some(m) => {
            let mut body = BytesMut::new();
            encode_stored(&m, &mut body);
            ok().with_body(body.freeze())
        }
        None => reply(
            rs::SYSTEM_ERROR,
            format!("can not find message by the offset, {offset}"),
        ),
    }
}

fn key_matches(m: &StoredMessage, key: &str, unique: bool) -> bool {
    if unique {
        return rmsg::get_property(&m.properties, property::UNIQ_KEY) == Some(key);
    }
    rmsg::get_property(&m.properties, property::KEYS)
        .is_some_and(|ks| ks.split(' ').any(|k| k == key))
}

pub(super) fn query(rmq: &RocketMq, cmd: &RemotingCommand) -> RemotingCommand {
    let h = match QueryMessageHeader::from_command(cmd) {
        Ok(h) => h,
        Err(e) => return reply(rs::SYSTEM_ERROR, e.to_string()),
    };
    let unique = unique_key_query(&cmd.ext_fields);
    let Some(topic) = rmq.broker.store.topic(&h.topic) else {
        return reply(rs::TOPIC_NOT_EXIST, format!("topic[{}] not exist", h.topic));
    };
    let max = h.max_num.clamp(1, 1024) as usize;
    let mut body = BytesMut::new();
    let mut found = 0usize;
    let mut last_ts = 0i64;
    // This broker's queues: a query by key asks every broker of the route.
    'queues: for (queue, log) in rmq.queue_logs(&h.topic) {
        let log = &log;
        let at = Location {
            topic: &h.topic,
            topic_code: topic.meta.code,
            queue_id: queue,
            partition: log.partition(),
            store_host: rmq.broker_addr,
        };
        let mut hit = |m: StoredMessage| -> bool {
            if m.store_timestamp < h.begin_timestamp || m.store_timestamp > h.end_timestamp {
                return false;
            }
            if !key_matches(&m, &h.key, unique) {
                return false;
            }
            last_ts = last_ts.max(m.store_timestamp);
            encode_stored(&m, &mut body);
            found += 1;
            found == max
        };
        if !unique {
            let index = match log.key_index() {
                Ok(i) => i,
                Err(e) => return reply(rs::SYSTEM_ERROR, e.to_string()),
            };
            for off in index.lookup(h.key.as_bytes()) {
                if off < log.log_start_offset() {
                    continue;
                }
                if let Some(m) = read_at(log, &at, off) {
                    if hit(m) {
                        break 'queues;
                    }
                }
            }
            continue;
        }
        let start = match log.offset_for_timestamp(h.begin_timestamp) {
            Ok(Some(r)) => r.offset,
            _ => continue,
        };
        let mut pos = start;
        while pos < log.last_stable_offset() && pos - start < SCAN_LIMIT {
            let Ok((bytes, examined)) = log.read_visible(pos, 1024 * 1024, true) else {
                break;
            };
            let Ok(msgs) = convert::from_batches(bytes, pos, &at) else {
                break;
            };
            if examined <= pos {
                break;
            }
            pos = examined;
            for m in msgs {
                pos = m.queue_offset + 1;
                if hit(m) {
                    break 'queues;
                }
            }
        }
    }
    if found == 0 {
        return reply(
            rs::QUERY_NOT_FOUND,
            "can not find message, maybe time range not correct",
        );
    }
    ok().with_ext("indexLastUpdateTimestamp", last_ts)
        .with_ext("indexLastUpdatePhyoffset", 0)
        .with_body(body.freeze())
}

//! SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE: each message is converted once into a
//! Kafka record and appended to the queue's partition log. Delayed and transactional (half)
//! messages are diverted to their system topics first.

use super::clients::ConnHandle;
use super::convert::{self, Outgoing};
use super::namesrv::{queue_view, DEFAULT_TOPIC};
use super::{reply, RocketMq};
use bytes::Bytes;
use codecs::rocketmq::codes::{request as rq, response as rs};
use codecs::rocketmq::header::{CustomHeader, SendMessageHeader, SendMessageResponseHeader};
use codecs::rocketmq::message::{self as rmsg, property, sys_flag};
use codecs::rocketmq::{decode_batch, offset_msg_id, RemotingCommand};
use std::io::Read;
use std::sync::Arc;
use storage::PartitionLog;

/// PERM_WRITE bit of a topic's `perm`.
const PERM_WRITE: i64 = 0x2;

/// A response to a send.
fn send_ok(
    rmq: &RocketMq,
    queue_id: i32,
    queue_offset: i64,
    msg_ids: String,
    transaction_id: Option<String>,
) -> RemotingCommand {
    let header = SendMessageResponseHeader {
        msg_id: msg_ids,
        queue_id,
        queue_offset,
        transaction_id,
    };
    let mut resp = super::ok();
    resp.ext_fields = header.to_ext_with_region("DefaultRegion", true);
    let _ = rmq;
    resp
}

/// Inflates a body the Java producer compressed (sysFlag bit 0) so every consumer, Kafka
/// ones included, reads plain bytes.
fn inflate(body: Bytes) -> Result<Bytes, String> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(&body[..])
        .take(64 * 1024 * 1024)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot inflate compressed body: {e}"))?;
    Ok(Bytes::from(out))
}

/// Finds or, when allowed, creates the topic; returns its write-queue count.
async fn ensure_topic(rmq: &RocketMq, h: &SendMessageHeader) -> Result<i64, RemotingCommand> {
    let store = &rmq.broker.store;
    let is_retry = h.topic.starts_with("%RETRY%");
    let may_create =
        !rmq.standby && (is_retry || rmq.auto_create && h.default_topic == DEFAULT_TOPIC);
    if let Some(t) = store.topic(&h.topic) {
        if let Some(link) = t.meta.attributes.get(crate::mirror::link::MIRROR_ATTRIBUTE) {
            return Err(reply(
                rs::NO_PERMISSION,
                format!(
                    "the topic[{}] is a read-only mirror of link {link}; fail the link over before sending to it",
                    h.topic
                ),
            ));
        }
        let (_, write, perm, _) = queue_view(rmq, &t);
        if perm & PERM_WRITE == 0 {
            return Err(reply(
                rs::NO_PERMISSION,
                format!("the topic[{}] sending message is forbidden", h.topic),
            ));
        }
        // In a cluster the topic may exist on other brokers only; RocketMQ then gives this
        // broker its own queues when auto-creation allows it.
        if write > 0 || !may_create {
            return Ok(write);
        }
    }
    if !may_create {
        return Err(reply(
            rs::TOPIC_NOT_EXIST,
            format!("topic[{}] not exist, apply first please!", h.topic),
        ));
    }
    // RocketMQ caps the new topic's queues at the template's 8 write queues.
    let queues = if is_retry {
        1
    } else {
        h.default_topic_queue_nums.clamp(1, 8)
    };
    if let Err(e) = rmq.broker.ensure_queues(&h.topic, queues).await {
        return Err(reply(rs::SYSTEM_ERROR, e.to_string()));
    }
    tracing::info!(topic = %h.topic, queues, "topic auto-created by a RocketMQ send");
    Ok(store
        .topic(&h.topic)
        .map(|t| queue_view(rmq, &t).1)
        .unwrap_or(queues as i64))
}

/// Appends already-converted messages and waits for the flush policy.
pub(super) async fn append(
    rmq: &RocketMq,
    log: &Arc<PartitionLog>,
    msgs: &[Outgoing],
) -> Result<(i64, i64), String> {
    // In a cluster only the leader appends, and the topic's policy decides when the send is
    // acknowledged.
    let replica = match &rmq.broker.cluster {
        None => None,
        Some(c) => {
            let p = c
                .replicas
                .get(log.topic(), log.partition())
                .filter(|p| p.check_leader(c.node_id, -1).is_ok())
                .ok_or_else(|| {
                    format!(
                        "this broker does not lead {}-{} now; retry with a fresh route",
                        log.topic(),
                        log.partition()
                    )
                })?;
            let policy = rmq
                .broker
                .store
                .topic(log.topic())
                .and_then(|t| t.meta.configs.get("replication.policy").cloned())
                .unwrap_or_else(|| "leader".into());
            if policy == "isr" {
                p.check_min_isr()
                    .map_err(|e| format!("replication policy isr not met: {e:?}"))?;
            }
            Some((c.node_id, p, policy))
        }
    };
    let batch = convert::to_batch(msgs)?;
    let r = log.append(&batch).map_err(|e| e.to_string())?;
    if r.needs_flush {
        let l = log.clone();
        tokio::task::spawn_blocking(move || l.flush())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    if let Some((me, p, policy)) = replica {
        p.update_high_watermark(me);
        let timeout = std::time::Duration::from_secs(5);
        let end = r.last_offset + 1;
        let res = match policy.as_str() {
            "isr" => p.wait_replicated(me, end, timeout).await,
            "quorum" => p.wait_quorum(me, end, timeout).await,
            _ => Ok(()),
        };
        res.map_err(|e| format!("replication policy {policy} not met: {e:?}"))?;
    }
    metrics::counter!("rocketmq_messages_in_total", "topic" => log.topic().to_string())
        .increment(msgs.len() as u64);
    Ok((r.base_offset, r.last_offset))
}

pub(super) async fn send(
    rmq: &Arc<RocketMq>,
    conn: &ConnHandle,
    cmd: RemotingCommand,
) -> RemotingCommand {
    let h = match SendMessageHeader::from_command(&cmd) {
        Ok(h) => h,
        Err(e) => return reply(rs::MESSAGE_ILLEGAL, e.to_string()),
    };
    if let Err(e) = storage::store::validate_topic_name(&h.topic) {
        return reply(rs::MESSAGE_ILLEGAL, e.to_string());
    }
    let write_queues = match ensure_topic(rmq, &h).await {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    let mut queue_id = h.queue_id;
    if queue_id < 0 {
        queue_id = (rand::random::<u32>() % write_queues.max(1) as u32) as i32;
    }
    if queue_id as i64 >= write_queues {
        return reply(
            rs::SYSTEM_ERROR,
            format!("request queueId[{queue_id}] is illegal, topic:[{}] topicConfig.writeQueueNums:[{write_queues}]", h.topic),
        );
    }
    let mut msgs: Vec<Outgoing> = Vec::new();
    let base_props = h.properties();
    if cmd.code == rq::SEND_BATCH_MESSAGE || h.batch {
        let entries = match decode_batch(cmd.body.clone()) {
            Ok(e) => e,
            Err(e) => return reply(rs::MESSAGE_ILLEGAL, format!("bad batch body: {e}")),
        };
        for e in entries {
            msgs.push(Outgoing {
                body: e.body,
                flag: e.flag,
                sys_flag: h.sys_flag & !sys_flag::COMPRESSED_FLAG,
                born_timestamp: h.born_timestamp,
                born_host: conn.peer,
                reconsume_times: h.reconsume_times.unwrap_or(0),
                prepared_transaction_offset: 0,
                properties: e.properties,
            });
        }
    } else {
        let mut body = cmd.body.clone();
        let mut sys = h.sys_flag;
        if sys & sys_flag::COMPRESSED_FLAG != 0 {
            body = match inflate(body) {
                Ok(b) => b,
                Err(e) => return reply(rs::MESSAGE_ILLEGAL, e),
            };
            sys &= !sys_flag::COMPRESSED_FLAG;
        }
        msgs.push(Outgoing {
            body,
            flag: h.flag,
            sys_flag: sys,
            born_timestamp: h.born_timestamp,
            born_host: conn.peer,
            reconsume_times: h.reconsume_times.unwrap_or(0),
            prepared_transaction_offset: 0,
            properties: base_props,
        });
    }
    if msgs.is_empty() {
        return reply(rs::MESSAGE_ILLEGAL, "empty batch");
    }
    for m in &mut msgs {
        // The broker drops WAIT and records the cluster, as RocketMQ's does.
        rmsg::remove_property(&mut m.properties, property::WAIT);
        rmsg::set_property(&mut m.properties, property::CLUSTER, rmq.cluster.clone());
    }

    let first = &msgs[0];
    let delay = rmsg::get_property(&first.properties, property::DELAY)
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|l| *l > 0);
    let half = sys_flag::transaction_value(first.sys_flag) == sys_flag::TRANSACTION_PREPARED_TYPE;
    if half {
        return super::transaction::store_half(rmq, &h.topic, queue_id, msgs).await;
    }
    if let Some(level) = delay {
        return super::delay::schedule(rmq, &h.topic, queue_id, level, msgs).await;
    }
    if rmsg::get_property(&first.properties, super::delay::START_DELIVER_TIME)
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|at| at > super::offsets::now_ms())
    {
        return super::delay::schedule(rmq, &h.topic, queue_id, 0, msgs).await;
    }

    let resp = store_and_ack(rmq, &h.topic, queue_id, queue_id, &msgs, None).await;
    if resp.code != rs::SUCCESS {
        tracing::warn!(peer = %conn.peer, topic = %h.topic, queue_id, remark = ?resp.remark, "RocketMQ send failed");
    }
    resp
}

/// Appends `msgs` to `topic`/`queue` and answers SEND_OK naming `reply_queue` (the queue the
/// producer chose; delayed and half messages are stored elsewhere first) and the offset
/// message id of every stored message.
pub(super) async fn store_and_ack(
    rmq: &RocketMq,
    topic: &str,
    queue: i32,
    reply_queue: i32,
    msgs: &[Outgoing],
    transaction_id: Option<String>,
) -> RemotingCommand {
    let store = &rmq.broker.store;
    let (log, code) = match (rmq.queue_log(topic, queue), store.topic(topic)) {
        (Ok(l), Some(t)) => (l, t.meta.code),
        (Err(e), _) => return reply(rs::SYSTEM_ERROR, e.to_string()),
        (_, None) => return reply(rs::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist")),
    };
    match append(rmq, &log, msgs).await {
        Ok((base, last)) => {
            let ids: Vec<String> = (base..=last)
                .map(|o| {
                    offset_msg_id(
                        rmq.broker_addr,
                        convert::commit_log_offset(code, log.partition(), o),
                    )
                })
                .collect();
            send_ok(rmq, reply_queue, base, ids.join(","), transaction_id)
        }
        Err(e) => reply(rs::SYSTEM_ERROR, e),
    }
}

//! Transactional messages. A half message (sysFlag PREPARED) is stored in
//! `RMQ_SYS_TRANS_HALF_TOPIC` with `REAL_TOPIC`/`REAL_QID`; END_TRANSACTION commits it (the
//! message is appended to its real queue) or rolls it back, and either outcome is recorded in
//! `RMQ_SYS_TRANS_OP_HALF_TOPIC`. Half messages left unresolved longer than the transaction
//! timeout are checked back with the producer group (CHECK_TRANSACTION_STATE), up to 15 times.
//! Both topics are ordinary logs, so pending transactions survive a restart.

use super::clients::ConnHandle;
use super::convert::{self, Location, Outgoing};
use super::offsets::{commit, now_ms};
use super::send::{append, store_and_ack};
use super::{ok, reply, RocketMq};
use bytes::{Bytes, BytesMut};
use codecs::rocketmq::codes::{request as rq, response as rs};
use codecs::rocketmq::header::{CustomHeader, EndTransactionHeader};
use codecs::rocketmq::message::{self as rmsg, property, sys_flag, StoredMessage};
use codecs::rocketmq::{encode_stored, offset_msg_id, RemotingCommand};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Half messages wait here.
pub(crate) const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Resolutions (commit or rollback) of half messages, one record per half offset.
pub(crate) const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Offsets-store group holding the lowest half offset that may still be pending.
const PROGRESS_GROUP: &str = "__transaction_progress";
/// RocketMQ's `transactionCheckMax`.
const MAX_CHECKS: u32 = 15;
const CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";

const COMMIT: i32 = sys_flag::TRANSACTION_COMMIT_TYPE;
const ROLLBACK: i32 = sys_flag::TRANSACTION_ROLLBACK_TYPE;

/// In-memory view of half-message state, rebuilt from the op topic on start.
#[derive(Default)]
pub(crate) struct Transactions {
    resolved: Mutex<HashSet<i64>>,
    checks: Mutex<HashMap<i64, u32>>,
    loaded: std::sync::atomic::AtomicBool,
}

/// Reads every resolution recorded in the op topic (once per process).
fn load_resolved(rmq: &RocketMq) {
    let tx = &rmq.transactions;
    if tx.loaded.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    let Ok(log) = rmq.queue_log(OP_TOPIC, 0) else {
        return;
    };
    let at = Location {
        topic: OP_TOPIC,
        topic_code: 0,
        queue_id: 0,
        partition: log.partition(),
        store_host: rmq.broker_addr,
    };
    let mut pos = log.log_start_offset();
    let mut resolved = tx.resolved.lock();
    while pos < log.high_watermark() {
        let Ok(bytes) = log.read(pos, 1024 * 1024, true) else {
            break;
        };
        let Ok(msgs) = convert::from_batches(bytes, pos, &at) else {
            break;
        };
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            pos = m.queue_offset + 1;
            if let Ok(off) = std::str::from_utf8(&m.body).unwrap_or("").parse::<i64>() {
                resolved.insert(off);
            }
        }
    }
}

/// Stores half messages (SEND with sysFlag PREPARED).
pub(super) async fn store_half(
    rmq: &Arc<RocketMq>,
    topic: &str,
    queue_id: i32,
    mut msgs: Vec<Outgoing>,
) -> RemotingCommand {
    let ensured = match super::ensure_topic(rmq, HALF_TOPIC, 1).await {
        Ok(()) => super::ensure_topic(rmq, OP_TOPIC, 1).await,
        Err(e) => Err(e),
    };
    if let Err(e) = ensured {
        return reply(rs::SYSTEM_ERROR, e);
    }
    for m in &mut msgs {
        rmsg::set_property(&mut m.properties, property::REAL_TOPIC, topic.to_string());
        rmsg::set_property(&mut m.properties, property::REAL_QID, queue_id.to_string());
    }
    let transaction_id = msgs
        .first()
        .and_then(|m| rmsg::get_property(&m.properties, property::UNIQ_KEY))
        .map(str::to_string);
    store_and_ack(rmq, HALF_TOPIC, 0, queue_id, &msgs, transaction_id).await
}

/// Reads the half message at a half-topic offset.
fn read_half(rmq: &RocketMq, offset: i64) -> Option<StoredMessage> {
    let topic = rmq.broker.store.topic(HALF_TOPIC)?;
    let log = &rmq.queue_log(HALF_TOPIC, 0).ok()?;
    let at = Location {
        topic: HALF_TOPIC,
        topic_code: topic.meta.code,
        queue_id: 0,
        partition: log.partition(),
        store_host: rmq.broker_addr,
    };
    let bytes = log.read(offset, 64 * 1024, true).ok()?;
    convert::from_batches(bytes, offset, &at)
        .ok()?
        .into_iter()
        .find(|m| m.queue_offset == offset)
}

async fn record_resolution(rmq: &Arc<RocketMq>, half_offset: i64) -> Result<(), String> {
    let log = rmq.queue_log(OP_TOPIC, 0).map_err(|e| e.to_string())?;
    let op = Outgoing {
        body: Bytes::from(half_offset.to_string()),
        flag: 0,
        sys_flag: 0,
        born_timestamp: now_ms(),
        born_host: rmq.broker_addr,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        properties: vec![(property::TAGS.to_string(), "d".to_string())],
    };
    append(rmq, &log, &[op]).await?;
    rmq.transactions.resolved.lock().insert(half_offset);
    rmq.transactions.checks.lock().remove(&half_offset);
    Ok(())
}

/// END_TRANSACTION: commit, rollback or unknown for one half message.
pub(super) async fn end(
    rmq: &Arc<RocketMq>,
    conn: &ConnHandle,
    cmd: &RemotingCommand,
) -> RemotingCommand {
    let h = match EndTransactionHeader::from_command(cmd) {
        Ok(h) => h,
        Err(e) => return reply(rs::SYSTEM_ERROR, e.to_string()),
    };
    load_resolved(rmq);
    let (code, _, half_offset) = convert::split_commit_log_offset(h.commit_log_offset);
    let half_code = rmq.broker.store.topic(HALF_TOPIC).map(|t| t.meta.code);
    if half_code != Some(code) {
        return reply(
            rs::SYSTEM_ERROR,
            "the commitLogOffset does not name a half message",
        );
    }
    let state = h.commit_or_rollback;
    if state != COMMIT && state != ROLLBACK {
        // TRANSACTION_NOT_TYPE: the producer does not know yet; the check-back will ask again.
        return ok();
    }
    if rmq.transactions.resolved.lock().contains(&half_offset) {
        return ok();
    }
    let Some(half) = read_half(rmq, half_offset) else {
        return reply(
            rs::SYSTEM_ERROR,
            format!("no half message at offset {half_offset}"),
        );
    };
    if state == COMMIT {
        let mut props = half.properties.clone();
        let topic = rmsg::get_property(&props, property::REAL_TOPIC)
            .unwrap_or("")
            .to_string();
        let queue: i32 = rmsg::get_property(&props, property::REAL_QID)
            .and_then(|q| q.parse().ok())
            .unwrap_or(0);
        rmsg::remove_property(&mut props, property::REAL_TOPIC);
        rmsg::remove_property(&mut props, property::REAL_QID);
        rmsg::remove_property(&mut props, CHECK_TIMES);
        let out = Outgoing {
            body: half.body,
            flag: half.flag,
            sys_flag: sys_flag::reset_transaction_value(half.sys_flag, COMMIT),
            born_timestamp: half.born_timestamp,
            born_host: half.born_host,
            reconsume_times: half.reconsume_times,
            prepared_transaction_offset: half.commit_log_offset,
            properties: props,
        };
        let log = match rmq.queue_log(&topic, queue) {
            Ok(l) => l,
            Err(e) => return reply(rs::SYSTEM_ERROR, e.to_string()),
        };
        if let Err(e) = append(rmq, &log, &[out]).await {
            tracing::error!(peer = %conn.peer, %topic, queue, error = %e, "transaction commit failed");
            return reply(rs::SYSTEM_ERROR, e);
        }
    }
    match record_resolution(rmq, half_offset).await {
        Ok(()) => ok(),
        Err(e) => reply(rs::SYSTEM_ERROR, e),
    }
}

/// One pass of the check-back: asks producers about half messages older than the timeout.
async fn check_pass(rmq: &Arc<RocketMq>, timeout_ms: i64) {
    let store = &rmq.broker.store;
    let Some(topic) = store.topic(HALF_TOPIC) else {
        return;
    };
    let Ok(log) = rmq.queue_log(HALF_TOPIC, 0) else {
        return;
    };
    load_resolved(rmq);
    let start = store
        .offsets()
        .fetch(PROGRESS_GROUP, HALF_TOPIC, 0)
        .map(|c| c.offset)
        .unwrap_or(0)
        .max(log.log_start_offset());
    let at = Location {
        topic: HALF_TOPIC,
        topic_code: topic.meta.code,
        queue_id: 0,
        partition: log.partition(),
        store_host: rmq.broker_addr,
    };
    let now = now_ms();
    let mut pos = start;
    let mut low = start;
    let mut contiguous = true;
    while pos < log.high_watermark() {
        let Ok(bytes) = log.read(pos, 256 * 1024, true) else {
            break;
        };
        let Ok(msgs) = convert::from_batches(bytes, pos, &at) else {
            break;
        };
        if msgs.is_empty() {
            break;
        }
        for mut m in msgs {
            let off = m.queue_offset;
            pos = off + 1;
            if rmq.transactions.resolved.lock().contains(&off) {
                if contiguous {
                    low = off + 1;
                }
                continue;
            }
            contiguous = false;
            if now - m.born_timestamp < timeout_ms {
                continue;
            }
            let times = {
                let mut checks = rmq.transactions.checks.lock();
                let c = checks.entry(off).or_insert(0);
                *c += 1;
                *c
            };
            if times > MAX_CHECKS {
                tracing::warn!(
                    half_offset = off,
                    "transaction unresolved after {MAX_CHECKS} checks; discarding"
                );
                let _ = record_resolution(rmq, off).await;
                continue;
            }
            let group = rmsg::get_property(&m.properties, property::PGROUP)
                .unwrap_or("")
                .to_string();
            let Some(conn) = rmq.clients.producer_conn(&group) else {
                tracing::debug!(half_offset = off, %group, "no live producer to check a transaction with");
                continue;
            };
            tracing::debug!(half_offset = off, %group, peer = %conn.peer, times, "checking back a transaction");
            // The check carries the message as it will look in its real queue.
            let real_topic = rmsg::get_property(&m.properties, property::REAL_TOPIC)
                .unwrap_or("")
                .to_string();
            let real_qid: i32 = rmsg::get_property(&m.properties, property::REAL_QID)
                .and_then(|q| q.parse().ok())
                .unwrap_or(0);
            let uniq = rmsg::get_property(&m.properties, property::UNIQ_KEY)
                .unwrap_or("")
                .to_string();
            rmsg::set_property(&mut m.properties, CHECK_TIMES, times.to_string());
            let commit_log_offset = m.commit_log_offset;
            m.topic = real_topic;
            m.queue_id = real_qid;
            m.sys_flag = 0;
            let mut body = BytesMut::new();
            encode_stored(&m, &mut body);
            let cmd = RemotingCommand::new_request(rq::CHECK_TRANSACTION_STATE, Default::default())
                .with_ext("tranStateTableOffset", off)
                .with_ext("commitLogOffset", commit_log_offset)
                .with_ext("msgId", uniq.clone())
                .with_ext("transactionId", uniq)
                .with_ext(
                    "offsetMsgId",
                    offset_msg_id(rmq.broker_addr, commit_log_offset),
                )
                .with_body(body.freeze());
            rmq.push(&conn, cmd);
        }
    }
    if low > start {
        if let Err(e) = commit(rmq, PROGRESS_GROUP, HALF_TOPIC, 0, low) {
            tracing::error!(error = %e, "cannot record transaction check progress");
        }
    }
}

/// Runs the check-back until the process ends.
pub(crate) async fn run(rmq: Arc<RocketMq>, interval: Duration, timeout: Duration) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        check_pass(&rmq, timeout.as_millis() as i64).await;
    }
}

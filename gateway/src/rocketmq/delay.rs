//! Delayed messages. A send with `DELAY` level n (1..=18) or an absolute `__STARTDELIVERTIME`
//! is stored in `SCHEDULE_TOPIC_XXXX` (queue n-1 for level n, queue 18 for absolute times) with
//! `REAL_TOPIC`/`REAL_QID` and its due time, and a background task moves it to the real queue
//! when it is due. Being in the log, pending messages survive a restart; the delivered
//! position of each schedule queue is kept in the offsets store.
//!
//! Level queues fill in due-time order, so their delivery only ever looks at the head.
//! The absolute-time queue is scanned from its lowest undelivered offset; a restart may
//! deliver again a message that was delivered above that point (at least once).

use super::convert::{self, Location, Outgoing};
use super::offsets::{commit, now_ms};
use super::send::{append, store_and_ack};
use super::{reply, RocketMq};
use codecs::rocketmq::codes::response as rs;
use codecs::rocketmq::message::{self as rmsg, property, StoredMessage};
use codecs::rocketmq::RemotingCommand;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The schedule topic, as RocketMQ names it.
pub(crate) const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Offsets-store group holding each schedule queue's delivered position.
const PROGRESS_GROUP: &str = "__schedule_progress";
/// Property with the absolute delivery time set by clients (Aliyun ONS / ali-ons).
pub(crate) const START_DELIVER_TIME: &str = "__STARTDELIVERTIME";
/// Internal property carrying the due time while a message waits.
const DUE_AT: &str = "__DUE_AT";
const LEVELS: usize = 18;
const ABSOLUTE_QUEUE: i32 = LEVELS as i32;

/// The delay of each level, from RocketMQ's `messageDelayLevel` setting.
pub(crate) fn level_delays(spec: &str) -> Vec<u64> {
    spec.split_whitespace()
        .filter_map(|t| {
            let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit())?);
            let n: u64 = n.parse().ok()?;
            Some(match unit {
                "s" => n * 1000,
                "m" => n * 60_000,
                "h" => n * 3_600_000,
                "d" => n * 86_400_000,
                _ => return None,
            })
        })
        .collect()
}

/// Default `messageDelayLevel`.
pub(crate) const DEFAULT_LEVELS: &str =
    "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

/// Stores messages for later delivery to `topic`/`queue_id`. `level` 0 means the messages
/// carry an absolute `__STARTDELIVERTIME`.
pub(super) async fn schedule(
    rmq: &Arc<RocketMq>,
    topic: &str,
    queue_id: i32,
    level: i32,
    mut msgs: Vec<Outgoing>,
) -> RemotingCommand {
    if let Err(e) = super::ensure_topic(rmq, SCHEDULE_TOPIC, LEVELS as i32 + 1).await {
        return reply(rs::SYSTEM_ERROR, e);
    }
    let now = now_ms();
    let (queue, due) = if level > 0 {
        let level = level.min(rmq.delay_levels.len() as i32).max(1);
        let delay = rmq
            .delay_levels
            .get(level as usize - 1)
            .copied()
            .unwrap_or(1000);
        (level - 1, now + delay as i64)
    } else {
        let at = msgs
            .first()
            .and_then(|m| rmsg::get_property(&m.properties, START_DELIVER_TIME))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(now);
        (ABSOLUTE_QUEUE, at)
    };
    tracing::debug!(%topic, queue_id, level, due_in_ms = due - now, "scheduling delayed delivery");
    for m in &mut msgs {
        rmsg::set_property(&mut m.properties, property::REAL_TOPIC, topic.to_string());
        rmsg::set_property(&mut m.properties, property::REAL_QID, queue_id.to_string());
        rmsg::set_property(&mut m.properties, DUE_AT, due.to_string());
    }
    let resp = store_and_ack(rmq, SCHEDULE_TOPIC, queue, queue_id, &msgs, None).await;
    if resp.code == rs::SUCCESS {
        rmq.delay_wakeup.notify_one();
    }
    resp
}

/// Moves one due message to its real queue (keeping WAIT/DELAY/REAL_* as RocketMQ does).
async fn deliver(rmq: &Arc<RocketMq>, m: StoredMessage) -> Result<(), String> {
    let mut props = m.properties;
    let topic = rmsg::get_property(&props, property::REAL_TOPIC)
        .unwrap_or("")
        .to_string();
    let queue: i32 = rmsg::get_property(&props, property::REAL_QID)
        .and_then(|q| q.parse().ok())
        .unwrap_or(0);
    rmsg::remove_property(&mut props, DUE_AT);
    if topic.starts_with("%RETRY%") {
        super::ensure_topic(rmq, &topic, 1).await?;
    }
    let log = rmq
        .queue_log(&topic, queue)
        .map_err(|e| format!("delayed message for {topic}/{queue}: {e}"))?;
    let out = Outgoing {
        body: m.body,
        flag: m.flag,
        sys_flag: m.sys_flag,
        born_timestamp: m.born_timestamp,
        born_host: m.born_host,
        reconsume_times: m.reconsume_times,
        prepared_transaction_offset: 0,
        properties: props,
    };
    append(rmq, &log, &[out]).await.map(|_| ())
}

fn due_at(m: &StoredMessage) -> i64 {
    rmsg::get_property(&m.properties, DUE_AT)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Delivers what is due; returns the earliest future due time seen, if any.
async fn tick(rmq: &Arc<RocketMq>, delivered_absolute: &mut HashSet<i64>) -> Option<i64> {
    let store = &rmq.broker.store;
    let topic = store.topic(SCHEDULE_TOPIC)?;
    let now = now_ms();
    let mut next_due: Option<i64> = None;
    // This broker's schedule queues only: every broker delivers what was sent to it.
    for (queue, log) in rmq.queue_logs(SCHEDULE_TOPIC) {
        let mut pos = store
            .offsets()
            .fetch(PROGRESS_GROUP, SCHEDULE_TOPIC, log.partition())
            .map(|c| c.offset)
            .unwrap_or(0)
            .max(log.log_start_offset());
        let start = pos;
        let at = Location {
            topic: SCHEDULE_TOPIC,
            topic_code: topic.meta.code,
            queue_id: queue,
            partition: log.partition(),
            store_host: rmq.broker_addr,
        };
        let mut scan = pos;
        let mut contiguous = true;
        while scan < log.high_watermark() {
            let Ok(bytes) = log.read(scan, 256 * 1024, true) else {
                break;
            };
            let Ok(msgs) = convert::from_batches(bytes, scan, &at) else {
                break;
            };
            if msgs.is_empty() {
                break;
            }
            let mut stop = false;
            for m in msgs {
                let off = m.queue_offset;
                scan = off + 1;
                let due = due_at(&m);
                let done = queue == ABSOLUTE_QUEUE && delivered_absolute.contains(&off);
                if !done && due <= now {
                    tracing::debug!(
                        queue,
                        offset = off,
                        late_ms = now - due,
                        "delivering delayed message"
                    );
                    if let Err(e) = deliver(rmq, m).await {
                        tracing::error!(error = %e, "delayed delivery failed; will retry");
                        stop = true;
                        break;
                    }
                    if queue == ABSOLUTE_QUEUE {
                        delivered_absolute.insert(off);
                    }
                } else if !done {
                    next_due = Some(next_due.map_or(due, |d: i64| d.min(due)));
                    contiguous = false;
                    if queue != ABSOLUTE_QUEUE {
                        // Level queues are in due order: nothing after this is due either.
                        stop = true;
                        break;
                    }
                }
                if contiguous {
                    pos = off + 1;
                }
            }
            if stop {
                break;
            }
        }
        if pos > start {
            if queue == ABSOLUTE_QUEUE {
                delivered_absolute.retain(|o| *o >= pos);
            }
            if let Err(e) = commit(rmq, PROGRESS_GROUP, SCHEDULE_TOPIC, queue, pos) {
                tracing::error!(error = %e, "cannot record delayed-delivery progress");
            }
        }
    }
    next_due
}

/// Runs delayed delivery until the process ends.
pub(crate) async fn run(rmq: Arc<RocketMq>) {
    let mut delivered_absolute = HashSet::new();
    loop {
        let next = tick(&rmq, &mut delivered_absolute).await;
        let wait = next
            .map(|d| (d - now_ms()).clamp(10, 1000) as u64)
            .unwrap_or(1000);
        let _ =
            tokio::time::timeout(Duration::from_millis(wait), rmq.delay_wakeup.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_levels() {
        let l = level_delays(DEFAULT_LEVELS);
        assert_eq!(l.len(), 18);
        assert_eq!((l[0], l[1], l[4], l[17]), (1000, 5000, 60_000, 7_200_000));
    }
}

//! Follower fetchers: one task per leader node pulls every partition this node follows from
//! it with the Kafka Fetch protocol (as a replica), appends the leader's batches unchanged,
//! fsyncs them before asking for more (so the fetch offset a leader sees is durable here), and
//! takes over the leader's high watermark. After a leader change each partition first asks
//! OffsetForLeaderEpoch where its log diverges and truncates there.

use super::replica::Partition;
use super::Cluster;
use crate::kafka_client::KafkaConn;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

const FETCH_VERSION: i16 = 12;
const EPOCH_VERSION: i16 = 3;
const MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 4 << 20;

/// Keeps one fetcher task running per leader this node follows.
pub(crate) fn start(cluster: Arc<Cluster>) {
    tokio::spawn(async move {
        let mut rx = cluster.replicas.followed.subscribe();
        let mut tasks: HashMap<i32, JoinHandle<()>> = HashMap::new();
        loop {
            let leaders: Vec<i32> = cluster
                .replicas
                .followed_by_leader()
                .keys()
                .copied()
                .collect();
            tasks.retain(|_, h| !h.is_finished());
            for l in leaders {
                tasks
                    .entry(l)
                    .or_insert_with(|| tokio::spawn(fetch_from(cluster.clone(), l)));
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
        }
    });
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn fetch_from(cluster: Arc<Cluster>, leader: i32) {
    let me = cluster.node_id;
    let mut conn: Option<KafkaConn> = None;
    let mut lost = false;
    loop {
        let parts = cluster
            .replicas
            .followed_by_leader()
            .remove(&leader)
            .unwrap_or_default();
        if parts.is_empty() {
            return;
        }
        if conn.is_none() {
            let Some(addr) = cluster.kafka_addr(leader) else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let tls = cluster
                .inter_broker
                .1
                .then(|| cluster.tls_client())
                .flatten();
            match KafkaConn::connect(&addr, format!("replica-{me}"), tls.as_ref()).await {
                Ok(c) => {
                    cluster.refusals.reached(leader);
                    conn = Some(c);
                }
                Err(e) => {
                    if super::liveness::is_refusal(&e) {
                        cluster.refusals.refused(leader);
                    }
                    tracing::debug!(leader, %addr, error = %e, "cannot reach leader");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let result = async {
            truncate_diverged(c, me, &parts).await?;
            fetch_once(&cluster, c, me, &parts).await
        }
        .await;
        match result {
            Ok(()) => lost = false,
            Err(e) => {
                tracing::debug!(leader, error = %e, "replica fetch failed; reconnecting");
                conn = None;
                // The first reconnect is immediate: a refusal then tells at once that the
                // leader's process is gone.
                if lost {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                lost = true;
            }
        }
    }
}

/// OffsetForLeaderEpoch for partitions that just got a new leader; truncates each log to
/// where it diverges from the leader's.
async fn truncate_diverged(
    conn: &mut KafkaConn,
    me: i32,
    parts: &[Arc<Partition>],
) -> anyhow::Result<()> {
    let due: Vec<&Arc<Partition>> = parts.iter().filter(|p| p.take_truncation()).collect();
    if due.is_empty() {
        return Ok(());
    }
    let mut req = OffsetForLeaderEpochRequest::default();
    req.replica_id = BrokerId(me);
    let mut asked: Vec<(&Arc<Partition>, bool)> = Vec::new();
    for p in &due {
        let Some(epoch) = p.log.latest_epoch() else {
            // Nothing written under any epoch: nothing can diverge.
            continue;
        };
        let mut op = OffsetForLeaderPartition::default();
        op.partition = p.index;
        op.current_leader_epoch = p.state().leader_epoch;
        op.leader_epoch = epoch;
        match req
            .topics
            .iter_mut()
            .find(|t| t.topic.0.as_str() == p.topic)
        {
            Some(t) => t.partitions.push(op),
            None => {
                let mut t = OffsetForLeaderTopic::default();
                t.topic = topic_name(&p.topic);
                t.partitions.push(op);
                req.topics.push(t);
            }
        }
        asked.push((p, false));
    }
    if req.topics.is_empty() {
        return Ok(());
    }
    let resp = match conn
        .call(&req, EPOCH_VERSION, Duration::from_secs(10))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            for (p, _) in &asked {
                p.request_truncation();
            }
            return Err(e);
        }
    };
    for t in resp.topics {
        for r in t.partitions {
            let Some(entry) = asked
                .iter_mut()
                .find(|(p, _)| p.topic == t.topic.0.as_str() && p.index == r.partition)
            else {
                continue;
            };
            entry.1 = true;
            let p = entry.0;
            if r.error_code != 0 {
                tracing::debug!(topic = %p.topic, partition = p.index, code = r.error_code, "OffsetForLeaderEpoch refused; retrying");
                p.request_truncation();
                continue;
            }
            let end = p.log.log_end_offset();
            // An epoch the leader never had: keep only what is known committed.
            let target = if r.end_offset < 0 {
                p.log.high_watermark()
            } else {
                r.end_offset
            };
            if target < end {
                let log = p.log.clone();
                tokio::task::spawn_blocking(move || log.truncate_to(target)).await??;
                metrics::counter!("cluster_follower_truncations_total").increment(1);
            }
        }
    }
    for (p, answered) in asked {
        if !answered {
            p.request_truncation();
        }
    }
    Ok(())
}

async fn fetch_once(
    cluster: &Cluster,
    conn: &mut KafkaConn,
    me: i32,
    parts: &[Arc<Partition>],
) -> anyhow::Result<()> {
    let quota = &cluster.replicas.follower_quota;
    let store = &cluster.store;
    let mut held_back = false;
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(me);
    req.max_wait_ms = MAX_WAIT_MS;
    req.min_bytes = 1;
    req.max_bytes = 16 << 20;
    req.isolation_level = 0;
    req.session_id = 0;
    req.session_epoch = -1;
    let mut asked: Vec<&Arc<Partition>> = Vec::new();
    for p in parts {
        let st = p.state();
        if st.needs_truncation {
            continue;
        }
        let mut max_bytes = PARTITION_MAX_BYTES;
        if st.follower_throttled && !st.isr.contains(&me) {
            match quota.allowance(store) {
                Some(0) => {
                    held_back = true;
                    continue;
                }
                Some(n) => max_bytes = max_bytes.min(n.min(i32::MAX as usize) as i32),
                None => {}
            }
        }
        let mut fp = FetchPartition::default();
        fp.partition = p.index;
        fp.current_leader_epoch = st.leader_epoch;
        fp.fetch_offset = p.log.log_end_offset();
        fp.last_fetched_epoch = -1;
        fp.log_start_offset = p.log.log_start_offset();
        fp.partition_max_bytes = max_bytes;
        match req
            .topics
            .iter_mut()
            .find(|t| t.topic.0.as_str() == p.topic)
        {
            Some(t) => t.partitions.push(fp),
            None => {
                let mut t = FetchTopic::default();
                t.topic = topic_name(&p.topic);
                t.partitions.push(fp);
                req.topics.push(t);
            }
        }
        asked.push(p);
    }
    if asked.is_empty() {
        if held_back {
            // Everything is waiting for the throttle to refill.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        return Ok(());
    }
    let resp = conn
        .call(
            &req,
            FETCH_VERSION,
            Duration::from_millis(MAX_WAIT_MS as u64 + 10_000),
        )
        .await?;
    if resp.error_code != 0 {
        anyhow::bail!("leader refused the fetch with error {}", resp.error_code);
    }
    // Append everything first, then one fsync per partition, then publish high watermarks.
    let mut work: Vec<(Arc<Partition>, Option<bytes::Bytes>, i64)> = Vec::new();
    let mut stale = false;
    for t in resp.responses {
        for d in t.partitions {
            let Some(p) = asked
                .iter()
                .find(|p| p.topic == t.topic.0.as_str() && p.index == d.partition_index)
            else {
                continue;
            };
            match d.error_code {
                0 => {
                    if p.follower_throttled(me) {
                        quota.record(store, d.records.as_ref().map_or(0, |r| r.len()));
                    }
                    work.push(((*p).clone(), d.records, d.high_watermark))
                }
                c if c == ResponseError::OffsetOutOfRange.code() => {
                    tracing::warn!(topic = %p.topic, partition = p.index, "follower offset out of range at the leader; re-checking divergence");
                    p.request_truncation();
                }
                c => {
                    tracing::debug!(topic = %p.topic, partition = p.index, code = c, "leader refused partition fetch");
                    stale = true;
                }
            }
        }
    }
    let appended =
        tokio::task::spawn_blocking(move || -> storage::Result<Vec<(Arc<Partition>, i64)>> {
            let mut done = Vec::new();
            for (p, records, hw) in work {
                if let Some(r) = records.filter(|r| !r.is_empty()) {
                    p.log.append_replica(&r)?;
                    p.log.flush()?;
                    metrics::counter!("cluster_replica_bytes_in_total").increment(r.len() as u64);
                }
                done.push((p, hw));
            }
            Ok(done)
        })
        .await??;
    for (p, hw) in appended {
        p.log.set_high_watermark(hw);
        let lag = (hw - p.log.log_end_offset()).max(0);
        metrics::gauge!("cluster_follower_lag_messages", "topic" => p.topic.clone(), "partition" => p.index.to_string()).set(lag as f64);
    }
    if stale {
        // Our metadata is behind the leader's: give it a moment to catch up.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

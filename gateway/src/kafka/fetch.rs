//! Fetch: serves stored batch bytes as they are on disk, long-polls until `min_bytes` are
//! available or `max_wait_ms` passes, and supports incremental fetch sessions.

use super::fetch_session::{Requested, SessionPartition};
use super::{errors, topic_name, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use crate::auth::quota::Kind;
use crate::cluster::replica::Refusal;
use codecs::kafka::batch::BatchIter;
use futures::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use storage::StorageError;

/// Upper bound on a long poll, whatever the client asks.
const MAX_WAIT_CAP_MS: i32 = 60_000;

fn resolve_name(
    ctx: &RequestContext<'_>,
    name: &TopicName,
    id: uuid::Uuid,
) -> (String, uuid::Uuid) {
    if ctx.version >= 13 {
        let n = ctx
            .broker
            .store
            .topic_by_id(id)
            .map(|t| t.meta.name.clone())
            .unwrap_or_default();
        (n, id)
    } else {
        let n = name.0.to_string();
        let id = ctx
            .broker
            .store
            .topic(&n)
            .map(|t| t.meta.id)
            .unwrap_or_default();
        (n, id)
    }
}

struct Read {
    data: PartitionData,
    bytes: usize,
}

/// Who is fetching: a consumer, or a follower replica (with its node id).
#[derive(Clone, Copy)]
struct Fetcher {
    replica: Option<i32>,
}

#[allow(clippy::too_many_arguments)]
fn read_partition(
    ctx: &RequestContext<'_>,
    p: &SessionPartition,
    budget: usize,
    first: bool,
    read_committed: bool,
    fetcher: Fetcher,
    leader_epoch: i32,
    authorized: bool,
) -> Read {
    let mut d = PartitionData::default();
    d.partition_index = p.partition;
    d.high_watermark = -1;
    d.last_stable_offset = -1;
    d.log_start_offset = -1;
    d.aborted_transactions = read_committed.then(Vec::new);
    if !authorized {
        d.error_code = ResponseError::TopicAuthorizationFailed.code();
        return Read { data: d, bytes: 0 };
    }
    let log = match ctx.broker.store.partition(&p.topic, p.partition) {
        Ok(l) => l,
        Err(e) => {
            d.error_code = if ctx.version >= 13 && matches!(e, StorageError::UnknownTopic(_)) {
                kafka_protocol::error::ResponseError::UnknownTopicId.code()
            } else {
                errors::code(&e)
            };
            return Read { data: d, bytes: 0 };
        }
    };
    let mut limit = log.high_watermark();
    let mut quota = None;
    if let Some(c) = &ctx.broker.cluster {
        let me = ctx.broker.node_id;
        let checked = match c.replicas.get(&p.topic, p.partition) {
            None => Err(Refusal::NotLeader),
            Some(part) => match fetcher.replica {
                Some(r) => part
                    .on_follower_fetch(me, r, leader_epoch, p.fetch_offset)
                    .map(|_| {
                        limit = log.log_end_offset();
                        if part.leader_throttles(r) {
                            quota = Some(&c.replicas.leader_quota);
                        }
                    }),
                None => part.check_leader(me, leader_epoch),
            },
        };
        if let Err(r) = checked {
            d.error_code = r.code();
            return Read { data: d, bytes: 0 };
        }
    }
    d.high_watermark = log.high_watermark();
    d.last_stable_offset = log.last_stable_offset();
    if read_committed && fetcher.replica.is_none() {
        // Records of undecided transactions stay hidden from read_committed consumers.
        limit = limit.min(d.last_stable_offset);
    }
    if ctx.version >= 5 {
        d.log_start_offset = log.log_start_offset();
    }
    let mut max = (p.max_bytes.max(0) as usize).min(budget);
    if let Some(allowed) = quota.and_then(|q| q.allowance(&ctx.broker.store)) {
        if allowed == 0 {
            // Held back by the replication throttle: the follower asks again.
            d.records = Some(bytes::Bytes::new());
            return Read { data: d, bytes: 0 };
        }
        max = max.min(allowed);
    }
    match log.read_upto(p.fetch_offset, max, first, limit) {
        Ok(bytes) => {
            let n = bytes.len();
            if let Some(q) = quota {
                q.record(&ctx.broker.store, n);
            }
            if read_committed && fetcher.replica.is_none() && n > 0 {
                let end = BatchIter::new(&bytes)
                    .last()
                    .map(|(_, h, _)| h.last_offset() + 1)
                    .unwrap_or(p.fetch_offset);
                d.aborted_transactions = Some(
                    log.aborted_between(p.fetch_offset, end)
                        .into_iter()
                        .map(|a| {
                            let mut t = AbortedTransaction::default();
                            t.producer_id = ProducerId(a.producer_id);
                            t.first_offset = a.first_offset;
                            t
                        })
                        .collect(),
                );
            }
            d.records = Some(bytes);
            Read { data: d, bytes: n }
        }
        Err(e) => {
            d.error_code = errors::code(&e);
            Read { data: d, bytes: 0 }
        }
    }
}

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: FetchRequest) -> FetchResponse {
    let started = Instant::now();
    let max_wait = Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if ctx.version >= 3 && req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        usize::MAX
    };
    let read_committed = req.isolation_level == 1;
    let replica_id = if ctx.version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let fetcher = Fetcher {
        replica: (replica_id >= 0).then_some(replica_id),
    };
    // A follower must be a node (its certificate chains to the cluster's trust store when
    // cluster TLS is on) and hold CLUSTER_ACTION; a consumer needs READ on each topic.
    let follower_ok = fetcher.replica.is_none()
        || (ctx.session.cluster_peer && ctx.allowed_on_cluster(Operation::ClusterAction));
    if !follower_ok {
        tracing::warn!(target: "audit", peer = %ctx.peer, principal = %ctx.session.principal, replica = replica_id, "fetch as a replica refused: not a cluster node");
    }
    let user = crate::auth::principal::name_of(&ctx.session.principal);
    if fetcher.replica.is_none() {
        let snap = ctx.broker.security.snapshot();
        let ms = ctx
            .broker
            .quotas
            .over(&snap.state, Kind::Fetch, user, ctx.client_id());
        if ms > 0 {
            // Over its fetch quota: an empty answer, and the connection muted meanwhile.
            ctx.throttle(ms);
            let mut resp = FetchResponse::default();
            resp.throttle_time_ms = ms;
            resp.session_id = if ctx.version >= 7 { req.session_id } else { 0 };
            return resp;
        }
    }
    let mut authorized: HashSet<String> = HashSet::new();
    let mut refused: HashSet<String> = HashSet::new();
    let mut epochs: std::collections::HashMap<(String, i32), i32> =
        std::collections::HashMap::new();

    let mut requested = Vec::new();
    for t in &req.topics {
        let (name, id) = resolve_name(ctx, &t.topic, t.topic_id);
        if !name.is_empty()
            && follower_ok
            && fetcher.replica.is_none()
            && !authorized.contains(&name)
            && !refused.contains(&name)
        {
            if ctx.allowed(Operation::Read, ResourceType::Topic, &name) {
                authorized.insert(name.clone());
            } else {
                refused.insert(name.clone());
            }
        }
        for p in &t.partitions {
            // Leader epochs are only checked in a cluster; the single node skips the copies.
            if ctx.broker.cluster.is_some() && p.current_leader_epoch >= 0 {
                epochs.insert((name.clone(), p.partition), p.current_leader_epoch);
            }
            requested.push(Requested {
                topic: if name.is_empty() {
                    format!("\u{0}{id}")
                } else {
                    name.clone()
                },
                topic_id: id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
            });
        }
    }
    let forgotten: Vec<(String, i32)> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|f| {
            let (name, _) = resolve_name(ctx, &f.topic, f.topic_id);
            f.partitions.iter().map(move |p| (name.clone(), *p))
        })
        .collect();
    let (session_epoch, session_id) = if ctx.version >= 7 {
        (req.session_epoch, req.session_id)
    } else {
        (super::fetch_session::FINAL_EPOCH, 0)
    };
    let resolved =
        match ctx
            .broker
            .fetch_sessions
            .resolve(session_id, session_epoch, requested, &forgotten)
        {
            Ok(r) => r,
            Err(e) => {
                let mut resp = FetchResponse::default();
                resp.error_code = e.code();
                return resp;
            }
        };

    // Subscribe before reading so an append between the read and the wait is not missed.
    let mut watches: Vec<_> = resolved
        .partitions
        .iter()
        .filter_map(|p| ctx.broker.store.partition(&p.topic, p.partition).ok())
        .map(|l| {
            if fetcher.replica.is_some() {
                l.subscribe_end()
            } else {
                l.subscribe()
            }
        })
        .collect();
    let reads = loop {
        let mut budget = max_bytes;
        let mut total = 0usize;
        let mut any_error = false;
        let mut reads = Vec::with_capacity(resolved.partitions.len());
        for p in &resolved.partitions {
            let epoch = if epochs.is_empty() {
                -1
            } else {
                epochs
                    .get(&(p.topic.clone(), p.partition))
                    .copied()
                    .unwrap_or(-1)
            };
            let ok = follower_ok && (fetcher.replica.is_some() || !refused.contains(&p.topic));
            let r = read_partition(
                ctx,
                p,
                budget,
                total == 0,
                read_committed,
                fetcher,
                epoch,
                ok,
            );
            budget = budget.saturating_sub(r.bytes);
            total += r.bytes;
            any_error |= r.data.error_code != 0;
            reads.push(r);
        }
        let elapsed = started.elapsed();
        if total >= min_bytes || any_error || elapsed >= max_wait || watches.is_empty() {
            break reads;
        }
        let waits = watches.iter_mut().map(|w| Box::pin(w.changed()));
        let _ = tokio::time::timeout(max_wait - elapsed, select_all(waits)).await;
        for w in watches.iter_mut() {
            w.borrow_and_update();
        }
    };

    let total_bytes: usize = reads.iter().map(|r| r.bytes).sum();
    let mut reported = Vec::new();
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for (p, r) in resolved.partitions.iter().zip(reads) {
        let d = r.data;
        let changed = r.bytes > 0
            || d.error_code != 0
            || p.reported != Some((d.high_watermark, d.log_start_offset));
        if resolved.incremental && !changed {
            continue;
        }
        reported.push((
            p.topic.clone(),
            p.partition,
            d.high_watermark,
            d.log_start_offset,
        ));
        if let Some(records) = d.records.as_ref().filter(|b| !b.is_empty()) {
            let count: i64 = BatchIter::new(records)
                .map(|(_, h, _)| h.record_count as i64)
                .sum();
            metrics::counter!("kafka_messages_out_total", "topic" => p.topic.clone())
                .increment(count as u64);
            metrics::counter!("kafka_bytes_out_total", "topic" => p.topic.clone())
                .increment(r.bytes as u64);
        }
        let same_topic = topics.last().is_some_and(|t| {
            if ctx.version >= 13 {
                t.topic_id == p.topic_id
            } else {
                t.topic.0.as_str() == p.topic
            }
        });
        if !same_topic {
            let mut t = FetchableTopicResponse::default();
            if ctx.version >= 13 {
                t.topic_id = p.topic_id;
            } else {
                t.topic = topic_name(&p.topic);
            }
            topics.push(t);
        }
        if let Some(t) = topics.last_mut() {
            t.partitions.push(d);
        }
    }
    ctx.broker
        .fetch_sessions
        .record(resolved.session_id, &reported);
    let mut resp = FetchResponse::default();
    resp.session_id = resolved.session_id;
    resp.responses = topics;
    if fetcher.replica.is_none() && total_bytes > 0 {
        let snap = ctx.broker.security.snapshot();
        let ms = ctx.broker.quotas.record(
            &snap.state,
            Kind::Fetch,
            user,
            ctx.client_id(),
            total_bytes as f64,
        );
        if ms > 0 {
            ctx.throttle(ms);
            resp.throttle_time_ms = ms;
        }
    }
    resp
}

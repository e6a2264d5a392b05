//! Produce: validates each partition's batches at batch level and appends them; with acks=0
//! nothing is answered. Appends whose topic wants an fsync are flushed (group-committed)
//! before the acknowledgement.

use super::{errors, topic_name, ConnError, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use crate::auth::quota::Kind;
use crate::cluster::replica::{Partition, Refusal};
use bytes::Bytes;
use codecs::kafka::legacy::{self, LegacyPartitionResponse};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use std::sync::Arc;
use storage::{PartitionLog, StorageError};

fn partition_error(index: i32, code: i16) -> PartitionProduceResponse {
    let mut r = PartitionProduceResponse::default();
    r.index = index;
    r.error_code = code;
    r.base_offset = -1;
    r.log_append_time_ms = -1;
    r.log_start_offset = -1;
    r
}

/// Checks a partition's batches against transactions: clients never write markers, and a
/// transactional batch needs WRITE on its transactional id and (KIP-890) an open
/// transaction holding the partition when this node coordinates the id.
fn txn_check(
    ctx: &RequestContext<'_>,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: &[u8],
) -> Option<i16> {
    let mut txn = None;
    for (_, h, _) in codecs::kafka::batch::BatchIter::new(records) {
        if h.is_control() {
            return Some(ResponseError::InvalidRecord.code());
        }
        if h.is_transactional() {
            txn = Some((h.producer_id, h.producer_epoch));
        }
    }
    let (pid, epoch) = txn?;
    let Some(id) = transactional_id.filter(|i| !i.is_empty()) else {
        return Some(ResponseError::InvalidRecord.code());
    };
    if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, id) {
        return Some(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !ctx.broker.coordinates_transaction(id) {
        return None;
    }
    match ctx
        .broker
        .txns
        .verify(ctx.broker, id, pid, epoch, &(topic.to_string(), partition))
    {
        Ok(true) => None,
        Ok(false) => {
            tracing::info!(peer = %ctx.peer, transactional_id = %id, topic, partition, "transactional produce to a partition outside the open transaction");
            Some(ResponseError::InvalidTxnState.code())
        }
        Err(e) => Some(errors::txn(&e, ctx.version >= 9).code()),
    }
}

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    begin(ctx, req).finish().await
}

/// A produce whose batches are appended and whose acknowledgement is still to be earned
/// (fsync where the flush policy asks for it, replication for acks=all). The connection
/// goes on reading and appending the next requests meanwhile; answers keep request order.
pub(crate) struct Pending {
    responses: Vec<TopicProduceResponse>,
    to_flush: Vec<Arc<PartitionLog>>,
    to_replicate: Vec<(usize, usize, Arc<Partition>, i64)>,
    acks: i16,
    timeout_ms: i32,
    me: i32,
    peer: std::net::SocketAddr,
    throttle_ms: i32,
}

/// Validates and appends every partition's batches, in request order.
pub(crate) fn begin(ctx: &RequestContext<'_>, req: ProduceRequest) -> Pending {
    let store = &ctx.broker.store;
    let acks_valid = matches!(req.acks, -1..=1);
    let mut to_flush: Vec<Arc<PartitionLog>> = Vec::new();
    // acks=all in a cluster: (topic index, partition index, replica, end offset) to wait for.
    let mut to_replicate: Vec<(usize, usize, Arc<Partition>, i64)> = Vec::new();
    let me = ctx.broker.node_id;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut request_bytes = 0usize;
    let txn_id: Option<String> = req.transactional_id.as_ref().map(|t| t.to_string());
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        // Kafka checks WRITE before existence, so an unauthorized client cannot probe names.
        let authorized = ctx.allowed(Operation::Write, ResourceType::Topic, &name);
        let mirror_of = authorized
            .then(|| ctx.broker.mirror_link_of(&name))
            .flatten();
        for pd in topic.partition_data {
            request_bytes += pd.records.as_ref().map(|r| r.len()).unwrap_or(0);
            if !authorized {
                parts.push(partition_error(
                    pd.index,
                    ResponseError::TopicAuthorizationFailed.code(),
                ));
                continue;
            }
            if let Some(link) = &mirror_of {
                let mut p = partition_error(pd.index, ResponseError::PolicyViolation.code());
                if ctx.version >= 8 {
                    p.error_message = Some(super::sb(&format!(
                        "topic {name} is a read-only mirror of link {link}; fail the link over before producing to it"
                    )));
                }
                parts.push(p);
                continue;
            }
            if !acks_valid {
                parts.push(partition_error(
                    pd.index,
                    ResponseError::InvalidRequiredAcks.code(),
                ));
                continue;
            }
            let log = match store.partition(&name, pd.index) {
                Ok(l) => l,
                Err(e) => {
                    parts.push(partition_error(pd.index, errors::code(&e)));
                    continue;
                }
            };
            let replica = match &ctx.broker.cluster {
                None => None,
                Some(c) => {
                    let checked = c
                        .replicas
                        .get(&name, pd.index)
                        .ok_or(Refusal::NotLeader)
                        .and_then(|p| p.check_leader(me, -1).map(|_| p))
                        .and_then(|p| {
                            if req.acks == -1 {
                                p.check_min_isr().map(|_| p)
                            } else {
                                Ok(p)
                            }
                        });
                    match checked {
                        Ok(p) => Some(p),
                        Err(r) => {
                            parts.push(partition_error(pd.index, r.code()));
                            continue;
                        }
                    }
                }
            };
            let Some(records) = pd.records else {
                parts.push(partition_error(
                    pd.index,
                    ResponseError::InvalidRecord.code(),
                ));
                continue;
            };
            if let Some(code) = txn_check(ctx, txn_id.as_deref(), &name, pd.index, &records) {
                parts.push(partition_error(pd.index, code));
                continue;
            }
            match log.append(&records) {
                Ok(r) => {
                    if !r.duplicate {
                        metrics::counter!("kafka_messages_in_total", "topic" => name.clone())
                            .increment(r.records as u64);
                        metrics::counter!("kafka_bytes_in_total", "topic" => name.clone())
                            .increment(records.len() as u64);
                    }
                    if r.needs_flush {
                        to_flush.push(log.clone());
                    }
                    if let Some(p) = replica {
                        p.update_high_watermark(me);
                        if req.acks == -1 {
                            to_replicate.push((responses.len(), parts.len(), p, r.last_offset + 1));
                        }
                    }
                    let mut p = PartitionProduceResponse::default();
                    p.index = pd.index;
                    p.base_offset = r.base_offset;
                    p.log_append_time_ms = r.log_append_time;
                    if ctx.version >= 5 {
                        p.log_start_offset = r.log_start_offset;
                    }
                    parts.push(p);
                }
                Err(e) => {
                    tracing::warn!(
                        peer = %ctx.peer, client = ctx.client_id(), topic = %name,
                        partition = pd.index, error = %e, "produce rejected"
                    );
                    metrics::counter!("kafka_request_errors_total", "api" => "Produce", "error" => errors::error(&e).to_string()).increment(1);
                    let mut p = partition_error(pd.index, errors::code(&e));
                    if ctx.version >= 8 {
                        p.error_message = Some(super::sb(&e.to_string()));
                        if let StorageError::InvalidRecords { records, .. } = &e {
                            p.record_errors = records
                                .iter()
                                .map(|(i, why)| {
                                    let mut r = BatchIndexAndErrorMessage::default();
                                    r.batch_index = *i;
                                    r.batch_index_error_message = Some(super::sb(why));
                                    r
                                })
                                .collect();
                        }
                    }
                    parts.push(p);
                }
            }
        }
        let mut t = TopicProduceResponse::default();
        t.name = topic.name;
        t.partition_responses = parts;
        responses.push(t);
    }
    let snap = ctx.broker.security.snapshot();
    let throttle_ms = ctx.broker.quotas.record(
        &snap.state,
        Kind::Produce,
        crate::auth::principal::name_of(&ctx.session.principal),
        ctx.client_id(),
        request_bytes as f64,
    );
    ctx.throttle(throttle_ms);
    Pending {
        responses,
        to_flush,
        to_replicate,
        acks: req.acks,
        timeout_ms: req.timeout_ms,
        me,
        peer: ctx.peer,
        throttle_ms,
    }
}

impl Pending {
    /// Earns the acknowledgement: the answer (none for acks=0) once the appended data is as
    /// durable and replicated as the request asked.
    pub(crate) async fn finish(self) -> Option<ProduceResponse> {
        let Pending {
            mut responses,
            to_flush,
            to_replicate,
            acks,
            timeout_ms,
            me,
            peer,
            throttle_ms,
        } = self;
        if !to_flush.is_empty() {
            let targets: Vec<(String, i32)> = to_flush
                .iter()
                .map(|l| (l.topic().to_string(), l.partition()))
                .collect();
            let failed: Vec<(String, i32, String)> = match tokio::task::spawn_blocking(move || {
                to_flush
                    .iter()
                    .filter_map(|l| {
                        l.flush()
                            .err()
                            .map(|e| (l.topic().to_string(), l.partition(), e.to_string()))
                    })
                    .collect::<Vec<_>>()
            })
            .await
            {
                Ok(f) => f,
                // The flush task died: nothing it covered may be acknowledged.
                Err(e) => targets
                    .into_iter()
                    .map(|(t, p)| (t, p, e.to_string()))
                    .collect(),
            };
            for (t, p, e) in failed {
                tracing::error!(peer = %peer, topic = %t, partition = p, error = %e, "fsync failed");
                for tr in responses.iter_mut().filter(|r| r.name.0.as_str() == t) {
                    for pr in tr.partition_responses.iter_mut().filter(|r| r.index == p) {
                        pr.error_code = ResponseError::KafkaStorageError.code();
                    }
                }
            }
        }
        if !to_replicate.is_empty() {
            let timeout = std::time::Duration::from_millis(timeout_ms.clamp(0, 300_000) as u64);
            let waits = to_replicate
                .iter()
                .map(|(_, _, p, end)| p.wait_replicated(me, *end, timeout));
            let results = futures::future::join_all(waits).await;
            for ((t, i, p, _), res) in to_replicate.iter().zip(results) {
                if let Err(r) = res {
                    tracing::debug!(peer = %peer, topic = %p.topic, partition = p.index, refusal = ?r, "acks=all not satisfied");
                    if let Some(pr) = responses
                        .get_mut(*t)
                        .and_then(|tr| tr.partition_responses.get_mut(*i))
                    {
                        if pr.error_code == 0 {
                            pr.error_code = r.code();
                        }
                    }
                }
            }
        }
        if acks == 0 {
            return None;
        }
        let mut resp = ProduceResponse::default();
        resp.responses = responses;
        resp.throttle_time_ms = throttle_ms;
        Some(resp)
    }
}

/// Produce versions below this carry legacy message sets and are decoded by `codecs`.
pub(crate) const FIRST_MODERN_VERSION: i16 = 3;

/// Produce v0-v2: message format v0/v1 is converted once into a v2 batch, then appended like
/// any other produce; the answer goes back in the old response layout.
pub(crate) async fn handle_legacy(
    ctx: &RequestContext<'_>,
    body: Bytes,
) -> Result<Option<Bytes>, ConnError> {
    let req = legacy::decode_produce(body).map_err(|e| ConnError::Malformed {
        api: ApiKey::Produce,
        version: ctx.version,
        why: e.to_string(),
    })?;
    let mut rejected: Vec<(String, i32)> = Vec::new();
    let mut modern = ProduceRequest::default();
    modern.acks = req.acks;
    modern.timeout_ms = req.timeout_ms;
    for (name, parts) in req.topics {
        let mut t = TopicProduceData::default();
        t.name = topic_name(&name);
        for p in parts {
            let records = if legacy::is_legacy(&p.records) {
                metrics::counter!("kafka_legacy_message_sets_converted_total").increment(1);
                match legacy::convert_to_v2(p.records) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(peer = %ctx.peer, topic = %name, partition = p.index, error = %e, "legacy message set rejected");
                        rejected.push((name.clone(), p.index));
                        continue;
                    }
                }
            } else {
                p.records
            };
            let mut pd = PartitionProduceData::default();
            pd.index = p.index;
            pd.records = Some(records);
            t.partition_data.push(pd);
        }
        modern.topic_data.push(t);
    }
    let Some(resp) = handle(ctx, modern).await else {
        return Ok(None);
    };
    let mut topics: Vec<(String, Vec<LegacyPartitionResponse>)> = resp
        .responses
        .into_iter()
        .map(|t| {
            let parts = t
                .partition_responses
                .into_iter()
                .map(|p| LegacyPartitionResponse {
                    index: p.index,
                    error_code: p.error_code,
                    base_offset: p.base_offset,
                    log_append_time: p.log_append_time_ms,
                })
                .collect();
            (t.name.0.to_string(), parts)
        })
        .collect();
    for (name, index) in rejected {
        let entry = LegacyPartitionResponse {
            index,
            error_code: ResponseError::CorruptMessage.code(),
            base_offset: -1,
            log_append_time: -1,
        };
        match topics.iter_mut().find(|(n, _)| *n == name) {
            Some((_, parts)) => parts.push(entry),
            None => topics.push((name, vec![entry])),
        }
    }
    Ok(Some(legacy::encode_produce_response(
        ctx.version,
        ctx.header.correlation_id,
        &topics,
    )))
}

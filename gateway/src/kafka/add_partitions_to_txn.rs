//! AddPartitionsToTxn: v0-3 from producers (one transaction), v4 from brokers (a batch of
//! transactions, possibly verify-only, KIP-890).

use super::RequestContext;
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

fn results(
    topics: &[AddPartitionsToTxnTopic],
    code: impl Fn(&str, i32) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let mut r = AddPartitionsToTxnTopicResult::default();
            r.name = t.name.clone();
            r.results_by_partition = t
                .partitions
                .iter()
                .map(|p| {
                    let mut pr = AddPartitionsToTxnPartitionResult::default();
                    pr.partition_index = *p;
                    pr.partition_error_code = code(t.name.0.as_str(), *p);
                    pr
                })
                .collect();
            r
        })
        .collect()
}

/// One transaction's partitions: per-partition errors (authorization and unknown partitions
/// fail alone, the others get OPERATION_NOT_ATTEMPTED), or the coordinator's answer for all.
async fn one(
    ctx: &RequestContext<'_>,
    id: &str,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let broker = ctx.broker;
    if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, id) {
        return results(topics, |_, _| {
            ResponseError::TransactionalIdAuthorizationFailed.code()
        });
    }
    if !broker.coordinates_transaction(id) {
        return results(topics, |_, _| ResponseError::NotCoordinator.code());
    }
    let mut bad = std::collections::HashMap::new();
    for t in topics {
        let name = t.name.0.as_str();
        let code = if !ctx.allowed(Operation::Write, ResourceType::Topic, name) {
            Some(ResponseError::TopicAuthorizationFailed)
        } else {
            None
        };
        for p in &t.partitions {
            let c = code.or_else(|| {
                broker
                    .store
                    .partition(name, *p)
                    .is_err()
                    .then_some(ResponseError::UnknownTopicOrPartition)
            });
            if let Some(c) = c {
                bad.insert((name.to_string(), *p), c.code());
            }
        }
    }
    if !bad.is_empty() {
        return results(topics, |t, p| {
            bad.get(&(t.to_string(), p))
                .copied()
                .unwrap_or(ResponseError::OperationNotAttempted.code())
        });
    }
    let parts: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), *p)))
        .collect();
    let fenced_code = ctx.version >= 2;
    if verify_only {
        let mut codes = std::collections::HashMap::new();
        for part in &parts {
            let code = match broker.txns.verify(broker, id, producer_id, epoch, part) {
                Ok(true) => 0,
                Ok(false) => ResponseError::InvalidTxnState.code(),
                Err(e) => super::errors::txn(&e, fenced_code).code(),
            };
            codes.insert(part.clone(), code);
        }
        return results(topics, |t, p| {
            codes.get(&(t.to_string(), p)).copied().unwrap_or(0)
        });
    }
    let code = match broker
        .txns
        .add_partitions(broker, id, producer_id, epoch, &parts)
        .await
    {
        Ok(()) => 0,
        Err(e) => {
            tracing::info!(peer = %ctx.peer, transactional_id = %id, error = %e, "AddPartitionsToTxn refused");
            super::errors::txn(&e, fenced_code).code()
        }
    };
    results(topics, |_, _| code)
}

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut resp = AddPartitionsToTxnResponse::default();
    if ctx.version <= 3 {
        resp.results_by_topic_v3_and_below = one(
            ctx,
            req.v3_and_below_transactional_id.as_str(),
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            false,
            &req.v3_and_below_topics,
        )
        .await;
        return resp;
    }
    // The batched form is for brokers: it needs CLUSTER_ACTION.
    if !ctx.allowed_on_cluster(Operation::ClusterAction) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return resp;
    }
    for t in &req.transactions {
        let mut r = AddPartitionsToTxnResult::default();
        r.transactional_id = t.transactional_id.clone();
        r.topic_results = one(
            ctx,
            t.transactional_id.as_str(),
            t.producer_id.0,
            t.producer_epoch,
            t.verify_only,
            &t.topics,
        )
        .await;
        resp.results_by_transaction.push(r);
    }
    resp
}

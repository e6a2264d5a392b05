//! TxnOffsetCommit: offsets held by the transaction coordinator and committed to the group
//! only when the transaction commits.

use super::RequestContext;
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use storage::PendingOffset;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let id = req.transactional_id.as_str();
    let group = req.group_id.as_str();
    let first = if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed.code())
    } else if !ctx.allowed(Operation::Read, ResourceType::Group, group) {
        Some(ResponseError::GroupAuthorizationFailed.code())
    } else if !ctx.broker.coordinates_transaction(id) {
        Some(ResponseError::NotCoordinator.code())
    } else {
        None
    };
    let mut codes = std::collections::HashMap::new();
    let mut offsets = Vec::new();
    for t in &req.topics {
        let name = t.name.0.as_str();
        let topic_ok = ctx.allowed(Operation::Read, ResourceType::Topic, name);
        for p in &t.partitions {
            let code = first.unwrap_or_else(|| {
                if !topic_ok {
                    ResponseError::TopicAuthorizationFailed.code()
                } else if ctx.broker.store.partition(name, p.partition_index).is_err() {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    offsets.push(PendingOffset {
                        group: group.to_string(),
                        topic: name.to_string(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_deref().unwrap_or("").to_string(),
                    });
                    0
                }
            });
            codes.insert((name.to_string(), p.partition_index), code);
        }
    }
    if !offsets.is_empty() {
        if let Err(e) = ctx
            .broker
            .txns
            .commit_offsets(
                ctx.broker,
                id,
                req.producer_id.0,
                req.producer_epoch,
                offsets,
            )
            .await
        {
            tracing::info!(peer = %ctx.peer, transactional_id = %id, %group, error = %e, "TxnOffsetCommit refused");
            let code = super::errors::txn(&e, ctx.version >= 3).code();
            for c in codes.values_mut().filter(|c| **c == 0) {
                *c = code;
            }
        }
    }
    let mut resp = TxnOffsetCommitResponse::default();
    resp.topics = req
        .topics
        .iter()
        .map(|t| {
            let mut rt = TxnOffsetCommitResponseTopic::default();
            rt.name = t.name.clone();
            rt.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut rp = TxnOffsetCommitResponsePartition::default();
                    rp.partition_index = p.partition_index;
                    rp.error_code = codes
                        .get(&(t.name.0.to_string(), p.partition_index))
                        .copied()
                        .unwrap_or(0);
                    rp
                })
                .collect();
            rt
        })
        .collect();
    resp
}

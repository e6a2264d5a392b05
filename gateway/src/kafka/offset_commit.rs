//! OffsetCommit: validated against the group's membership, stored in the shared offsets store
//! (in a cluster: committed through the metadata quorum to every node).

use super::RequestContext;
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use storage::CommittedOffset;

/// Kafka's `offset.metadata.max.bytes`.
const MAX_METADATA: usize = 4096;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let broker = ctx.broker;
    let group = req.group_id.0.to_string();
    let member = req.member_id.to_string();
    // READ on the group comes first: without it every partition fails with
    // GROUP_AUTHORIZATION_FAILED and the membership is not even looked at.
    let group_allowed = ctx.allowed(Operation::Read, ResourceType::Group, &group);
    let group_error = if group_allowed {
        broker
            .groups
            .validate_commit(
                &group,
                &member,
                req.generation_id_or_member_epoch,
                req.group_instance_id.as_deref(),
            )
            .err()
    } else {
        None
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut entries = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = t.name.0.to_string();
        let mut rt = OffsetCommitResponseTopic::default();
        rt.name = t.name.clone();
        let topic_allowed =
            group_allowed && ctx.allowed(Operation::Read, ResourceType::Topic, &name);
        for p in &t.partitions {
            let code = if !group_allowed {
                ResponseError::GroupAuthorizationFailed.code()
            } else if let Some(e) = group_error {
                e.code()
            } else if !topic_allowed {
                ResponseError::TopicAuthorizationFailed.code()
            } else if broker.store.partition(&name, p.partition_index).is_err() {
                ResponseError::UnknownTopicOrPartition.code()
            } else if p
                .committed_metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_METADATA)
            {
                ResponseError::OffsetMetadataTooLarge.code()
            } else {
                entries.push((
                    name.clone(),
                    p.partition_index,
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_deref().unwrap_or("").to_string(),
                        commit_ms: now,
                    },
                ));
                0
            };
            let mut rp = OffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            rp.error_code = code;
            rt.partitions.push(rp);
        }
        topics.push(rt);
    }
    if let Some(e) = group_error {
        tracing::info!(peer = %ctx.peer, %group, %member, generation = req.generation_id_or_member_epoch, error = ?e, "offset commit refused");
    }
    if !entries.is_empty() {
        if let Err(e) = broker.commit_offsets(&group, entries).await {
            tracing::error!(peer = %ctx.peer, %group, error = %e, "offset commit failed");
            // A quorum that cannot commit now is retriable for the client.
            let code = match e {
                crate::group_offsets::OffsetsError::Storage(_) => ResponseError::KafkaStorageError,
                _ => ResponseError::CoordinatorNotAvailable,
            }
            .code();
            for rt in &mut topics {
                for rp in &mut rt.partitions {
                    if rp.error_code == 0 {
                        rp.error_code = code;
                    }
                }
            }
        }
    }
    let mut resp = OffsetCommitResponse::default();
    resp.topics = topics;
    resp
}

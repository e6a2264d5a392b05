//! OffsetDelete: removes a group's committed offsets for partitions it no longer consumes.

use super::RequestContext;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let broker = ctx.broker;
    let group = req.group_id.0.to_string();
    let mut resp = OffsetDeleteResponse::default();
    if !ctx.allowed(
        crate::auth::acl::Operation::Delete,
        crate::auth::acl::ResourceType::Group,
        &group,
    ) {
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        return resp;
    }
    if broker.store.offsets().group(&group).is_empty() && !broker.groups.exists(&group) {
        resp.error_code = ResponseError::GroupIdNotFound.code();
        return resp;
    }
    let subscribed = broker.groups.subscribed_topics(&group);
    let mut victims = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut rt = OffsetDeleteResponseTopic::default();
        rt.name = t.name.clone();
        let topic_allowed = ctx.allowed(
            crate::auth::acl::Operation::Read,
            crate::auth::acl::ResourceType::Topic,
            &name,
        );
        for p in t.partitions {
            let mut rp = OffsetDeleteResponsePartition::default();
            rp.partition_index = p.partition_index;
            if !topic_allowed {
                rp.error_code = ResponseError::TopicAuthorizationFailed.code();
            } else if subscribed.contains(&name) {
                rp.error_code = ResponseError::GroupSubscribedToTopic.code();
            } else if broker.store.partition(&name, p.partition_index).is_err() {
                rp.error_code = ResponseError::UnknownTopicOrPartition.code();
            } else {
                victims.push((name.clone(), p.partition_index));
            }
            rt.partitions.push(rp);
        }
        resp.topics.push(rt);
    }
    if let Err(e) = broker.delete_offsets(&group, Some(victims)).await {
        tracing::error!(peer = %ctx.peer, %group, error = %e, "offset delete failed");
        resp.error_code = ResponseError::KafkaStorageError.code();
    }
    resp
}

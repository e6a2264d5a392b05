//! DeleteTopics, by name (all versions) or by topic id (v6+).

use super::{sb, topic_name, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let store = &ctx.broker.store;
    let targets: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    // DELETE on the cluster allows every topic; otherwise DESCRIBE and DELETE on each, and
    // a topic the principal may not describe is refused whether it exists or not.
    let cluster_delete = ctx.permits(
        Operation::Delete,
        ResourceType::Cluster,
        crate::auth::acl::CLUSTER_NAME,
    );
    for (name, id) in targets {
        let mut r = DeletableTopicResult::default();
        r.topic_id = id;
        let by_name = name.is_some();
        let name = match name {
            Some(n) => Some(n),
            None => store.topic_by_id(id).map(|t| t.meta.name.clone()),
        };
        match name {
            None => r.error_code = ResponseError::UnknownTopicId.code(),
            Some(n)
                if !cluster_delete
                    && !ctx.allowed(Operation::Describe, ResourceType::Topic, &n) =>
            {
                if by_name {
                    r.name = Some(topic_name(&n));
                }
                r.error_code = ResponseError::TopicAuthorizationFailed.code();
            }
            Some(n)
                if !cluster_delete && !ctx.allowed(Operation::Delete, ResourceType::Topic, &n) =>
            {
                r.name = Some(topic_name(&n));
                r.error_code = ResponseError::TopicAuthorizationFailed.code();
            }
            Some(n) => {
                r.name = Some(topic_name(&n));
                match ctx.broker.delete_topic(&n).await {
                    Ok(id) if ctx.version >= 6 => r.topic_id = id,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::info!(peer = %ctx.peer, topic = %n, error = %e, "delete topic refused");
                        r.error_code = e.code();
                        if ctx.version >= 5 {
                            r.error_message = Some(sb(&e.to_string()));
                        }
                    }
                }
            }
        }
        responses.push(r);
    }
    let mut resp = DeleteTopicsResponse::default();
    resp.responses = responses;
    resp
}

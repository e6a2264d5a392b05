//! CreatePartitions: grows a topic's partition count.

use super::{sb, RequestContext};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let node = ctx.broker.node_id;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        let name = t.name.0.to_string();
        if !ctx.allowed(
            crate::auth::acl::Operation::Alter,
            crate::auth::acl::ResourceType::Topic,
            &name,
        ) {
            r.error_code = ResponseError::TopicAuthorizationFailed.code();
            results.push(r);
            continue;
        }
        let bad_assignment = t.assignments.as_ref().is_some_and(|a| {
            a.iter().any(|x| {
                x.broker_ids.is_empty()
                    || (ctx.broker.cluster.is_none() && x.broker_ids.iter().any(|b| b.0 != node))
            })
        });
        let result = if bad_assignment {
            Err((
                ResponseError::InvalidReplicaAssignment,
                format!("replicas must be [{node}]"),
            ))
        } else {
            ctx.broker
                .create_partitions(&name, t.count, req.validate_only)
                .await
                .map_err(|e| {
                    (
                        ResponseError::try_from_code(e.code())
                            .unwrap_or(ResponseError::UnknownServerError),
                        e.to_string(),
                    )
                })
        };
        if let Err((e, msg)) = result {
            tracing::info!(peer = %ctx.peer, topic = %name, error = ?e, %msg, "create partitions refused");
            r.error_code = e.code();
            r.error_message = Some(sb(&msg));
        }
        results.push(r);
    }
    let mut resp = CreatePartitionsResponse::default();
    resp.results = results;
    resp
}

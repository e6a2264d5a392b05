//! DeleteGroups handler: NON_EMPTY_GROUP while the group has members, GROUP_ID_NOT_FOUND when
//! it has neither members nor committed offsets, else the group and its offsets are removed.

use crate::auth::acl::{Operation, ResourceType};
use crate::kafka::RequestContext;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use std::collections::HashSet;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut seen = HashSet::new();
    let mut resp = DeleteGroupsResponse::default();
    for id in req.groups_names {
        if !seen.insert(id.clone()) {
            continue;
        }
        let mut r = DeletableGroupResult::default();
        if !ctx.allowed(Operation::Delete, ResourceType::Group, id.as_str()) {
            r.error_code = kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code();
            r.group_id = id;
            resp.results.push(r);
            continue;
        }
        r.error_code = ctx.broker.groups.delete_group(id.as_str());
        if r.error_code == 0 && ctx.broker.cluster.is_some() {
            // The coordinator removed its copy; every other node drops the offsets too.
            if let Err(e) = ctx.broker.delete_offsets(id.as_str(), None).await {
                tracing::warn!(peer = %ctx.peer, group = %id.as_str(), error = %e, "group offsets not deleted on every node");
                r.error_code = kafka_protocol::error::ResponseError::CoordinatorNotAvailable.code();
            }
        }
        r.group_id = id;
        resp.results.push(r);
    }
    resp
}

//! SyncGroup handler (v0-5).

use super::coordinator::SyncParams;
use super::str_bytes;
use crate::auth::acl::{Operation, ResourceType};
use crate::kafka::RequestContext;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    let mut resp = SyncGroupResponse::default();
    // From v5 the protocol type and name are mandatory.
    if ctx.version >= 5 && (req.protocol_type.is_none() || req.protocol_name.is_none()) {
        resp.error_code = ResponseError::InconsistentGroupProtocol.code();
        return resp;
    }
    if !ctx.allowed(Operation::Read, ResourceType::Group, req.group_id.as_str()) {
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        return resp;
    }
    let params = SyncParams {
        group_id: req.group_id.as_str().to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.as_str().to_string(),
        group_instance_id: req
            .group_instance_id
            .as_ref()
            .map(|s| s.as_str().to_string()),
        protocol_type: req.protocol_type.as_ref().map(|s| s.as_str().to_string()),
        protocol_name: req.protocol_name.as_ref().map(|s| s.as_str().to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.as_str().to_string(), a.assignment))
            .collect(),
    };
    let r = ctx.broker.groups.sync_group(params).await;
    resp.error_code = r.error;
    if ctx.version >= 5 {
        resp.protocol_type = r.protocol_type.map(str_bytes);
        resp.protocol_name = r.protocol_name.map(str_bytes);
    }
    resp.assignment = r.assignment;
    resp
}

//! Heartbeat handler (v0-4).

use crate::auth::acl::{Operation, ResourceType};
use crate::kafka::RequestContext;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

pub(crate) fn handle(ctx: &RequestContext<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    let mut resp = HeartbeatResponse::default();
    if !ctx.allowed(Operation::Read, ResourceType::Group, req.group_id.as_str()) {
        resp.error_code = kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code();
        return resp;
    }
    resp.error_code = ctx.broker.groups.heartbeat(
        req.group_id.as_str(),
        req.member_id.as_str(),
        req.group_instance_id.as_ref().map(|s| s.as_str()),
        req.generation_id,
    );
    resp
}

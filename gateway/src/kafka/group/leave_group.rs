//! LeaveGroup handler. STUB.

use crate::kafka::RequestContext;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

pub(crate) fn handle(_ctx: &RequestContext<'_>, _req: LeaveGroupRequest) -> LeaveGroupResponse {
    LeaveGroupResponse::default()
}

//! JoinGroup handler. STUB.

use crate::kafka::RequestContext;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

pub(crate) async fn handle(_ctx: &RequestContext<'_>, _req: JoinGroupRequest) -> JoinGroupResponse {
    JoinGroupResponse::default()
}

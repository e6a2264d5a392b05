//! SyncGroup handler. STUB.

use crate::kafka::RequestContext;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

pub(crate) async fn handle(_ctx: &RequestContext<'_>, _req: SyncGroupRequest) -> SyncGroupResponse {
    SyncGroupResponse::default()
}

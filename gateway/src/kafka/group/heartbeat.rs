//! Heartbeat handler. STUB.

use crate::kafka::RequestContext;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

pub(crate) fn handle(_ctx: &RequestContext<'_>, _req: HeartbeatRequest) -> HeartbeatResponse {
    HeartbeatResponse::default()
}

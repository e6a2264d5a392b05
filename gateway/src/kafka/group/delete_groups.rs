//! DeleteGroups handler. STUB.

use crate::kafka::RequestContext;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

pub(crate) fn handle(_ctx: &RequestContext<'_>, _req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    DeleteGroupsResponse::default()
}

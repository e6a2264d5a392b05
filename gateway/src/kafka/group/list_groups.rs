//! ListGroups handler. STUB.

use crate::kafka::RequestContext;
use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

pub(crate) fn handle(_ctx: &RequestContext<'_>, _req: ListGroupsRequest) -> ListGroupsResponse {
    ListGroupsResponse::default()
}

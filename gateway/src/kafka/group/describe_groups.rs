//! DescribeGroups handler. STUB.

use crate::kafka::RequestContext;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

pub(crate) fn handle(
    _ctx: &RequestContext<'_>,
    _req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    DescribeGroupsResponse::default()
}

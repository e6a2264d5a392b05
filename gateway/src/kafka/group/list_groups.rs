//! ListGroups handler: every group, including groups known only by committed offsets
//! (reported as "Empty" with an empty protocol type); v4 states filter, v5 types filter.

use super::str_bytes;
use crate::auth::acl::{Operation, ResourceType};
use crate::kafka::RequestContext;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

/// All groups here are classic groups.
const GROUP_TYPE: &str = "classic";

pub(crate) fn handle(ctx: &RequestContext<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = if ctx.version >= 4 {
        req.states_filter
            .iter()
            .map(|s| s.as_str().trim().to_ascii_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if ctx.version >= 5 {
        req.types_filter
            .iter()
            .map(|s| s.as_str().trim().to_ascii_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    let mut resp = ListGroupsResponse::default();
    if !types.is_empty() && !types.iter().any(|t| t == GROUP_TYPE) {
        return resp;
    }
    // DESCRIBE on the cluster lists every group; otherwise those the principal may describe.
    let all = ctx.permits(
        Operation::Describe,
        ResourceType::Cluster,
        crate::auth::acl::CLUSTER_NAME,
    );
    resp.groups = ctx
        .broker
        .groups
        .list_groups()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_ascii_lowercase()))
        .filter(|g| all || ctx.permits(Operation::Describe, ResourceType::Group, &g.group_id))
        .map(|g| {
            let mut lg = ListedGroup::default();
            lg.group_id = GroupId(str_bytes(g.group_id));
            lg.protocol_type = str_bytes(g.protocol_type);
            if ctx.version >= 4 {
                lg.group_state = str_bytes(g.state);
            }
            if ctx.version >= 5 {
                lg.group_type = str_bytes(GROUP_TYPE);
            }
            lg
        })
        .collect();
    resp
}

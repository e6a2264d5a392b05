//! DescribeGroups handler (v0-5): unknown groups are reported as "Dead" without error, as
//! Kafka does; members carry metadata and assignment only while the group is Stable.

use super::coordinator::GroupSummary;
use super::str_bytes;
use crate::auth::acl::{Operation, ResourceType};
use crate::kafka::RequestContext;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let include_ops = ctx.version >= 3 && req.include_authorized_operations;
    let mut resp = DescribeGroupsResponse::default();
    resp.groups = req
        .groups
        .iter()
        .map(|id| {
            if !ctx.allowed(Operation::Describe, ResourceType::Group, id.as_str()) {
                let mut g = DescribedGroup::default();
                g.group_id = id.clone();
                g.error_code =
                    kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code();
                return g;
            }
            let summary = ctx.broker.groups.describe_group(id.as_str());
            let ops = include_ops.then(|| {
                ctx.broker
                    .security
                    .operations(&ctx.who(), ResourceType::Group, id.as_str())
            });
            described(ctx.version, id.clone(), summary, ops)
        })
        .collect();
    resp
}

pub(super) fn described(
    version: i16,
    id: GroupId,
    s: GroupSummary,
    ops: Option<i32>,
) -> DescribedGroup {
    let mut g = DescribedGroup::default();
    g.group_id = id;
    g.group_state = str_bytes(s.state);
    g.protocol_type = str_bytes(s.protocol_type);
    g.protocol_data = str_bytes(s.protocol);
    g.members = s
        .members
        .into_iter()
        .map(|m| {
            let mut dm = DescribedGroupMember::default();
            dm.member_id = str_bytes(m.member_id);
            if version >= 4 {
                dm.group_instance_id = m.group_instance_id.map(str_bytes);
            }
            dm.client_id = str_bytes(m.client_id);
            dm.client_host = str_bytes(m.client_host);
            dm.member_metadata = m.metadata;
            dm.member_assignment = m.assignment;
            dm
        })
        .collect();
    if let Some(ops) = ops.filter(|_| version >= 3) {
        g.authorized_operations = ops;
    }
    g
}

#[cfg(test)]
mod tests {
    use super::super::coordinator::MemberSummary;
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn encodes_in_every_version() {
        let s = GroupSummary {
            state: "Stable",
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![MemberSummary {
                member_id: "m".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                metadata: Bytes::from_static(b"x"),
                assignment: Bytes::from_static(b"y"),
            }],
        };
        for v in 0..=5 {
            for ops in [false, true] {
                let mut resp = DescribeGroupsResponse::default();
                resp.groups = vec![described(
                    v,
                    GroupId(str_bytes("g")),
                    s.clone(),
                    ops.then_some(328),
                )];
                let mut buf = BytesMut::new();
                assert!(resp.encode(&mut buf, v).is_ok(), "v{v}");
                let expected = if ops && v >= 3 { 328 } else { i32::MIN };
                assert_eq!(resp.groups[0].authorized_operations, expected);
            }
        }
    }
}

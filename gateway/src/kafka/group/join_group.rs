//! JoinGroup handler (v0-9).

use super::coordinator::{JoinParams, JoinResult};
use super::{client_host, str_bytes};
use crate::auth::acl::{Operation, ResourceType};
use crate::kafka::RequestContext;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    let version = ctx.version;
    if !ctx.allowed(Operation::Read, ResourceType::Group, req.group_id.as_str()) {
        let mut resp = JoinGroupResponse::default();
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        resp.generation_id = -1;
        resp.member_id = req.member_id.clone();
        if version < 7 {
            resp.protocol_name = Some(str_bytes(String::new()));
        }
        return resp;
    }
    let group_instance_id = req
        .group_instance_id
        .as_ref()
        .map(|s| s.as_str().to_string());
    let params = JoinParams {
        group_id: req.group_id.as_str().to_string(),
        member_id: req.member_id.as_str().to_string(),
        // Only dynamic members of v4+ go through the MEMBER_ID_REQUIRED handshake.
        require_known_member_id: version >= 4 && group_instance_id.is_none(),
        group_instance_id,
        support_skip_assignment: version >= 9,
        client_id: ctx.client_id().to_string(),
        client_host: client_host(ctx.peer),
        // v0 has a single timeout.
        rebalance_timeout_ms: if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        session_timeout_ms: req.session_timeout_ms,
        protocol_type: req.protocol_type.as_str().to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.as_str().to_string(), p.metadata))
            .collect(),
    };
    let result = ctx.broker.groups.join_group(params).await;
    response(version, result)
}

/// The response for this version: fields a version lacks are left at their defaults.
pub(super) fn response(version: i16, r: JoinResult) -> JoinGroupResponse {
    let mut resp = JoinGroupResponse::default();
    resp.error_code = r.error;
    resp.generation_id = r.generation_id;
    if version >= 7 {
        resp.protocol_type = r.protocol_type.map(str_bytes);
        resp.protocol_name = r.protocol_name.map(str_bytes);
    } else {
        // Before v7 the protocol name is not nullable.
        resp.protocol_name = Some(str_bytes(r.protocol_name.unwrap_or_default()));
    }
    resp.leader = str_bytes(r.leader_id);
    if version >= 9 {
        resp.skip_assignment = r.skip_assignment;
    }
    resp.member_id = str_bytes(r.member_id);
    resp.members = r
        .members
        .into_iter()
        .map(|m| {
            let mut jm = JoinGroupResponseMember::default();
            jm.member_id = str_bytes(m.member_id);
            if version >= 5 {
                jm.group_instance_id = m.group_instance_id.map(str_bytes);
            }
            jm.metadata = m.metadata;
            jm
        })
        .collect();
    resp
}

#[cfg(test)]
mod tests {
    use super::super::coordinator::JoinedMember;
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn encodes_in_every_version() {
        let ok = JoinResult {
            members: vec![JoinedMember {
                member_id: "m-1".into(),
                group_instance_id: Some("i".into()),
                metadata: Bytes::from_static(b"meta"),
            }],
            member_id: "m-1".into(),
            generation_id: 3,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            leader_id: "m-1".into(),
            skip_assignment: true,
            error: 0,
        };
        let err = JoinResult::error("x", ResponseError::MemberIdRequired);
        for v in 0..=9 {
            for r in [ok.clone(), err.clone()] {
                let resp = response(v, r);
                let mut buf = BytesMut::new();
                assert!(resp.encode(&mut buf, v).is_ok(), "v{v}");
                if v < 7 {
                    assert!(resp.protocol_name.is_some());
                }
            }
        }
    }
}

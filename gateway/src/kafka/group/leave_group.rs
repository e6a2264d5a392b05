//! LeaveGroup handler: v0-2 one member id, v3+ a batch of members (by member id and/or
//! group.instance.id) with per-member errors.

use super::coordinator::{LeaveOutcome, NONE};
use super::str_bytes;
use crate::auth::acl::{Operation, ResourceType};
use crate::kafka::RequestContext;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

pub(crate) fn handle(ctx: &RequestContext<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    if !ctx.allowed(Operation::Read, ResourceType::Group, req.group_id.as_str()) {
        let mut resp = LeaveGroupResponse::default();
        resp.error_code = kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code();
        return resp;
    }
    let members: Vec<(String, Option<String>)> = if ctx.version <= 2 {
        vec![(req.member_id.as_str().to_string(), None)]
    } else {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.as_str().to_string(),
                    m.group_instance_id.as_ref().map(|s| s.as_str().to_string()),
                )
            })
            .collect()
    };
    let (top, outcomes) = ctx
        .broker
        .groups
        .leave_group(req.group_id.as_str(), members);
    response(ctx.version, top, outcomes)
}

pub(super) fn response(version: i16, top: i16, outcomes: Vec<LeaveOutcome>) -> LeaveGroupResponse {
    let mut resp = LeaveGroupResponse::default();
    if version <= 2 {
        // Kafka reports the first member error at the top level for single-member versions.
        resp.error_code = if top != NONE {
            top
        } else {
            outcomes
                .iter()
                .map(|o| o.error)
                .find(|e| *e != NONE)
                .unwrap_or(NONE)
        };
    } else {
        resp.error_code = top;
        resp.members = outcomes
            .into_iter()
            .map(|o| {
                let mut m = MemberResponse::default();
                m.member_id = str_bytes(o.member_id);
                m.group_instance_id = o.group_instance_id.map(str_bytes);
                m.error_code = o.error;
                m
            })
            .collect();
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn member_errors_per_version() {
        let outcomes = vec![LeaveOutcome {
            member_id: "m".into(),
            group_instance_id: Some("i".into()),
            error: 25,
        }];
        let v1 = response(1, NONE, outcomes.clone());
        assert_eq!(v1.error_code, 25);
        assert!(v1.members.is_empty());
        let v3 = response(3, NONE, outcomes.clone());
        assert_eq!(v3.error_code, NONE);
        assert_eq!(v3.members.len(), 1);
        assert_eq!(v3.members[0].error_code, 25);
        for v in 0..=5 {
            let mut buf = BytesMut::new();
            assert!(response(v, NONE, outcomes.clone())
                .encode(&mut buf, v)
                .is_ok());
        }
    }
}

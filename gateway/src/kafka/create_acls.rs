//! CreateAcls: ALTER on the cluster; each binding validated as Kafka does and stored through
//! the metadata quorum (or the node's security file).

use super::{sb, RequestContext};
use crate::auth::acl::{AclBinding, Operation};
use crate::auth::state::SecurityChange;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

fn result(code: i16, msg: Option<String>) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(code)
        .with_error_message(msg.map(|m| sb(&m)))
}

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: CreateAclsRequest) -> CreateAclsResponse {
    let n = req.creations.len();
    let all = |code: i16, msg: &str| {
        CreateAclsResponse::default()
            .with_results((0..n).map(|_| result(code, Some(msg.into()))).collect())
    };
    if let Some((code, msg)) = ctx.acl_admin_refusal(Operation::Alter, "CreateAcls") {
        return all(code, &msg);
    }
    let mut results = Vec::with_capacity(n);
    let mut valid = Vec::new();
    for c in &req.creations {
        if ctx.version == 0 && c.resource_pattern_type != 3 {
            results.push(result(
                ResponseError::UnsupportedVersion.code(),
                Some("Version 0 only supports literal resource pattern types".into()),
            ));
            continue;
        }
        match AclBinding::from_request(
            c.resource_type,
            &c.resource_name,
            c.resource_pattern_type,
            &c.principal,
            &c.host,
            c.operation,
            c.permission_type,
        ) {
            Ok(b) => {
                valid.push(b);
                results.push(result(0, None));
            }
            Err(e) => results.push(result(
                ResponseError::InvalidRequest.code(),
                Some(e.to_string()),
            )),
        }
    }
    if !valid.is_empty() {
        let change = SecurityChange::CreateAcls(valid);
        crate::auth::audit_change(&ctx.session.principal, ctx.peer, &change);
        if let Err(e) = ctx.broker.change_security(change).await {
            tracing::warn!(peer = %ctx.peer, error = %e, "CreateAcls failed");
            let code = ResponseError::UnknownServerError.code();
            for r in results.iter_mut().filter(|r| r.error_code == 0) {
                *r = result(code, Some(e.to_string()));
            }
        }
    }
    CreateAclsResponse::default().with_results(results)
}

//! DeleteAcls: ALTER on the cluster; each filter's matching bindings are removed and listed
//! in its result.

use super::{sb, RequestContext};
use crate::auth::acl::{AclBinding, AclFilter, Operation};
use crate::auth::state::SecurityChange;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use std::collections::BTreeSet;

fn filter_error(code: i16, msg: &str) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default()
        .with_error_code(code)
        .with_error_message(Some(sb(msg)))
}

fn matching(b: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.resource_type.code())
        .with_resource_name(sb(&b.name))
        .with_pattern_type(b.pattern.code())
        .with_principal(sb(&b.principal))
        .with_host(sb(&b.host))
        .with_operation(b.operation.code())
        .with_permission_type(b.permission.code())
}

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let n = req.filters.len();
    let all = |code: i16, msg: &str| {
        DeleteAclsResponse::default()
            .with_filter_results((0..n).map(|_| filter_error(code, msg)).collect())
    };
    if let Some((code, msg)) = ctx.acl_admin_refusal(Operation::Alter, "DeleteAcls") {
        return all(code, &msg);
    }
    let snap = ctx.broker.security.snapshot();
    let mut results = Vec::with_capacity(n);
    let mut remove: BTreeSet<AclBinding> = BTreeSet::new();
    for f in &req.filters {
        match AclFilter::from_request(
            f.resource_type_filter,
            f.resource_name_filter.as_deref(),
            f.pattern_type_filter,
            f.principal_filter.as_deref(),
            f.host_filter.as_deref(),
            f.operation,
            f.permission_type,
        ) {
            Ok(filter) => {
                let hits: Vec<&AclBinding> = snap
                    .state
                    .acls
                    .iter()
                    .filter(|b| filter.matches(b))
                    .collect();
                remove.extend(hits.iter().map(|b| (*b).clone()));
                results.push(
                    DeleteAclsFilterResult::default()
                        .with_matching_acls(hits.into_iter().map(matching).collect()),
                );
            }
            Err(e) => results.push(filter_error(
                ResponseError::InvalidRequest.code(),
                &e.to_string(),
            )),
        }
    }
    if !remove.is_empty() {
        let change = SecurityChange::DeleteAcls(remove.into_iter().collect());
        crate::auth::audit_change(&ctx.session.principal, ctx.peer, &change);
        if let Err(e) = ctx.broker.change_security(change).await {
            tracing::warn!(peer = %ctx.peer, error = %e, "DeleteAcls failed");
            return all(ResponseError::UnknownServerError.code(), &e.to_string());
        }
    }
    DeleteAclsResponse::default().with_filter_results(results)
}

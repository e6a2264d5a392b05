//! DescribeAcls: DESCRIBE on the cluster; the bindings a filter selects, grouped by resource
//! pattern as Kafka answers.

use super::{sb, RequestContext};
use crate::auth::acl::{AclBinding, AclFilter, Operation};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use std::collections::BTreeMap;

fn error(code: i16, msg: &str) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(code)
        .with_error_message(Some(sb(msg)))
}

/// Groups bindings into Kafka's resources (type, name, pattern type) with their entries.
pub(crate) fn group(bindings: Vec<AclBinding>) -> Vec<DescribeAclsResource> {
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in bindings {
        by_resource
            .entry((b.resource_type.code(), b.name.clone(), b.pattern.code()))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(sb(&b.principal))
                    .with_host(sb(&b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    by_resource
        .into_iter()
        .map(|((t, name, p), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(t)
                .with_resource_name(sb(&name))
                .with_pattern_type(p)
                .with_acls(acls)
        })
        .collect()
}

pub(crate) fn handle(ctx: &RequestContext<'_>, req: DescribeAclsRequest) -> DescribeAclsResponse {
    if !ctx.broker.security.authorizer {
        return error(
            ResponseError::SecurityDisabled.code(),
            "No Authorizer is configured on the broker",
        );
    }
    if !ctx.allowed_on_cluster(Operation::Describe) {
        return error(
            ResponseError::ClusterAuthorizationFailed.code(),
            "Request DescribeAcls is not authorized.",
        );
    }
    let filter = match AclFilter::from_request(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        req.pattern_type_filter,
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return error(ResponseError::InvalidRequest.code(), &e.to_string()),
    };
    let snap = ctx.broker.security.snapshot();
    let matching: Vec<AclBinding> = snap
        .state
        .acls
        .iter()
        .filter(|b| filter.matches(b))
        .cloned()
        .collect();
    DescribeAclsResponse::default().with_resources(group(matching))
}

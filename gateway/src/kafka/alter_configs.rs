//! AlterConfigs (legacy): replaces a resource's whole set of dynamic configs.

use super::topic_configs::replace;
use super::{sb, RequestContext};
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use std::collections::BTreeMap;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let mut r = AlterConfigsResourceResponse::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        if let Err((e, msg)) = super::topic_configs::config_access(
            ctx,
            res.resource_type,
            &res.resource_name,
            crate::auth::acl::Operation::AlterConfigs,
        ) {
            r.error_code = e.code();
            r.error_message = Some(sb(&msg));
            responses.push(r);
            continue;
        }
        let configs: BTreeMap<String, String> = res
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        if let Err((e, msg)) = replace(
            ctx.broker,
            res.resource_type,
            &res.resource_name,
            configs,
            req.validate_only,
        )
        .await
        {
            tracing::info!(peer = %ctx.peer, resource = %res.resource_name, error = ?e, %msg, "alter configs refused");
            r.error_code = e.code();
            r.error_message = Some(sb(&msg));
        }
        responses.push(r);
    }
    let mut resp = AlterConfigsResponse::default();
    resp.responses = responses;
    resp
}

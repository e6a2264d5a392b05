//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on individual keys.

use super::topic_configs::{current, replace};
use super::{sb, RequestContext};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
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
        let merged =
            current(ctx.broker, res.resource_type, &res.resource_name).and_then(|mut map| {
                for c in &res.configs {
                    let key = c.name.to_string();
                    let value = c.value.as_ref().map(|v| v.to_string());
                    match (c.config_operation, value) {
                        (SET, Some(v)) => {
                            map.insert(key, v);
                        }
                        (DELETE, _) => {
                            map.remove(&key);
                        }
                        (APPEND | SUBTRACT, Some(v)) => {
                            // Only list-typed keys (cleanup.policy) accept these.
                            if key != "cleanup.policy" && key != "log.cleanup.policy" {
                                return Err((
                                    ResponseError::InvalidConfig,
                                    format!("{key} is not a list config"),
                                ));
                            }
                            let cur = map.get(&key).cloned().unwrap_or_else(|| "delete".into());
                            let mut items: Vec<String> = cur
                                .split(',')
                                .map(|s| s.trim().to_string())
                                .filter(|s| !s.is_empty())
                                .collect();
                            for x in v.split(',').map(str::trim) {
                                if c.config_operation == APPEND {
                                    if !items.iter().any(|i| i == x) {
                                        items.push(x.to_string());
                                    }
                                } else {
                                    items.retain(|i| i != x);
                                }
                            }
                            map.insert(key, items.join(","));
                        }
                        (op, _) => {
                            return Err((
                                ResponseError::InvalidRequest,
                                format!("invalid operation {op} for {key}"),
                            ));
                        }
                    }
                }
                Ok(map)
            });
        let result = match merged {
            Ok(map) => {
                replace(
                    ctx.broker,
                    res.resource_type,
                    &res.resource_name,
                    map,
                    req.validate_only,
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err((e, msg)) = result {
            tracing::info!(peer = %ctx.peer, resource = %res.resource_name, error = ?e, %msg, "incremental alter configs refused");
            r.error_code = e.code();
            r.error_message = Some(sb(&msg));
        }
        responses.push(r);
    }
    let mut resp = IncrementalAlterConfigsResponse::default();
    resp.responses = responses;
    resp
}

//! DescribeClientQuotas: DESCRIBE_CONFIGS on the cluster; the quota entities a filter
//! selects (exact name, the default entity, or any entity of a type; `strict` for exactly
//! the filtered types).

use super::{sb, RequestContext};
use crate::auth::acl::Operation;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use std::collections::BTreeSet;

fn error(code: i16, msg: &str) -> DescribeClientQuotasResponse {
    DescribeClientQuotasResponse::default()
        .with_error_code(code)
        .with_error_message(Some(sb(msg)))
        .with_entries(None)
}

enum Match {
    Exact(String),
    Default,
    Any,
}

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    if !ctx.allowed_on_cluster(Operation::DescribeConfigs) {
        return error(
            ResponseError::ClusterAuthorizationFailed.code(),
            "Request DescribeClientQuotas is not authorized.",
        );
    }
    let mut filter: Vec<(String, Match)> = Vec::new();
    let mut seen = BTreeSet::new();
    for c in &req.components {
        let t = c.entity_type.to_string();
        if t.is_empty() {
            return error(
                ResponseError::InvalidRequest.code(),
                "Invalid empty entity type.",
            );
        }
        if !matches!(t.as_str(), "user" | "client-id" | "ip") {
            return error(
                ResponseError::UnsupportedVersion.code(),
                &format!("Unsupported entity type {t}"),
            );
        }
        if !seen.insert(t.clone()) {
            return error(
                ResponseError::InvalidRequest.code(),
                &format!("Entity type {t} cannot appear more than once in the filter."),
            );
        }
        let m = match (c.match_type, c._match.as_ref()) {
            (0, Some(m)) => Match::Exact(m.to_string()),
            (0, None) => {
                return error(
                    ResponseError::InvalidRequest.code(),
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.",
                )
            }
            (1, None) => Match::Default,
            (2, None) => Match::Any,
            (1 | 2, Some(_)) => {
                return error(
                    ResponseError::InvalidRequest.code(),
                    "Request specified MATCH_TYPE_DEFAULT or MATCH_TYPE_SPECIFIED, but set match string.",
                )
            }
            (t, _) => {
                return error(
                    ResponseError::InvalidRequest.code(),
                    &format!("Unknown match type {t}"),
                )
            }
        };
        filter.push((t, m));
    }
    if seen.contains("ip") && (seen.contains("user") || seen.contains("client-id")) {
        return error(
            ResponseError::InvalidRequest.code(),
            "Invalid entity filter component combination, IP filter component should not be used with user or clientId filter component.",
        );
    }
    let snap = ctx.broker.security.snapshot();
    let entries = snap
        .state
        .quotas
        .values()
        .filter(|q| {
            let fits = filter.iter().all(|(t, m)| match (m, q.entity.get(t)) {
                (_, None) => false,
                (Match::Exact(n), Some(v)) => v.as_deref() == Some(n.as_str()),
                (Match::Default, Some(v)) => v.is_none(),
                (Match::Any, Some(_)) => true,
            });
            fits && (!req.strict || q.entity.len() == filter.len())
        })
        .map(|q| {
            EntryData::default()
                .with_entity(
                    q.entity
                        .iter()
                        .map(|(t, n)| {
                            EntityData::default()
                                .with_entity_type(sb(t))
                                .with_entity_name(n.as_deref().map(sb))
                        })
                        .collect(),
                )
                .with_values(
                    q.values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(sb(k)).with_value(v.0))
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

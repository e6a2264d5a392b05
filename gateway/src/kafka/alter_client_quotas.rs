//! AlterClientQuotas: ALTER_CONFIGS on the cluster; sets or removes quota keys of user,
//! client-id and ip entities (Kafka's validation and messages), stored with the security
//! metadata.

use super::{sb, RequestContext};
use crate::auth::acl::Operation;
use crate::auth::quota::{CLIENT_KEYS, IP_KEYS};
use crate::auth::state::{QuotaEntity, SecurityChange};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::EntryData as ReqEntry;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};

fn entry(req: &ReqEntry, code: i16, msg: Option<String>) -> EntryData {
    EntryData::default()
        .with_error_code(code)
        .with_error_message(msg.map(|m| sb(&m)))
        .with_entity(
            req.entity
                .iter()
                .map(|e| {
                    EntityData::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect(),
        )
}

/// The entity and operations of an entry, or why it is invalid.
/// Quota keys to set (`Some`) or remove (`None`).
type QuotaOps = Vec<(String, Option<f64>)>;

fn validate(e: &ReqEntry) -> Result<(QuotaEntity, QuotaOps), String> {
    if e.entity.is_empty() {
        return Err("Invalid empty client quota entity".into());
    }
    let mut entity = QuotaEntity::new();
    for d in &e.entity {
        let t = d.entity_type.to_string();
        if !matches!(t.as_str(), "user" | "client-id" | "ip") {
            return Err(format!("Unhandled client quota entity type: {t}"));
        }
        if let Some(n) = &d.entity_name {
            if n.is_empty() {
                return Err(format!("Empty {t} not supported"));
            }
            if t == "ip" && n.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("{n} is not a valid IP or resolvable host."));
            }
        }
        if entity
            .insert(t.clone(), d.entity_name.as_ref().map(|n| n.to_string()))
            .is_some()
        {
            return Err(format!("Duplicate {t} entity"));
        }
    }
    let ip = entity.contains_key("ip");
    if ip && entity.len() > 1 {
        return Err("Invalid quota entity combination, IP entity should not be used with user/client ID entity.".into());
    }
    let keys: &[&str] = if ip { IP_KEYS } else { CLIENT_KEYS };
    let mut ops = Vec::new();
    for op in &e.ops {
        let k = op.key.to_string();
        if !keys.contains(&k.as_str()) {
            return Err(format!("Invalid configuration key {k}"));
        }
        if ops.iter().any(|(x, _): &(String, Option<f64>)| *x == k) {
            return Err(format!(
                "Duplicate quota key {k} not updating quota for this entity"
            ));
        }
        if op.remove {
            ops.push((k, None));
            continue;
        }
        if op.value <= 0.0 || !op.value.is_finite() {
            return Err(format!("Quota {k} must be greater than 0"));
        }
        let integral = matches!(
            k.as_str(),
            "producer_byte_rate" | "consumer_byte_rate" | "connection_creation_rate"
        );
        if integral && op.value.fract() != 0.0 {
            return Err(format!("{k} cannot be a fractional value."));
        }
        ops.push((k, Some(op.value)));
    }
    Ok((entity, ops))
}

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    if !ctx.allowed_on_cluster(Operation::AlterConfigs) {
        return AlterClientQuotasResponse::default().with_entries(
            req.entries
                .iter()
                .map(|e| {
                    entry(
                        e,
                        ResponseError::ClusterAuthorizationFailed.code(),
                        Some("Cluster authorization failed.".into()),
                    )
                })
                .collect(),
        );
    }
    let mut out = Vec::with_capacity(req.entries.len());
    for e in &req.entries {
        match validate(e) {
            Err(msg) => out.push(entry(e, ResponseError::InvalidRequest.code(), Some(msg))),
            Ok(_) if req.validate_only => out.push(entry(e, 0, None)),
            Ok((entity, ops)) => {
                let change = SecurityChange::AlterQuotas { entity, ops };
                crate::auth::audit_change(&ctx.session.principal, ctx.peer, &change);
                match ctx.broker.change_security(change).await {
                    Ok(()) => out.push(entry(e, 0, None)),
                    Err(err) => out.push(entry(
                        e,
                        ResponseError::UnknownServerError.code(),
                        Some(err.to_string()),
                    )),
                }
            }
        }
    }
    AlterClientQuotasResponse::default().with_entries(out)
}

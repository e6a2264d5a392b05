//! AlterUserScramCredentials: ALTER on the cluster; what `kafka-configs.sh --alter
//! --add-config 'SCRAM-SHA-512=[password=...]' --entity-type users` sends. The client sends
//! a salt and the salted password; the server keeps only the derived StoredKey and ServerKey.

use super::{sb, RequestContext};
use crate::auth::acl::Operation;
use crate::auth::scram::{Credential, Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::auth::state::SecurityChange;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use std::collections::BTreeMap;

fn result(user: &str, code: i16, msg: Option<&str>) -> AlterUserScramCredentialsResult {
    AlterUserScramCredentialsResult::default()
        .with_user(sb(user))
        .with_error_code(code)
        .with_error_message(msg.map(sb))
}

type Refusal = (ResponseError, &'static str);

/// A user named once in the request, with a name.
fn check_user(name: &str, count: &BTreeMap<String, usize>) -> Result<(), Refusal> {
    if count.get(name).copied().unwrap_or(0) > 1 {
        Err((
            ResponseError::DuplicateResource,
            "A user credential cannot be altered twice in the same request",
        ))
    } else if name.is_empty() {
        Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty",
        ))
    } else {
        Ok(())
    }
}

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for n in req
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(req.upsertions.iter().map(|u| u.name.to_string()))
    {
        *count.entry(n).or_default() += 1;
    }
    if !ctx.allowed_on_cluster(Operation::Alter) {
        return AlterUserScramCredentialsResponse::default().with_results(
            count
                .keys()
                .map(|u| result(u, ResponseError::ClusterAuthorizationFailed.code(), None))
                .collect(),
        );
    }
    let snap = ctx.broker.security.snapshot();
    let mut results: BTreeMap<String, AlterUserScramCredentialsResult> = BTreeMap::new();
    let mut changes: Vec<(String, SecurityChange)> = Vec::new();
    for d in &req.deletions {
        let name = d.name.to_string();
        let r = if let Err(e) = check_user(&name, &count) {
            Err(e)
        } else {
            match Mechanism::from_code(d.mechanism) {
                None => Err((
                    ResponseError::UnsupportedSaslMechanism,
                    "Unknown SCRAM mechanism",
                )),
                Some(m)
                    if !snap
                        .state
                        .users
                        .get(&name)
                        .is_some_and(|c| c.contains_key(&m)) =>
                {
                    Err((
                        ResponseError::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist",
                    ))
                }
                Some(m) => Ok(SecurityChange::DeleteScram {
                    user: name.clone(),
                    mechanism: m,
                }),
            }
        };
        match r {
            Ok(c) => changes.push((name, c)),
            Err((e, msg)) => {
                results.insert(name.clone(), result(&name, e.code(), Some(msg)));
            }
        }
    }
    for u in &req.upsertions {
        let name = u.name.to_string();
        let r = if let Err(e) = check_user(&name, &count) {
            Err(e)
        } else if u.iterations < MIN_ITERATIONS as i32 {
            Err((ResponseError::UnacceptableCredential, "Too few iterations"))
        } else if u.iterations > MAX_ITERATIONS as i32 {
            Err((ResponseError::UnacceptableCredential, "Too many iterations"))
        } else {
            match Mechanism::from_code(u.mechanism) {
                None => Err((
                    ResponseError::UnsupportedSaslMechanism,
                    "Unknown SCRAM mechanism",
                )),
                Some(m) => Ok(SecurityChange::UpsertScram {
                    user: name.clone(),
                    mechanism: m,
                    credential: Credential::from_salted(
                        m,
                        &u.salted_password,
                        u.salt.to_vec(),
                        u.iterations as u32,
                    ),
                }),
            }
        };
        match r {
            Ok(c) => changes.push((name, c)),
            Err((e, msg)) => {
                results.insert(name.clone(), result(&name, e.code(), Some(msg)));
            }
        }
    }
    for (name, change) in changes {
        crate::auth::audit_change(&ctx.session.principal, ctx.peer, &change);
        let r = match ctx.broker.change_security(change).await {
            Ok(()) => result(&name, 0, None),
            Err(e) => {
                tracing::warn!(peer = %ctx.peer, user = %name, error = %e, "AlterUserScramCredentials failed");
                result(
                    &name,
                    ResponseError::UnknownServerError.code(),
                    Some(&e.to_string()),
                )
            }
        };
        results.insert(name, r);
    }
    AlterUserScramCredentialsResponse::default().with_results(results.into_values().collect())
}

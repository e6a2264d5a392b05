//! DescribeUserScramCredentials: DESCRIBE on the cluster; the mechanisms and iteration
//! counts of each user's credentials (never salts or keys).

use super::{sb, RequestContext};
use crate::auth::acl::Operation;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use std::collections::BTreeMap;

pub(crate) fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let wanted: Option<Vec<String>> = req
        .users
        .filter(|u| !u.is_empty())
        .map(|u| u.into_iter().map(|n| n.name.to_string()).collect());
    if !ctx.allowed_on_cluster(Operation::Describe) {
        let results = wanted
            .unwrap_or_default()
            .iter()
            .map(|_| {
                DescribeUserScramCredentialsResult::default()
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            })
            .collect();
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb(
                "Request DescribeUserScramCredentials is not authorized.",
            )))
            .with_results(results);
    }
    let snap = ctx.broker.security.snapshot();
    let users = &snap.state.users;
    let describe = |name: &str| {
        let mut r = DescribeUserScramCredentialsResult::default().with_user(sb(name));
        match users.get(name) {
            Some(creds) => {
                r.credential_infos = creds
                    .iter()
                    .map(|(m, c)| {
                        CredentialInfo::default()
                            .with_mechanism(m.code())
                            .with_iterations(c.iterations as i32)
                    })
                    .collect();
            }
            None => {
                r.error_code = ResponseError::ResourceNotFound.code();
                r.error_message = Some(sb(&format!(
                    "Attempt to describe a user credential that does not exist: {name}"
                )));
            }
        }
        r
    };
    let results = match wanted {
        None => users.keys().map(|u| describe(u)).collect(),
        Some(names) => {
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for n in &names {
                *count.entry(n).or_default() += 1;
            }
            count
                .into_iter()
                .map(|(n, c)| {
                    if c > 1 {
                        DescribeUserScramCredentialsResult::default()
                            .with_user(sb(n))
                            .with_error_code(ResponseError::DuplicateResource.code())
                            .with_error_message(Some(sb(&format!(
                                "Cannot describe SCRAM credentials for the same user twice in a single request: {n}"
                            ))))
                    } else {
                        describe(n)
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

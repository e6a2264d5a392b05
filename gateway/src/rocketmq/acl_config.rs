//! mqadmin's ACL requests: UPDATE_AND_CREATE_ACL_CONFIG (50), DELETE_ACL_CONFIG (51),
//! GET_BROKER_CLUSTER_ACL_INFO (52), UPDATE_GLOBAL_WHITE_ADDRS_CONFIG (53) and
//! GET_BROKER_CLUSTER_ACL_CONFIG (54), on this node's `plain_acl.yml`. Changes are written
//! to the file at once (4.9.4 applies some only at its next reload) and audited.

use super::acl::plain::{perm_text, Account, PlainAcl};
use super::{ok, reply, RocketMq};
use codecs::rocketmq::codes::response as rs;
use codecs::rocketmq::RemotingCommand;
use std::net::SocketAddr;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn split(v: Option<&str>) -> Option<Vec<String>> {
    v.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    })
}

const DISABLED: &str = "The broker does not enable acl";

/// Applies `change` to the file (audited as `what` when it succeeds).
async fn update(
    rmq: &RocketMq,
    cmd: &RemotingCommand,
    peer: SocketAddr,
    failed: i32,
    what: String,
    change: impl FnOnce(&mut PlainAcl) -> Result<(), String>,
) -> RemotingCommand {
    let Some(acc) = &rmq.acl else {
        return reply(failed, DISABLED);
    };
    let _g = acc.write_lock.lock().await;
    let mut acl = (*acc.get()).clone();
    if let Err(e) = change(&mut acl) {
        return reply(failed, e);
    }
    acl.bump_version(now_ms());
    match acc.store(acl) {
        Ok(()) => {
            tracing::info!(target: "audit", principal = %format!("User:{}", cmd.ext("AccessKey").unwrap_or("ANONYMOUS")), %peer, change = %what, "RocketMQ ACL configuration changed");
            ok()
        }
        Err(e) => {
            tracing::error!(file = %acc.path().display(), error = %e, "cannot write the ACL file");
            reply(
                failed,
                format!("cannot write {}: {e}", acc.path().display()),
            )
        }
    }
}

/// The account of an UPDATE_AND_CREATE_ACL_CONFIG request: 4.9.4's header fields, or the
/// JSON `PlainAccessConfig` body newer clients (rocketmq-client-rust) send instead.
fn account_of(cmd: &RemotingCommand) -> Result<Account, String> {
    if cmd.ext("accessKey").is_none() && !cmd.body.is_empty() {
        let v: serde_json::Value = serde_json::from_slice(&cmd.body)
            .map_err(|e| format!("invalid PlainAccessConfig body: {e}"))?;
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let list = |k: &str| {
            v.get(k).and_then(|x| x.as_array()).map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
        };
        return Account::new(
            text("accessKey").as_deref(),
            text("secretKey").as_deref(),
            text("whiteRemoteAddress").as_deref(),
            v.get("admin").and_then(|x| x.as_bool()).unwrap_or(false),
            text("defaultTopicPerm").as_deref(),
            text("defaultGroupPerm").as_deref(),
            list("topicPerms"),
            list("groupPerms"),
        )
        .map_err(|e| e.to_string());
    }
    Account::new(
        cmd.ext("accessKey"),
        cmd.ext("secretKey"),
        cmd.ext("whiteRemoteAddress"),
        cmd.ext("admin") == Some("true"),
        cmd.ext("defaultTopicPerm"),
        cmd.ext("defaultGroupPerm"),
        split(cmd.ext("topicPerms")),
        split(cmd.ext("groupPerms")),
    )
    .map_err(|e| e.to_string())
}

/// UPDATE_AND_CREATE_ACL_CONFIG (50).
pub(crate) async fn update_account(
    rmq: &RocketMq,
    cmd: &RemotingCommand,
    peer: SocketAddr,
) -> RemotingCommand {
    let parsed = account_of(cmd);
    let ak = parsed
        .as_ref()
        .map(|a| a.access_key.clone())
        .unwrap_or_default();
    let what = format!("account {ak} created or updated");
    update(
        rmq,
        cmd,
        peer,
        rs::UPDATE_AND_CREATE_ACL_CONFIG_FAILED,
        what,
        |acl| {
            let account = parsed?;
            acl.accounts.insert(account.access_key.clone(), account);
            Ok(())
        },
    )
    .await
}

/// DELETE_ACL_CONFIG (51).
pub(crate) async fn delete_account(
    rmq: &RocketMq,
    cmd: &RemotingCommand,
    peer: SocketAddr,
) -> RemotingCommand {
    // 4.9.4 sends the key as a header field; rocketmq-client-rust as the body.
    let ak = cmd
        .ext("accessKey")
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&cmd.body).trim().to_string());
    let what = format!("account {ak} deleted");
    update(rmq, cmd, peer, rs::DELETE_ACL_CONFIG_FAILED, what, |acl| {
        acl.accounts.remove(&ak).map(|_| ()).ok_or_else(|| {
            format!("The accesskey[{ak}] corresponding to accessConfig has been deleted failed.")
        })
    })
    .await
}

/// UPDATE_GLOBAL_WHITE_ADDRS_CONFIG (53).
pub(crate) async fn update_global_white(
    rmq: &RocketMq,
    cmd: &RemotingCommand,
    peer: SocketAddr,
) -> RemotingCommand {
    let addrs = split(cmd.ext("globalWhiteAddrs")).unwrap_or_default();
    let what = format!("global white addresses set to {addrs:?}");
    let failed = rs::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED;
    update(rmq, cmd, peer, failed, what, |acl| {
        let patterns = addrs
            .iter()
            .map(|a| super::acl::plain::parse_address(a))
            .collect::<Result<Vec<_>, _>>()?;
        acl.global_white = addrs.clone();
        acl.global_patterns = patterns;
        Ok(())
    })
    .await
}

fn version_json(v: (i64, i64)) -> String {
    format!("{{\"counter\":{},\"timestamp\":{}}}", v.0, v.1)
}

/// GET_BROKER_CLUSTER_ACL_INFO (52): the file's data version and the broker's identity.
pub(crate) fn acl_info(rmq: &RocketMq) -> RemotingCommand {
    let Some(acc) = &rmq.acl else {
        return reply(rs::SYSTEM_ERROR, DISABLED);
    };
    let acl = acc.get();
    let version = version_json(acl.version);
    let all = serde_json::json!({ acc.path().display().to_string(): serde_json::from_str::<serde_json::Value>(&version).unwrap_or_default() });
    ok().with_ext("version", &version)
        .with_ext("allAclFileVersion", all.to_string())
        .with_ext("brokerName", &rmq.broker_name)
        .with_ext("brokerAddr", rmq.broker_addr.to_string())
        .with_ext("clusterName", &rmq.cluster)
}

/// GET_BROKER_CLUSTER_ACL_CONFIG (54): the global white list and every account (admins
/// only: the accounts carry their secret keys, as in RocketMQ).
pub(crate) fn acl_config(rmq: &RocketMq) -> RemotingCommand {
    let Some(acc) = &rmq.acl else {
        return reply(rs::SYSTEM_ERROR, DISABLED);
    };
    let acl = acc.get();
    let accounts: Vec<serde_json::Value> = acl
        .accounts
        .values()
        .map(|a| {
            serde_json::json!({
                "accessKey": a.access_key,
                "secretKey": a.secret_key,
                "whiteRemoteAddress": a.white_remote_address,
                "admin": a.admin,
                "defaultTopicPerm": perm_text(a.default_topic_perm),
                "defaultGroupPerm": perm_text(a.default_group_perm),
                "topicPerms": a.topic_perms.iter().map(|(k, v)| format!("{k}={}", perm_text(*v))).collect::<Vec<_>>(),
                "groupPerms": a.group_perms.iter().map(|(k, v)| format!("{k}={}", perm_text(*v))).collect::<Vec<_>>(),
            })
        })
        .collect();
    let body = serde_json::json!({
        "globalWhiteAddrs": acl.global_white,
        "plainAccessConfigs": accounts,
    });
    let mut resp = ok();
    resp.body = bytes::Bytes::from(body.to_string());
    resp
}

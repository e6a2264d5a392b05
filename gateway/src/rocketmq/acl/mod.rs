//! RocketMQ request authentication and authorization, on the node's one authorizer.
//!
//! With `rocketmq.acl.enable=true` every request is verified as RocketMQ 4.9's
//! `PlainAccessValidator` does: the global white list, the access key and its account in
//! `plain_acl.yml` (`rocketmq.acl.file`, re-read when it changes), the account's white
//! address, the HmacSHA1 signature over the sorted ext-field values and the body, admin-only
//! codes, and topic/group permissions. Kafka ACLs of principal `User:<accessKey>` count like
//! explicit `topicPerms`/`groupPerms` entries (a DENY from either refuses, an ALLOW from either
//! overrides the account's default permission); `SUB` is READ of the topic and of the group,
//! `PUB` is WRITE of the topic.
//!
//! Without it, but with Kafka's authorizer on, RocketMQ requests are those of
//! `User:ANONYMOUS` and need the same Kafka ACLs, so no protocol is a way around the
//! authorizer.

mod address;
pub(crate) mod plain;
mod resources;

use crate::auth::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::auth::{principal, Protocol, Security, Who};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use codecs::rocketmq::codes::response as rs;
use codecs::rocketmq::RemotingCommand;
use hmac::{Hmac, Mac};
use parking_lot::{Mutex, RwLock};
use plain::{check_permission, PlainAcl, PlainAclError, PUB, RETRY_PREFIX};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;
use subtle::ConstantTimeEq;

pub(crate) use resources::needs_admin;

/// The trace topic every account may publish to (`RMQ_SYS_TRACE_TOPIC`).
const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

/// A refused request: the response code and remark the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: i32,
    pub(crate) remark: String,
}

/// 4.9.4 answers an `AclException` with SYSTEM_ERROR and `exceptionSimpleDesc`: the
/// exception, then the frame that threw it.
fn acl_exception(msg: String, frame: &str) -> Refusal {
    Refusal {
        code: rs::SYSTEM_ERROR,
        remark: format!(
            "org.apache.rocketmq.acl.common.AclException: {msg}, org.apache.rocketmq.acl.plain.PlainPermissionManager.{frame}"
        ),
    }
}

/// The account file and its watcher.
pub(crate) struct PlainAccounts {
    path: PathBuf,
    current: RwLock<Arc<PlainAcl>>,
    stamp: Mutex<Option<SystemTime>>,
    /// Serialises read-modify-write of the file (mqadmin ACL requests).
    pub(crate) write_lock: tokio::sync::Mutex<()>,
}

fn mtime(p: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl PlainAccounts {
    /// Loads the file, creating an empty one if it does not exist (as the broker does).
    pub(crate) fn open(path: PathBuf) -> anyhow::Result<Arc<Self>> {
        if !path.exists() {
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d)?;
            }
            std::fs::write(&path, PlainAcl::default().to_yaml_string())?;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let acl = PlainAcl::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        tracing::info!(file = %path.display(), accounts = acl.accounts.len(), "RocketMQ ACL loaded");
        Ok(Arc::new(Self {
            stamp: Mutex::new(mtime(&path)),
            path,
            current: RwLock::new(Arc::new(acl)),
            write_lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// The accounts now.
    pub(crate) fn get(&self) -> Arc<PlainAcl> {
        self.current.read().clone()
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &PathBuf {
        &self.path
    }

    /// Re-reads the file if it changed; an invalid file keeps the previous accounts.
    fn reload_if_changed(&self) {
        let now = mtime(&self.path);
        {
            let mut s = self.stamp.lock();
            if *s == now {
                return;
            }
            *s = now;
        }
        match std::fs::read_to_string(&self.path)
            .map_err(|e| PlainAclError::Yaml(e.to_string()))
            .and_then(|t| PlainAcl::parse(&t))
        {
            Ok(acl) => {
                tracing::info!(target: "audit", file = %self.path.display(), accounts = acl.accounts.len(), "RocketMQ ACL file reloaded");
                *self.current.write() = Arc::new(acl);
            }
            Err(e) => {
                tracing::error!(file = %self.path.display(), error = %e, "RocketMQ ACL file not reloaded; keeping the previous accounts")
            }
        }
    }

    /// Writes a new configuration (after an mqadmin change) and takes it.
    pub(crate) fn store(&self, acl: PlainAcl) -> std::io::Result<()> {
        let tmp = self.path.with_extension("yml.tmp");
        std::fs::write(&tmp, acl.to_yaml_string())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        *self.stamp.lock() = mtime(&self.path);
        *self.current.write() = Arc::new(acl);
        Ok(())
    }

    /// Re-reads the file once a second.
    pub(crate) fn watch(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || me.reload_if_changed()).await;
            }
        });
    }
}

/// The signed content of a request: the values of every ext field but `Signature` (and
/// `_UNIQUE_KEY_QUERY` in the broker's rule), sorted by key, then the body.
fn content(cmd: &RemotingCommand, skip_unique_key: bool) -> Vec<u8> {
    let mut keys: Vec<&String> = cmd
        .ext_fields
        .keys()
        .filter(|k| k.as_str() != "Signature")
        .filter(|k| !(skip_unique_key && k.as_str() == "_UNIQUE_KEY_QUERY"))
        .collect();
    keys.sort();
    let mut out = Vec::with_capacity(256 + cmd.body.len());
    for k in keys {
        if let Some(v) = cmd.ext_fields.get(k) {
            out.extend_from_slice(v.as_bytes());
        }
    }
    out.extend_from_slice(&cmd.body);
    out
}

/// HmacSHA1 of the content with the secret key, base64.
fn signature(secret: &str, content: &[u8]) -> String {
    match Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mut m) => {
            m.update(content);
            B64.encode(m.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Whether the request carries a valid signature. Both forms are accepted: 4.9.4's broker
/// leaves `_UNIQUE_KEY_QUERY` out of the content while 4.9.4 clients (and the Rust client)
/// sign it, so query-by-unique-key would otherwise fail.
fn signature_ok(cmd: &RemotingCommand, secret: &str) -> bool {
    let Some(sig) = cmd.ext("Signature") else {
        return false;
    };
    let matches = |skip: bool| -> bool {
        let expected = signature(secret, &content(cmd, skip));
        expected.as_bytes().ct_eq(sig.as_bytes()).into()
    };
    matches(true) || (cmd.ext_fields.contains_key("_UNIQUE_KEY_QUERY") && matches(false))
}

/// The Kafka operation and resource of a RocketMQ (resource, permission) pair.
fn kafka_terms(resource: &str, perm: u8) -> (Operation, ResourceType, &str) {
    match resource.strip_prefix(RETRY_PREFIX) {
        Some(group) => (Operation::Read, ResourceType::Group, group),
        None if perm & PUB != 0 => (Operation::Write, ResourceType::Topic, resource),
        None => (Operation::Read, ResourceType::Topic, resource),
    }
}

/// `PlainAccessResource.printStr`: `topic:<t>` or `group:<g>`.
fn print_resource(resource: &str) -> String {
    match resource.strip_prefix(RETRY_PREFIX) {
        Some(g) => format!("group:{g}"),
        None => format!("topic:{resource}"),
    }
}

/// What the admin codes need from Kafka's authorizer when requests are anonymous.
fn admin_terms(cmd: &RemotingCommand) -> (Operation, ResourceType, String) {
    use codecs::rocketmq::codes::request as rq;
    match cmd.code {
        rq::UPDATE_AND_CREATE_TOPIC => (
            Operation::Create,
            ResourceType::Cluster,
            CLUSTER_NAME.to_string(),
        ),
        rq::DELETE_TOPIC_IN_BROKER | rq::DELETE_TOPIC_IN_NAMESRV => (
            Operation::Delete,
            ResourceType::Topic,
            cmd.ext("topic").unwrap_or_default().to_string(),
        ),
        rq::UPDATE_BROKER_CONFIG => (
            Operation::AlterConfigs,
            ResourceType::Cluster,
            CLUSTER_NAME.to_string(),
        ),
        _ => (
            Operation::Alter,
            ResourceType::Cluster,
            CLUSTER_NAME.to_string(),
        ),
    }
}

/// Authenticates and authorizes one request; returns the principal it runs as.
pub(crate) fn check(
    accounts: Option<&PlainAccounts>,
    security: &Security,
    cmd: &RemotingCommand,
    peer: SocketAddr,
) -> Result<String, Refusal> {
    if resources::unchecked(cmd.code) {
        return Ok(principal::ANONYMOUS.to_string());
    }
    let Some(accounts) = accounts else {
        return check_anonymous(security, cmd, peer);
    };
    let acl = accounts.get();
    let ip = peer.ip();
    if acl.global_patterns.iter().any(|p| p.matches(ip)) {
        return Ok(principal::ANONYMOUS.to_string());
    }
    let Some(ak) = cmd.ext("AccessKey") else {
        return Err(acl_exception(
            "No accessKey is configured".into(),
            "validate(PlainPermissionManager.java:663)",
        ));
    };
    let Some(account) = acl.accounts.get(ak) else {
        return Err(acl_exception(
            format!("No acl config for {ak}"),
            "validate(PlainPermissionManager.java:667)",
        ));
    };
    let principal = principal::user(ak);
    if account.white.matches(ip) {
        return Ok(principal);
    }
    if !signature_ok(cmd, &account.secret_key) {
        return Err(acl_exception(
            format!("Check signature failed for accessKey={ak}"),
            "validate(PlainPermissionManager.java:683)",
        ));
    }
    let needed = resources::needed(cmd);
    if needed.iter().any(|(r, p)| r == TRACE_TOPIC && *p == PUB) {
        return Ok(principal);
    }
    let superuser = security.is_super(&principal);
    if needs_admin(cmd.code) && !account.admin && !superuser {
        return Err(acl_exception(
            format!(
                "Need admin permission for request code={}, but accessKey={ak} is not",
                cmd.code
            ),
            "checkPerm(PlainPermissionManager.java:580)",
        ));
    }
    if superuser || (account.admin && !account.has_resource_perms) {
        return Ok(principal);
    }
    let who = Who {
        principal: &principal,
        peer,
        protocol: Protocol::RocketMq,
    };
    for (resource, perm) in &needed {
        let (op, t, name) = kafka_terms(resource, *perm);
        let kafka = security.explicit(&who, op, t, name);
        let listed = match resource.strip_prefix(RETRY_PREFIX) {
            Some(g) => account.group_perms.get(g),
            None => account.topic_perms.get(resource.as_str()),
        };
        let account_explicit = listed.map(|owned| check_permission(*perm, *owned));
        let allowed = match (kafka, account_explicit) {
            (Some(false), _) | (_, Some(false)) => false,
            (Some(true), _) | (_, Some(true)) => true,
            (None, None) => {
                let default = if resource.starts_with(RETRY_PREFIX) {
                    account.default_group_perm
                } else {
                    account.default_topic_perm
                };
                check_permission(*perm, default)
            }
        };
        if !allowed {
            security.denied(
                &who,
                op,
                t,
                name,
                codecs::rocketmq::codes::request_name(cmd.code),
            );
            let frame = if listed.is_some() {
                "checkPerm(PlainPermissionManager.java:610)"
            } else {
                "checkPerm(PlainPermissionManager.java:605)"
            };
            return Err(acl_exception(
                format!("No default permission for {}", print_resource(resource)),
                frame,
            ));
        }
    }
    Ok(principal)
}

/// Without RocketMQ accounts: the request is `User:ANONYMOUS`'s, checked by Kafka's
/// authorizer (when it is on) for every resource and admin code.
fn check_anonymous(
    security: &Security,
    cmd: &RemotingCommand,
    peer: SocketAddr,
) -> Result<String, Refusal> {
    let principal = principal::ANONYMOUS.to_string();
    if !security.authorizer {
        return Ok(principal);
    }
    let who = Who {
        principal: &principal,
        peer,
        protocol: Protocol::RocketMq,
    };
    let request = codecs::rocketmq::codes::request_name(cmd.code);
    let refuse = |what: String| Refusal {
        code: rs::NO_PERMISSION,
        remark: format!("{what} is not authorized for {principal}"),
    };
    if needs_admin(cmd.code) {
        let (op, t, name) = admin_terms(cmd);
        if !security.check(&who, op, t, &name, request) {
            return Err(refuse(format!("request code {}", cmd.code)));
        }
    }
    for (resource, perm) in resources::needed(cmd) {
        let (op, t, name) = kafka_terms(&resource, perm);
        if !security.check(&who, op, t, name, request) {
            return Err(refuse(print_resource(&resource)));
        }
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(ak: &str, sk: &str, code: i32, ext: &[(&str, &str)], body: &[u8]) -> RemotingCommand {
        let mut cmd = RemotingCommand::new_request(code, Default::default());
        for (k, v) in ext {
            cmd = cmd.with_ext(*k, v);
        }
        cmd = cmd.with_ext("AccessKey", ak);
        cmd.body = bytes::Bytes::copy_from_slice(body);
        let sig = signature(sk, &content(&cmd, false));
        cmd.with_ext("Signature", &sig)
    }

    #[test]
    fn signature_is_over_sorted_values_and_body() {
        // AccessKey sorts before lowercase keys: "AK" + "x" + "y" + body.
        let cmd = signed("AK", "secret12", 310, &[("b", "y"), ("a", "x")], b"body");
        assert!(signature_ok(&cmd, "secret12"));
        assert!(!signature_ok(&cmd, "secret13"));
        let expected = signature("secret12", b"AKxybody");
        assert_eq!(cmd.ext("Signature"), Some(expected.as_str()));
        let mut forged = cmd.clone();
        forged.body = bytes::Bytes::from_static(b"other");
        assert!(!signature_ok(&forged, "secret12"));
    }

    #[test]
    fn refusals_read_like_4_9_4() {
        let r = acl_exception(
            "No acl config for rocketmq3".into(),
            "validate(PlainPermissionManager.java:667)",
        );
        assert_eq!(r.code, 1);
        assert_eq!(
            r.remark,
            "org.apache.rocketmq.acl.common.AclException: No acl config for rocketmq3, org.apache.rocketmq.acl.plain.PlainPermissionManager.validate(PlainPermissionManager.java:667)"
        );
        assert_eq!(print_resource("%RETRY%g1"), "group:g1");
        assert_eq!(print_resource("t1"), "topic:t1");
    }
}

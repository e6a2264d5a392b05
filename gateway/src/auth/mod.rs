//! Security shared by every front end: listeners and TLS, SASL mechanisms, the one
//! authorizer (Kafka's ACL model) and client quotas, over security metadata that is
//! replicated with the cluster metadata (or kept in `meta/security.json` on one node).
//!
//! Every denial and every change of credentials or ACLs is logged on the `audit` tracing
//! target with the principal and the peer address; secrets never are.

pub(crate) mod acl;
pub(crate) mod authorizer;
pub(crate) mod listeners;
pub(crate) mod principal;
pub(crate) mod quota;
pub(crate) mod sasl;
pub(crate) mod scram;
pub(crate) mod state;
pub(crate) mod tls;

use crate::config::Config;
use acl::{Operation, ResourceType};
use authorizer::{AclIndex, Policy, Requester};
use parking_lot::RwLock;
use scram::{Credential, Mechanism};
use state::{SecurityChange, SecurityState};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Kafka's class name that turns the authorizer on.
pub(crate) const STANDARD_AUTHORIZER: &str =
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// Why a security change was not stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecurityError {
    #[error("cannot persist security metadata in {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("refused by the controller: {0}")]
    Rejected(String),
}

/// The security metadata as of now, with its ACL index.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) state: SecurityState,
    pub(crate) index: AclIndex,
}

/// Which protocol a request came through (metrics and audit labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Kafka,
    RocketMq,
    /// The admin HTTP API.
    Admin,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::RocketMq => "rocketmq",
            Self::Admin => "admin",
        }
    }
}

/// Who is asking: the principal and the peer it connected from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Who<'a> {
    pub(crate) principal: &'a str,
    pub(crate) peer: SocketAddr,
    pub(crate) protocol: Protocol,
}

/// The node's security service.
pub(crate) struct Security {
    /// `authorizer.class.name` names the StandardAuthorizer.
    pub(crate) authorizer: bool,
    policy: Policy,
    current: RwLock<Arc<Snapshot>>,
    /// Single node: where the metadata is kept. `None` in a cluster (the quorum keeps it).
    local: Option<PathBuf>,
    /// Serialises local read-modify-write of the metadata file.
    write_lock: tokio::sync::Mutex<()>,
}

impl Security {
    /// The service for a node; on one node it loads `meta/security.json`.
    pub(crate) fn open(cfg: &Config, clustered: bool) -> anyhow::Result<Arc<Self>> {
        let class = cfg.get("authorizer.class.name").unwrap_or("").trim();
        let authorizer = match class {
            "" => false,
            STANDARD_AUTHORIZER | "kafka.security.authorizer.AclAuthorizer" => true,
            other => anyhow::bail!(
                "authorizer.class.name={other}: only {STANDARD_AUTHORIZER} is supported"
            ),
        };
        let super_users = cfg
            .get("super.users")
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let policy = Policy {
            super_users,
            allow_if_no_acl: cfg.bool("allow.everyone.if.no.acl.found")?,
        };
        let local = (!clustered).then(|| cfg.data_dir().join("meta").join("security.json"));
        let state: SecurityState = match &local {
            Some(p) => crate::meta_file::read_json(p)?,
            None => SecurityState::default(),
        };
        let me = Arc::new(Self {
            authorizer,
            policy,
            current: RwLock::new(Arc::new(Snapshot::default())),
            local,
            write_lock: tokio::sync::Mutex::new(()),
        });
        me.install(&state);
        Ok(me)
    }

    /// The metadata now.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().clone()
    }

    /// Takes a new state (from the applied cluster metadata) if it differs.
    pub(crate) fn install(&self, state: &SecurityState) {
        if self.current.read().state == *state {
            return;
        }
        let snap = Snapshot {
            index: AclIndex::new(&state.acls),
            state: state.clone(),
        };
        metrics::gauge!("security_acls").set(snap.index.len() as f64);
        metrics::gauge!("security_scram_users").set(snap.state.users.len() as f64);
        *self.current.write() = Arc::new(snap);
    }

    /// A user's stored credential for a mechanism.
    pub(crate) fn credential(&self, user: &str, mech: Mechanism) -> Option<Credential> {
        self.current
            .read()
            .state
            .users
            .get(user)
            .and_then(|m| m.get(&mech))
            .cloned()
    }

    /// Whether `password` is the user's (checked against its salted SCRAM credentials).
    pub(crate) fn verify_password(&self, user: &str, password: &str) -> bool {
        [Mechanism::Sha512, Mechanism::Sha256].iter().any(|m| {
            self.credential(user, *m)
                .is_some_and(|c| c.verify_password(*m, password))
        })
    }

    fn requester<'a>(who: &Who<'a>, host: &'a str) -> Requester<'a> {
        Requester {
            principal: who.principal,
            host,
        }
    }

    /// Whether `who` may do `op` on the resource; always true without an authorizer.
    /// Denials are not logged (callers that filter lists use this).
    pub(crate) fn permits(
        &self,
        who: &Who<'_>,
        op: Operation,
        t: ResourceType,
        name: &str,
    ) -> bool {
        if !self.authorizer {
            return true;
        }
        let host = who.peer.ip().to_string();
        let snap = self.snapshot();
        self.policy
            .authorize(&snap.index, Self::requester(who, &host), op, t, name)
    }

    /// What the ACLs (and `super.users`) say explicitly about a request, if anything; `None`
    /// without an authorizer.
    pub(crate) fn explicit(
        &self,
        who: &Who<'_>,
        op: Operation,
        t: ResourceType,
        name: &str,
    ) -> Option<bool> {
        if !self.authorizer {
            return None;
        }
        let host = who.peer.ip().to_string();
        let snap = self.snapshot();
        self.policy
            .explicit(&snap.index, Self::requester(who, &host), op, t, name)
    }

    /// Whether `principal` is in `super.users`.
    pub(crate) fn is_super(&self, principal: &str) -> bool {
        self.policy.super_users.contains(principal)
    }

    /// As [`Self::permits`], and a denial is counted and audited.
    pub(crate) fn check(
        &self,
        who: &Who<'_>,
        op: Operation,
        t: ResourceType,
        name: &str,
        request: &str,
    ) -> bool {
        let ok = self.permits(who, op, t, name);
        if !ok {
            self.denied(who, op, t, name, request);
        }
        ok
    }

    /// Counts and audits a denial decided elsewhere (e.g. by RocketMQ's account rules).
    pub(crate) fn denied(
        &self,
        who: &Who<'_>,
        op: Operation,
        t: ResourceType,
        name: &str,
        request: &str,
    ) {
        metrics::counter!(
            "authorization_denials_total",
            "protocol" => who.protocol.label(),
            "resource_type" => t.label(),
            "operation" => op.label()
        )
        .increment(1);
        tracing::info!(
            target: "audit",
            principal = who.principal,
            peer = %who.peer,
            protocol = who.protocol.label(),
            request,
            operation = op.label(),
            resource_type = t.label(),
            resource = name,
            "authorization denied"
        );
    }

    /// Whether `who` may do `op` on some resource of type `t` (Kafka's
    /// authorizeByResourceType).
    pub(crate) fn permits_any(&self, who: &Who<'_>, op: Operation, t: ResourceType) -> bool {
        if !self.authorizer {
            return true;
        }
        let host = who.peer.ip().to_string();
        let snap = self.snapshot();
        self.policy
            .authorize_any(&snap.index, Self::requester(who, &host), op, t)
    }

    /// The authorized-operations bits of a resource (every operation when no authorizer is
    /// configured, as Kafka reports).
    pub(crate) fn operations(&self, who: &Who<'_>, t: ResourceType, name: &str) -> i32 {
        if !self.authorizer {
            return Operation::of_type(t)
                .iter()
                .fold(0, |bits, op| bits | (1 << op.code()));
        }
        let host = who.peer.ip().to_string();
        let snap = self.snapshot();
        self.policy
            .operations(&snap.index, Self::requester(who, &host), t, name)
    }

    /// Single node: applies a change to the file and the snapshot.
    async fn change_local(
        &self,
        path: &std::path::Path,
        change: SecurityChange,
    ) -> Result<(), SecurityError> {
        let _g = self.write_lock.lock().await;
        let mut state = self.snapshot().state.clone();
        state.apply(change);
        crate::meta_file::write_json(path, &state)
            .await
            .map_err(|e| SecurityError::Io(path.to_path_buf(), e))?;
        self.install(&state);
        Ok(())
    }
}

/// Logs a credential, ACL or quota change on the audit target.
pub(crate) fn audit_change(principal: &str, peer: SocketAddr, change: &SecurityChange) {
    tracing::info!(target: "audit", principal, %peer, change = %change.describe(), "security metadata changed");
}

impl crate::broker::Broker {
    /// Stores a security change durably (through the metadata quorum in a cluster) and
    /// makes it effective on this node before returning.
    pub(crate) async fn change_security(
        &self,
        change: SecurityChange,
    ) -> Result<(), SecurityError> {
        let sec = &self.security;
        match (&self.cluster, &sec.local) {
            (Some(c), _) => {
                match c
                    .propose(crate::cluster::state::Command::Security(change))
                    .await?
                {
                    crate::cluster::state::Outcome::Ok => Ok(()),
                    crate::cluster::state::Outcome::Rejected(_, m) => {
                        Err(SecurityError::Rejected(m))
                    }
                }
            }
            (None, Some(path)) => sec.change_local(path, change).await,
            (None, None) => Err(SecurityError::Rejected(
                "no place to keep security metadata".into(),
            )),
        }
    }
}

/// Parses `--add-scram` values with `kafka-storage format --add-scram` syntax:
/// `SCRAM-SHA-512=[name=admin,password=admin-secret]` with optional `iterations=N` and
/// `salt=<base64>` (or `saltedpassword=`... is not supported: give the password).
pub(crate) fn parse_add_scram(v: &str) -> anyhow::Result<(String, Mechanism, Credential)> {
    let (mech, rest) = v.split_once('=').ok_or_else(|| {
        anyhow::anyhow!("--add-scram {v:?}: expected MECHANISM=[name=...,password=...]")
    })?;
    let mech = Mechanism::from_name(mech.trim()).ok_or_else(|| {
        anyhow::anyhow!("--add-scram: unknown mechanism {mech:?} (SCRAM-SHA-256 or SCRAM-SHA-512)")
    })?;
    let inner = rest
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--add-scram: expected [name=...,password=...] after {}=",
                mech.name()
            )
        })?;
    let mut name = None;
    let mut password = None;
    let mut iterations = scram::MIN_ITERATIONS;
    let mut salt: Option<Vec<u8>> = None;
    for kv in inner.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--add-scram: {kv:?} is not key=value"))?;
        let v = v.trim().trim_matches('"');
        match k.trim() {
            "name" => name = Some(v.to_string()),
            "password" => password = Some(v.to_string()),
            "iterations" => {
                iterations = v
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--add-scram: iterations {v:?} is not a number"))?
            }
            "salt" => {
                use base64::Engine;
                salt = Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(v)
                        .map_err(|_| anyhow::anyhow!("--add-scram: salt is not base64"))?,
                )
            }
            other => anyhow::bail!("--add-scram: unknown key {other:?}"),
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| anyhow::anyhow!("--add-scram: name= is required"))?;
    let password = password.ok_or_else(|| anyhow::anyhow!("--add-scram: password= is required"))?;
    if !(scram::MIN_ITERATIONS..=scram::MAX_ITERATIONS).contains(&iterations) {
        anyhow::bail!(
            "--add-scram: iterations must be between {} and {}",
            scram::MIN_ITERATIONS,
            scram::MAX_ITERATIONS
        );
    }
    let cred = match salt {
        Some(salt) => {
            let salted = mech.salted_password(password.as_bytes(), &salt, iterations);
            Credential::from_salted(mech, &salted, salt, iterations)
        }
        None => Credential::from_password(mech, &password, iterations),
    };
    Ok((name, mech, cred))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_scram_syntax() -> anyhow::Result<()> {
        let (n, m, c) = parse_add_scram("SCRAM-SHA-512=[name=admin,password=admin-secret]")?;
        assert_eq!(
            (n.as_str(), m, c.iterations),
            ("admin", Mechanism::Sha512, 4096)
        );
        assert!(c.verify_password(m, "admin-secret"));
        let (_, m, c) = parse_add_scram("SCRAM-SHA-256=[name=alice,password=pw,iterations=8192]")?;
        assert_eq!((m, c.iterations), (Mechanism::Sha256, 8192));
        assert!(parse_add_scram("SCRAM-SHA-1=[name=a,password=b]").is_err());
        assert!(parse_add_scram("SCRAM-SHA-256=[password=b]").is_err());
        assert!(parse_add_scram("SCRAM-SHA-256=[name=a,password=b,iterations=10]").is_err());
        Ok(())
    }
}

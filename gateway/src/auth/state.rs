//! The security metadata: ACLs, salted SCRAM credentials and client quotas. It is replicated
//! through the metadata quorum in a cluster (part of `ClusterState`) and kept in
//! `meta/security.json` on the single-node default; every change is a [`SecurityChange`]
//! applied deterministically.

use super::acl::AclBinding;
use super::scram::{Credential, Mechanism};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A quota value (bytes/s, percent, or connections/s). Compared bit for bit so the state
/// stays `Eq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct QuotaValue(pub(crate) f64);

impl PartialEq for QuotaValue {
    fn eq(&self, o: &Self) -> bool {
        self.0.to_bits() == o.0.to_bits()
    }
}
impl Eq for QuotaValue {}

/// A quota entity: entity type (`user`, `client-id`, `ip`) to name, `None` for the default
/// entity of that type.
pub(crate) type QuotaEntity = BTreeMap<String, Option<String>>;

/// The quotas of one entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QuotaEntry {
    pub(crate) entity: QuotaEntity,
    pub(crate) values: BTreeMap<String, QuotaValue>,
}

/// A stable key for an entity (`client-id=<default>/user=alice`).
pub(crate) fn entity_key(e: &QuotaEntity) -> String {
    e.iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join("/")
}

/// Everything the authorizer, the SASL mechanisms and the quota manager read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SecurityState {
    #[serde(default)]
    pub(crate) acls: BTreeSet<AclBinding>,
    /// User name to its credentials per mechanism.
    #[serde(default)]
    pub(crate) users: BTreeMap<String, BTreeMap<Mechanism, Credential>>,
    /// Entity key (see [`entity_key`]) to its quotas.
    #[serde(default)]
    pub(crate) quotas: BTreeMap<String, QuotaEntry>,
}

/// One change to the security metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum SecurityChange {
    CreateAcls(Vec<AclBinding>),
    /// The exact bindings to remove (DeleteAcls resolves its filters first).
    DeleteAcls(Vec<AclBinding>),
    UpsertScram {
        user: String,
        mechanism: Mechanism,
        credential: Credential,
    },
    DeleteScram {
        user: String,
        mechanism: Mechanism,
    },
    /// First-start credentials (`--add-scram`): added only where the user has none for the
    /// mechanism, so a restart with the same flags changes nothing.
    BootstrapScram(Vec<(String, Mechanism, Credential)>),
    /// Sets (`Some`) or removes (`None`) quota keys of an entity.
    AlterQuotas {
        entity: QuotaEntity,
        ops: Vec<(String, Option<f64>)>,
    },
}

impl SecurityChange {
    /// What the audit log says about the change (never a secret).
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::CreateAcls(v) => format!(
                "create ACLs [{}]",
                v.iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Self::DeleteAcls(v) => format!(
                "delete ACLs [{}]",
                v.iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Self::UpsertScram {
                user,
                mechanism,
                credential,
            } => format!(
                "set {} credential of user {user} ({} iterations)",
                mechanism.name(),
                credential.iterations
            ),
            Self::DeleteScram { user, mechanism } => {
                format!("delete {} credential of user {user}", mechanism.name())
            }
            Self::BootstrapScram(v) => format!(
                "bootstrap credentials for [{}]",
                v.iter()
                    .map(|(u, m, _)| format!("{u}/{}", m.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::AlterQuotas { entity, ops } => format!(
                "alter quotas of {}: {}",
                entity_key(entity),
                ops.iter()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{k}={v}"),
                        None => format!("{k} removed"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

impl SecurityState {
    /// Applies a change; the same change applied to the same state gives the same state on
    /// every node.
    pub(crate) fn apply(&mut self, change: SecurityChange) {
        match change {
            SecurityChange::CreateAcls(v) => self.acls.extend(v),
            SecurityChange::DeleteAcls(v) => {
                for b in v {
                    self.acls.remove(&b);
                }
            }
            SecurityChange::UpsertScram {
                user,
                mechanism,
                credential,
            } => {
                self.users
                    .entry(user)
                    .or_default()
                    .insert(mechanism, credential);
            }
            SecurityChange::DeleteScram { user, mechanism } => {
                if let Some(m) = self.users.get_mut(&user) {
                    m.remove(&mechanism);
                    if m.is_empty() {
                        self.users.remove(&user);
                    }
                }
            }
            SecurityChange::BootstrapScram(v) => {
                for (user, mech, cred) in v {
                    self.users
                        .entry(user)
                        .or_default()
                        .entry(mech)
                        .or_insert(cred);
                }
            }
            SecurityChange::AlterQuotas { entity, ops } => {
                let key = entity_key(&entity);
                let entry = self
                    .quotas
                    .entry(key.clone())
                    .or_insert_with(|| QuotaEntry {
                        entity,
                        values: BTreeMap::new(),
                    });
                for (k, v) in ops {
                    match v {
                        Some(v) => {
                            entry.values.insert(k, QuotaValue(v));
                        }
                        None => {
                            entry.values.remove(&k);
                        }
                    }
                }
                if entry.values.is_empty() {
                    self.quotas.remove(&key);
                }
            }
        }
    }
}

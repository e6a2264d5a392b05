//! The one authorizer of both front ends, with the semantics of Kafka's StandardAuthorizer:
//! super users may do anything; a matching DENY beats any ALLOW; an ALLOW of READ, WRITE,
//! DELETE or ALTER also allows DESCRIBE and one of ALTER_CONFIGS allows DESCRIBE_CONFIGS; a
//! resource without any ACL is open only with `allow.everyone.if.no.acl.found`.
//!
//! ACLs are indexed by resource type and name (literal, wildcard, and prefixes by length), so
//! a decision looks at the bindings of one resource, never at every ACL.

use super::acl::{AclBinding, Operation, PatternType, Permission, ResourceType, WILDCARD};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The ACLs of one node, indexed for decisions.
#[derive(Debug, Default)]
pub(crate) struct AclIndex {
    literal: HashMap<ResourceType, HashMap<String, Vec<AclBinding>>>,
    prefixed: HashMap<ResourceType, HashMap<String, Vec<AclBinding>>>,
    /// Lengths of the prefixes present, per type: a name is looked up once per length.
    prefix_lengths: HashMap<ResourceType, BTreeSet<usize>>,
    by_type: HashMap<ResourceType, Vec<AclBinding>>,
    len: usize,
}

impl AclIndex {
    pub(crate) fn new<'a>(acls: impl IntoIterator<Item = &'a AclBinding>) -> Self {
        let mut ix = Self::default();
        for b in acls {
            let map = match b.pattern {
                PatternType::Literal => &mut ix.literal,
                PatternType::Prefixed => {
                    ix.prefix_lengths
                        .entry(b.resource_type)
                        .or_default()
                        .insert(b.name.len());
                    &mut ix.prefixed
                }
            };
            map.entry(b.resource_type)
                .or_default()
                .entry(b.name.clone())
                .or_default()
                .push(b.clone());
            ix.by_type
                .entry(b.resource_type)
                .or_default()
                .push(b.clone());
            ix.len += 1;
        }
        ix
    }

    /// Number of ACLs.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every binding whose pattern covers the resource.
    fn covering<'a>(&'a self, t: ResourceType, name: &str, out: &mut Vec<&'a AclBinding>) {
        if let Some(m) = self.literal.get(&t) {
            if let Some(v) = m.get(name) {
                out.extend(v);
            }
            if name != WILDCARD {
                if let Some(v) = m.get(WILDCARD) {
                    out.extend(v);
                }
            }
        }
        if let (Some(m), Some(lens)) = (self.prefixed.get(&t), self.prefix_lengths.get(&t)) {
            for &l in lens.range(..=name.len()) {
                if let Some(v) = name.get(..l).and_then(|p| m.get(p)) {
                    out.extend(v);
                }
            }
        }
    }
}

fn principal_matches(acl: &str, principal: &str) -> bool {
    acl == principal || acl == "User:*"
}

fn host_matches(acl: &str, host: &str) -> bool {
    acl == WILDCARD || acl == host
}

/// Whether a DENY binding refuses `op` (a DENY matches only its own operation, or ALL).
fn denies(b: &AclBinding, op: Operation) -> bool {
    b.permission == Permission::Deny && (b.operation == op || b.operation == Operation::All)
}

/// Whether an ALLOW binding grants `op`, implied operations included.
fn allows(b: &AclBinding, op: Operation) -> bool {
    b.permission == Permission::Allow
        && (b.operation == op
            || b.operation == Operation::All
            || op.implied_by().contains(&b.operation))
}

/// Who asks, from where.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requester<'a> {
    pub(crate) principal: &'a str,
    pub(crate) host: &'a str,
}

/// Authorizer settings (`super.users`, `allow.everyone.if.no.acl.found`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    pub(crate) super_users: HashSet<String>,
    pub(crate) allow_if_no_acl: bool,
}

impl Policy {
    /// Whether `who` may perform `op` on the resource.
    pub(crate) fn authorize(
        &self,
        index: &AclIndex,
        who: Requester<'_>,
        op: Operation,
        t: ResourceType,
        name: &str,
    ) -> bool {
        if self.super_users.contains(who.principal) {
            return true;
        }
        let mut acls = Vec::new();
        index.covering(t, name, &mut acls);
        if acls.is_empty() {
            return self.allow_if_no_acl;
        }
        Self::decide(&acls, who, op).unwrap_or(false)
    }

    /// DENY over ALLOW among the bindings that apply to `who`; `None` if neither applies.
    fn decide(acls: &[&AclBinding], who: Requester<'_>, op: Operation) -> Option<bool> {
        let applying = || {
            acls.iter().filter(|b| {
                principal_matches(&b.principal, who.principal) && host_matches(&b.host, who.host)
            })
        };
        if applying().any(|b| denies(b, op)) {
            return Some(false);
        }
        applying().any(|b| allows(b, op)).then_some(true)
    }

    /// What the ACLs say explicitly about `who` doing `op` on the resource: `Some(false)` for
    /// a matching DENY, `Some(true)` for a super user or a matching ALLOW, `None` when no ACL
    /// applies (RocketMQ accounts then fall back to their default permissions).
    pub(crate) fn explicit(
        &self,
        index: &AclIndex,
        who: Requester<'_>,
        op: Operation,
        t: ResourceType,
        name: &str,
    ) -> Option<bool> {
        if self.super_users.contains(who.principal) {
            return Some(true);
        }
        let mut acls = Vec::new();
        index.covering(t, name, &mut acls);
        Self::decide(&acls, who, op)
    }

    /// Whether `who` may perform `op` on at least one resource of type `t` (Kafka's
    /// `authorizeByResourceType`, used for "WRITE on any topic"): some ALLOW applies whose
    /// pattern no applicable DENY covers entirely.
    pub(crate) fn authorize_any(
        &self,
        index: &AclIndex,
        who: Requester<'_>,
        op: Operation,
        t: ResourceType,
    ) -> bool {
        if self.super_users.contains(who.principal) {
            return true;
        }
        let Some(all) = index.by_type.get(&t) else {
            return self.allow_if_no_acl;
        };
        let applies = |b: &&AclBinding| {
            principal_matches(&b.principal, who.principal) && host_matches(&b.host, who.host)
        };
        let deny_list: Vec<&AclBinding> = all
            .iter()
            .filter(applies)
            .filter(|b| denies(b, op))
            .collect();
        all.iter()
            .filter(applies)
            .filter(|b| allows(b, op))
            .any(|allow| {
                !deny_list.iter().any(|d| match (d.pattern, allow.pattern) {
                    (PatternType::Literal, _) if d.name == WILDCARD => true,
                    (PatternType::Literal, PatternType::Literal) => d.name == allow.name,
                    (PatternType::Prefixed, _) => allow.name.starts_with(d.name.as_str()),
                    (PatternType::Literal, PatternType::Prefixed) => false,
                })
            })
    }

    /// Kafka's authorized-operations bit field for a resource: bit `code` set for every
    /// operation of the type that `who` may perform.
    pub(crate) fn operations(
        &self,
        index: &AclIndex,
        who: Requester<'_>,
        t: ResourceType,
        name: &str,
    ) -> i32 {
        Operation::of_type(t)
            .iter()
            .filter(|op| self.authorize(index, who, **op, t, name))
            .fold(0i32, |bits, op| bits | (1 << op.code()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        t: ResourceType,
        name: &str,
        p: PatternType,
        principal: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: t,
            name: name.into(),
            pattern: p,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    const ALICE: Requester<'static> = Requester {
        principal: "User:alice",
        host: "10.0.0.1",
    };

    #[test]
    fn deny_beats_allow_and_implied_describe() {
        use Operation::*;
        use PatternType::*;
        use ResourceType::*;
        let acls = [
            acl(
                Topic,
                "orders",
                Literal,
                "User:alice",
                Write,
                Permission::Allow,
            ),
            acl(Topic, "ord", Prefixed, "User:*", Read, Permission::Allow),
            acl(
                Topic,
                "orders-secret",
                Literal,
                "User:alice",
                All,
                Permission::Deny,
            ),
            acl(Group, "*", Literal, "User:alice", Read, Permission::Allow),
        ];
        let ix = AclIndex::new(&acls);
        let p = Policy::default();
        assert!(p.authorize(&ix, ALICE, Write, Topic, "orders"));
        assert!(p.authorize(&ix, ALICE, Describe, Topic, "orders"));
        assert!(p.authorize(&ix, ALICE, Read, Topic, "orders"));
        assert!(!p.authorize(&ix, ALICE, Delete, Topic, "orders"));
        assert!(!p.authorize(&ix, ALICE, Read, Topic, "orders-secret"));
        assert!(!p.authorize(&ix, ALICE, Describe, Topic, "orders-secret"));
        assert!(p.authorize(&ix, ALICE, Read, Group, "any-group"));
        // No ACL at all on "payments": denied unless allow.everyone.if.no.acl.found.
        assert!(!p.authorize(&ix, ALICE, Read, Topic, "payments"));
        let open = Policy {
            allow_if_no_acl: true,
            ..Policy::default()
        };
        assert!(open.authorize(&ix, ALICE, Read, Topic, "payments"));
        // An ACL for someone else on the resource closes it to alice.
        let ix2 = AclIndex::new(&[acl(
            Topic,
            "payments",
            Literal,
            "User:bob",
            Read,
            Permission::Allow,
        )]);
        assert!(!open.authorize(&ix2, ALICE, Read, Topic, "payments"));
        let su = Policy {
            super_users: ["User:alice".to_string()].into(),
            ..Policy::default()
        };
        assert!(su.authorize(&ix, ALICE, Read, Topic, "orders-secret"));
    }

    #[test]
    fn hosts_and_operation_bits() {
        use Operation::*;
        let mut b = acl(
            ResourceType::Topic,
            "t",
            PatternType::Literal,
            "User:alice",
            Read,
            Permission::Allow,
        );
        b.host = "10.0.0.2".into();
        let ix = AclIndex::new(&[b]);
        let p = Policy::default();
        assert!(!p.authorize(&ix, ALICE, Read, ResourceType::Topic, "t"));
        let ix = AclIndex::new(&[
            acl(
                ResourceType::Topic,
                "t",
                PatternType::Literal,
                "User:alice",
                Read,
                Permission::Allow,
            ),
            acl(
                ResourceType::Topic,
                "t",
                PatternType::Literal,
                "User:alice",
                AlterConfigs,
                Permission::Allow,
            ),
        ]);
        let bits = p.operations(&ix, ALICE, ResourceType::Topic, "t");
        let expect = (1 << Read.code())
            | (1 << Describe.code())
            | (1 << AlterConfigs.code())
            | (1 << DescribeConfigs.code());
        assert_eq!(bits, expect);
    }

    #[test]
    fn by_resource_type() {
        use Operation::*;
        let p = Policy::default();
        let ix = AclIndex::new(&[acl(
            ResourceType::Topic,
            "logs-",
            PatternType::Prefixed,
            "User:alice",
            Write,
            Permission::Allow,
        )]);
        assert!(p.authorize_any(&ix, ALICE, Write, ResourceType::Topic));
        let ix = AclIndex::new(&[
            acl(
                ResourceType::Topic,
                "logs-",
                PatternType::Prefixed,
                "User:alice",
                Write,
                Permission::Allow,
            ),
            acl(
                ResourceType::Topic,
                "logs",
                PatternType::Prefixed,
                "User:alice",
                Write,
                Permission::Deny,
            ),
        ]);
        assert!(!p.authorize_any(&ix, ALICE, Write, ResourceType::Topic));
        assert!(!p.authorize_any(&AclIndex::default(), ALICE, Write, ResourceType::Topic));
    }
}

//! ACLs with Kafka's model and numeric codes: a binding is (resource type, name, pattern
//! type) x (principal, host, operation, permission). Filters select bindings for
//! DescribeAcls and DeleteAcls with Kafka's ANY and MATCH semantics.

use serde::{Deserialize, Serialize};

/// Kafka's resource types (`ResourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

impl ResourceType {
    pub(crate) fn code(self) -> i8 {
        match self {
            Self::Topic => 2,
            Self::Group => 3,
            Self::Cluster => 4,
            Self::TransactionalId => 5,
            Self::DelegationToken => 6,
            Self::User => 7,
        }
    }

    pub(crate) fn from_code(c: i8) -> Option<Self> {
        Some(match c {
            2 => Self::Topic,
            3 => Self::Group,
            4 => Self::Cluster,
            5 => Self::TransactionalId,
            6 => Self::DelegationToken,
            7 => Self::User,
            _ => return None,
        })
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Topic => "TOPIC",
            Self::Group => "GROUP",
            Self::Cluster => "CLUSTER",
            Self::TransactionalId => "TRANSACTIONAL_ID",
            Self::DelegationToken => "DELEGATION_TOKEN",
            Self::User => "USER",
        }
    }
}

/// The name of the one cluster resource.
pub(crate) const CLUSTER_NAME: &str = "kafka-cluster";

/// The wildcard resource name and host.
pub(crate) const WILDCARD: &str = "*";

/// Kafka's operations (`AclOperation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

impl Operation {
    pub(crate) fn code(self) -> i8 {
        match self {
            Self::All => 2,
            Self::Read => 3,
            Self::Write => 4,
            Self::Create => 5,
            Self::Delete => 6,
            Self::Alter => 7,
            Self::Describe => 8,
            Self::ClusterAction => 9,
            Self::DescribeConfigs => 10,
            Self::AlterConfigs => 11,
            Self::IdempotentWrite => 12,
            Self::CreateTokens => 13,
            Self::DescribeTokens => 14,
        }
    }

    pub(crate) fn from_code(c: i8) -> Option<Self> {
        Some(match c {
            2 => Self::All,
            3 => Self::Read,
            4 => Self::Write,
            5 => Self::Create,
            6 => Self::Delete,
            7 => Self::Alter,
            8 => Self::Describe,
            9 => Self::ClusterAction,
            10 => Self::DescribeConfigs,
            11 => Self::AlterConfigs,
            12 => Self::IdempotentWrite,
            13 => Self::CreateTokens,
            14 => Self::DescribeTokens,
            _ => return None,
        })
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::All => "ALL",
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::Create => "CREATE",
            Self::Delete => "DELETE",
            Self::Alter => "ALTER",
            Self::Describe => "DESCRIBE",
            Self::ClusterAction => "CLUSTER_ACTION",
            Self::DescribeConfigs => "DESCRIBE_CONFIGS",
            Self::AlterConfigs => "ALTER_CONFIGS",
            Self::IdempotentWrite => "IDEMPOTENT_WRITE",
            Self::CreateTokens => "CREATE_TOKENS",
            Self::DescribeTokens => "DESCRIBE_TOKENS",
        }
    }

    /// Operations whose ALLOW also allows `self` (Kafka's implied operations): READ, WRITE,
    /// DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS.
    pub(crate) fn implied_by(self) -> &'static [Operation] {
        match self {
            Self::Describe => &[Self::Read, Self::Write, Self::Delete, Self::Alter],
            Self::DescribeConfigs => &[Self::AlterConfigs],
            _ => &[],
        }
    }

    /// The operations of a resource type that authorized-operations fields report.
    pub(crate) fn of_type(t: ResourceType) -> &'static [Operation] {
        match t {
            ResourceType::Topic => &[
                Self::Read,
                Self::Write,
                Self::Create,
                Self::Delete,
                Self::Alter,
                Self::Describe,
                Self::DescribeConfigs,
                Self::AlterConfigs,
            ],
            ResourceType::Group => &[Self::Read, Self::Describe, Self::Delete],
            ResourceType::Cluster => &[
                Self::Create,
                Self::ClusterAction,
                Self::DescribeConfigs,
                Self::AlterConfigs,
                Self::IdempotentWrite,
                Self::Alter,
                Self::Describe,
            ],
            ResourceType::TransactionalId => &[Self::Describe, Self::Write],
            ResourceType::DelegationToken => &[Self::Describe],
            ResourceType::User => &[Self::CreateTokens, Self::DescribeTokens],
        }
    }
}

/// LITERAL or PREFIXED (the pattern types a binding can have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum PatternType {
    Literal,
    Prefixed,
}

impl PatternType {
    pub(crate) fn code(self) -> i8 {
        match self {
            Self::Literal => 3,
            Self::Prefixed => 4,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Literal => "LITERAL",
            Self::Prefixed => "PREFIXED",
        }
    }
}

/// ALLOW or DENY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub(crate) fn code(self) -> i8 {
        match self {
            Self::Deny => 2,
            Self::Allow => 3,
        }
    }

    pub(crate) fn from_code(c: i8) -> Option<Self> {
        match c {
            2 => Some(Self::Deny),
            3 => Some(Self::Allow),
            _ => None,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Deny => "DENY",
            Self::Allow => "ALLOW",
        }
    }
}

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct AclBinding {
    pub(crate) resource_type: ResourceType,
    pub(crate) name: String,
    pub(crate) pattern: PatternType,
    pub(crate) principal: String,
    pub(crate) host: String,
    pub(crate) operation: Operation,
    pub(crate) permission: Permission,
}

impl std::fmt::Display for AclBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} from {} {} {}:{}:{}",
            self.principal,
            self.permission.label(),
            self.operation.label(),
            self.host,
            self.resource_type.label(),
            self.pattern.label(),
            self.resource_type.label(),
            self.name
        )
    }
}

/// Why a binding cannot be created (CreateAcls answers INVALID_REQUEST or
/// UNSUPPORTED_VERSION-like codes with this text).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum AclError {
    #[error("Invalid resource type {0}")]
    ResourceType(i8),
    #[error("Invalid operation {0}")]
    Operation(i8),
    #[error("Invalid permission type {0}")]
    Permission(i8),
    #[error("Invalid pattern type {0}")]
    Pattern(i8),
    #[error("Invalid principal {0:?}: expected Type:name")]
    Principal(String),
    #[error("Invalid empty resource name")]
    EmptyName,
    #[error("The only valid name for the CLUSTER resource is kafka-cluster")]
    ClusterName,
}

/// A principal string `Type:name` with a non-empty type.
pub(crate) fn valid_principal(p: &str) -> bool {
    matches!(p.split_once(':'), Some((t, n)) if !t.is_empty() && !n.is_empty())
}

impl AclBinding {
    /// A binding from the codes and strings of CreateAcls, validated as Kafka does.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_request(
        resource_type: i8,
        name: &str,
        pattern: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<Self, AclError> {
        let resource_type =
            ResourceType::from_code(resource_type).ok_or(AclError::ResourceType(resource_type))?;
        let pattern = match pattern {
            3 => PatternType::Literal,
            4 => PatternType::Prefixed,
            p => return Err(AclError::Pattern(p)),
        };
        let operation = Operation::from_code(operation).ok_or(AclError::Operation(operation))?;
        let permission =
            Permission::from_code(permission).ok_or(AclError::Permission(permission))?;
        if !valid_principal(principal) {
            return Err(AclError::Principal(principal.into()));
        }
        if name.is_empty() {
            return Err(AclError::EmptyName);
        }
        if resource_type == ResourceType::Cluster && name != CLUSTER_NAME {
            return Err(AclError::ClusterName);
        }
        Ok(Self {
            resource_type,
            name: name.into(),
            pattern,
            principal: principal.into(),
            host: if host.is_empty() {
                WILDCARD.into()
            } else {
                host.into()
            },
            operation,
            permission,
        })
    }
}

/// Which pattern types a filter selects (Kafka's `PatternType` in filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatternFilter {
    Any,
    Match,
    Exactly(PatternType),
}

/// DescribeAcls / DeleteAcls filter; `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AclFilter {
    pub(crate) resource_type: Option<ResourceType>,
    pub(crate) name: Option<String>,
    pub(crate) pattern: PatternFilter,
    pub(crate) principal: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) operation: Option<Operation>,
    pub(crate) permission: Option<Permission>,
}

impl AclFilter {
    /// A filter from request codes (1 = ANY for every enum; MATCH = 2 for patterns).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_request(
        resource_type: i8,
        name: Option<&str>,
        pattern: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<Self, AclError> {
        let resource_type = match resource_type {
            1 => None,
            c => Some(ResourceType::from_code(c).ok_or(AclError::ResourceType(c))?),
        };
        let pattern = match pattern {
            1 => PatternFilter::Any,
            2 => PatternFilter::Match,
            3 => PatternFilter::Exactly(PatternType::Literal),
            4 => PatternFilter::Exactly(PatternType::Prefixed),
            p => return Err(AclError::Pattern(p)),
        };
        let operation = match operation {
            1 => None,
            c => Some(Operation::from_code(c).ok_or(AclError::Operation(c))?),
        };
        let permission = match permission {
            1 => None,
            c => Some(Permission::from_code(c).ok_or(AclError::Permission(c))?),
        };
        Ok(Self {
            resource_type,
            name: name.map(str::to_string),
            pattern,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation,
            permission,
        })
    }

    /// Whether the filter selects `b`.
    pub(crate) fn matches(&self, b: &AclBinding) -> bool {
        if self.resource_type.is_some_and(|t| t != b.resource_type)
            || self.principal.as_ref().is_some_and(|p| *p != b.principal)
            || self.host.as_ref().is_some_and(|h| *h != b.host)
            || self.operation.is_some_and(|o| o != b.operation)
            || self.permission.is_some_and(|p| p != b.permission)
        {
            return false;
        }
        match (self.pattern, &self.name) {
            (PatternFilter::Exactly(p), name) => {
                p == b.pattern && name.as_ref().is_none_or(|n| *n == b.name)
            }
            (PatternFilter::Any, name) => name.as_ref().is_none_or(|n| *n == b.name),
            // MATCH: the bindings that would apply to a resource of this name.
            (PatternFilter::Match, None) => true,
            (PatternFilter::Match, Some(n)) => match b.pattern {
                PatternType::Literal => b.name == *n || b.name == WILDCARD,
                PatternType::Prefixed => n.starts_with(b.name.as_str()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(t: ResourceType, name: &str, p: PatternType) -> AclBinding {
        AclBinding {
            resource_type: t,
            name: name.into(),
            pattern: p,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn create_validation() {
        assert!(AclBinding::from_request(2, "t", 3, "User:a", "*", 3, 3).is_ok());
        assert_eq!(
            AclBinding::from_request(1, "t", 3, "User:a", "*", 3, 3),
            Err(AclError::ResourceType(1))
        );
        assert_eq!(
            AclBinding::from_request(2, "t", 2, "User:a", "*", 3, 3),
            Err(AclError::Pattern(2))
        );
        assert_eq!(
            AclBinding::from_request(2, "t", 3, "alice", "*", 3, 3),
            Err(AclError::Principal("alice".into()))
        );
        assert_eq!(
            AclBinding::from_request(4, "other", 3, "User:a", "*", 7, 3),
            Err(AclError::ClusterName)
        );
        // Kafka takes PREFIXED "*" as an ordinary prefix.
        assert!(AclBinding::from_request(2, "*", 4, "User:a", "*", 3, 3).is_ok());
        assert_eq!(
            AclBinding::from_request(2, "t", 3, "User:a", "*", 1, 3),
            Err(AclError::Operation(1))
        );
    }

    #[test]
    fn filters_any_match_and_exact() -> Result<(), AclError> {
        let lit = b(ResourceType::Topic, "orders", PatternType::Literal);
        let wild = b(ResourceType::Topic, "*", PatternType::Literal);
        let pre = b(ResourceType::Topic, "ord", PatternType::Prefixed);
        let other = b(ResourceType::Topic, "payments", PatternType::Literal);
        let all = [&lit, &wild, &pre, &other];
        let sel = |f: &AclFilter| all.iter().filter(|x| f.matches(x)).count();
        let any = AclFilter::from_request(1, None, 1, None, None, 1, 1)?;
        assert_eq!(sel(&any), 4);
        let m = AclFilter::from_request(2, Some("orders"), 2, None, None, 1, 1)?;
        assert_eq!(sel(&m), 3);
        let exact = AclFilter::from_request(2, Some("orders"), 3, None, None, 1, 1)?;
        assert_eq!(sel(&exact), 1);
        let any_name = AclFilter::from_request(2, Some("ord"), 1, None, None, 1, 1)?;
        assert_eq!(sel(&any_name), 1);
        let by_principal = AclFilter::from_request(1, None, 1, Some("User:bob"), None, 1, 1)?;
        assert_eq!(sel(&by_principal), 0);
        Ok(())
    }
}

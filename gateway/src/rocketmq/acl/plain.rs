//! RocketMQ 4.9's `plain_acl.yml`: the global white list and the accounts (access key, secret
//! key, white address, admin flag, default and per-resource permissions), read and written
//! with the same keys and rules as `PlainPermissionManager`.

use super::address::AddressPattern;
use std::collections::BTreeMap;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

/// A white-address pattern (`192.168.1.*`, `10.0.0.1,10.0.0.2`, ...).
pub(crate) fn parse_address(s: &str) -> Result<AddressPattern, String> {
    AddressPattern::parse(s)
}

/// RocketMQ's permission bits (`org.apache.rocketmq.acl.common.Permission`).
pub(crate) const DENY: u8 = 1;
pub(crate) const ANY: u8 = 2;
pub(crate) const PUB: u8 = 4;
pub(crate) const SUB: u8 = 8;

/// The retry topic of a group: how RocketMQ names a group resource.
pub(crate) const RETRY_PREFIX: &str = "%RETRY%";

/// `Permission.parsePermFromString`: unknown or missing text is DENY.
pub(crate) fn parse_perm(s: Option<&str>) -> u8 {
    match s.map(str::trim) {
        Some("PUB") => PUB,
        Some("SUB") => SUB,
        Some("PUB|SUB") | Some("SUB|PUB") => PUB | SUB,
        _ => DENY,
    }
}

/// The text of a permission, as the broker writes it back.
pub(crate) fn perm_text(p: u8) -> &'static str {
    match p {
        PUB => "PUB",
        SUB => "SUB",
        x if x == PUB | SUB => "PUB|SUB",
        _ => "DENY",
    }
}

/// `Permission.checkPermission`: whether `owned` grants `needed`.
pub(crate) fn check_permission(needed: u8, owned: u8) -> bool {
    if owned & DENY != 0 {
        return false;
    }
    if needed & ANY != 0 {
        return owned & (PUB | SUB) != 0;
    }
    needed & owned != 0
}

/// Why a configuration could not be loaded or changed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PlainAclError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot parse the ACL file: {0}")]
    Yaml(String),
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
    pub(crate) white_remote_address: String,
    pub(crate) admin: bool,
    pub(crate) default_topic_perm: u8,
    pub(crate) default_group_perm: u8,
    /// Topic name to permission (as listed in `topicPerms`).
    pub(crate) topic_perms: BTreeMap<String, u8>,
    /// Group name (without `%RETRY%`) to permission.
    pub(crate) group_perms: BTreeMap<String, u8>,
    pub(crate) white: AddressPattern,
    /// Whether `topicPerms` or `groupPerms` were given at all (an admin without any may do
    /// everything).
    pub(crate) has_resource_perms: bool,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PlainAcl {
    pub(crate) global_white: Vec<String>,
    pub(crate) global_patterns: Vec<AddressPattern>,
    pub(crate) accounts: BTreeMap<String, Account>,
    pub(crate) version: (i64, i64),
}

fn text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(a) => a.iter().filter_map(text).collect(),
        Yaml::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// `resource=PERM` entries (`PlainPermissionManager` parsing; an entry without exactly one
/// `=` is an error).
fn resource_perms(kind: &str, entries: &[String]) -> Result<BTreeMap<String, u8>, PlainAclError> {
    let mut out = BTreeMap::new();
    for e in entries {
        let parts: Vec<&str> = e.split('=').filter(|p| !p.is_empty()).collect();
        if parts.len() != 2 {
            return Err(PlainAclError::Invalid(format!(
                "Parse resource permission failed for {kind}:{e}"
            )));
        }
        out.insert(parts[0].trim().to_string(), parse_perm(Some(parts[1])));
    }
    Ok(out)
}

/// The key-length rule of 4.9.4: both keys longer than 6 characters.
pub(crate) fn check_keys(ak: Option<&str>, sk: Option<&str>) -> Result<(), PlainAclError> {
    match (ak, sk) {
        (Some(a), Some(s)) if a.chars().count() > 6 && s.chars().count() > 6 => Ok(()),
        _ => Err(PlainAclError::Invalid(format!(
            "The accessKey={} and secretKey={} cannot be null and length should longer than 6",
            ak.unwrap_or("null"),
            sk.map(|_| "******").unwrap_or("null")
        ))),
    }
}

impl Account {
    /// An account from its fields, validated as the broker validates them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        access_key: Option<&str>,
        secret_key: Option<&str>,
        white_remote_address: Option<&str>,
        admin: bool,
        default_topic_perm: Option<&str>,
        default_group_perm: Option<&str>,
        topic_perms: Option<Vec<String>>,
        group_perms: Option<Vec<String>>,
    ) -> Result<Self, PlainAclError> {
        check_keys(access_key, secret_key)?;
        let white_remote_address = white_remote_address.unwrap_or("").trim().to_string();
        let white = AddressPattern::parse(&white_remote_address).map_err(PlainAclError::Invalid)?;
        let has_resource_perms = topic_perms.is_some() || group_perms.is_some();
        Ok(Self {
            access_key: access_key.unwrap_or_default().to_string(),
            secret_key: secret_key.unwrap_or_default().to_string(),
            white_remote_address,
            admin,
            default_topic_perm: parse_perm(default_topic_perm),
            default_group_perm: parse_perm(default_group_perm),
            topic_perms: resource_perms("topic", &topic_perms.unwrap_or_default())?,
            group_perms: resource_perms("group", &group_perms.unwrap_or_default())?,
            white,
            has_resource_perms,
        })
    }

    fn to_yaml(&self) -> Yaml {
        let mut h = yaml_rust2::yaml::Hash::new();
        let s = |v: &str| Yaml::String(v.to_string());
        h.insert(s("accessKey"), s(&self.access_key));
        h.insert(s("secretKey"), s(&self.secret_key));
        h.insert(s("whiteRemoteAddress"), s(&self.white_remote_address));
        h.insert(s("admin"), Yaml::Boolean(self.admin));
        h.insert(s("defaultTopicPerm"), s(perm_text(self.default_topic_perm)));
        h.insert(s("defaultGroupPerm"), s(perm_text(self.default_group_perm)));
        let perms = |m: &BTreeMap<String, u8>| {
            Yaml::Array(
                m.iter()
                    .map(|(k, v)| s(&format!("{k}={}", perm_text(*v))))
                    .collect(),
            )
        };
        // Absent lists stay absent: an admin without any may do everything.
        if self.has_resource_perms {
            h.insert(s("topicPerms"), perms(&self.topic_perms));
            h.insert(s("groupPerms"), perms(&self.group_perms));
        }
        Yaml::Hash(h)
    }
}

impl PlainAcl {
    /// Parses a `plain_acl.yml` text (an empty file has no accounts).
    pub(crate) fn parse(source: &str) -> Result<Self, PlainAclError> {
        let docs =
            YamlLoader::load_from_str(source).map_err(|e| PlainAclError::Yaml(e.to_string()))?;
        let Some(doc) = docs.into_iter().next() else {
            return Ok(Self::default());
        };
        if matches!(doc, Yaml::Null) {
            return Ok(Self::default());
        }
        if doc.as_hash().is_none() {
            return Err(PlainAclError::Yaml("the document is not a mapping".into()));
        }
        let global_white = list(&doc["globalWhiteRemoteAddresses"]);
        let global_patterns = global_white
            .iter()
            .map(|a| AddressPattern::parse(a).map_err(PlainAclError::Invalid))
            .collect::<Result<Vec<_>, _>>()?;
        let mut accounts = BTreeMap::new();
        if let Yaml::Array(items) = &doc["accounts"] {
            for a in items {
                let opt_list = |k: &str| match &a[k] {
                    Yaml::BadValue | Yaml::Null => None,
                    y => Some(list(y)),
                };
                let account = Account::new(
                    text(&a["accessKey"]).as_deref(),
                    text(&a["secretKey"]).as_deref(),
                    text(&a["whiteRemoteAddress"]).as_deref(),
                    a["admin"].as_bool().unwrap_or(false),
                    text(&a["defaultTopicPerm"]).as_deref(),
                    text(&a["defaultGroupPerm"]).as_deref(),
                    opt_list("topicPerms"),
                    opt_list("groupPerms"),
                )?;
                // The first definition of a key wins, as in the broker.
                accounts
                    .entry(account.access_key.clone())
                    .or_insert(account);
            }
        }
        let version = match &doc["dataVersion"] {
            Yaml::Array(v) => v
                .first()
                .map(|d| {
                    (
                        d["counter"].as_i64().unwrap_or(0),
                        d["timestamp"].as_i64().unwrap_or(0),
                    )
                })
                .unwrap_or((0, 0)),
            _ => (0, 0),
        };
        Ok(Self {
            global_white,
            global_patterns,
            accounts,
            version,
        })
    }

    /// The file's text (what the broker writes back after an mqadmin change).
    pub(crate) fn to_yaml_string(&self) -> String {
        let mut h = yaml_rust2::yaml::Hash::new();
        let s = |v: &str| Yaml::String(v.to_string());
        h.insert(
            s("globalWhiteRemoteAddresses"),
            Yaml::Array(self.global_white.iter().map(|a| s(a)).collect()),
        );
        h.insert(
            s("accounts"),
            Yaml::Array(self.accounts.values().map(Account::to_yaml).collect()),
        );
        let mut v = yaml_rust2::yaml::Hash::new();
        v.insert(s("counter"), Yaml::Integer(self.version.0));
        v.insert(s("timestamp"), Yaml::Integer(self.version.1));
        h.insert(s("dataVersion"), Yaml::Array(vec![Yaml::Hash(v)]));
        let mut out = String::new();
        let mut emitter = YamlEmitter::new(&mut out);
        if emitter.dump(&Yaml::Hash(h)).is_err() {
            return String::new();
        }
        out.push('\n');
        out
    }

    /// Bumps the data version (counter + 1, timestamp now), as each change does.
    pub(crate) fn bump_version(&mut self, now_ms: i64) {
        self.version = (self.version.0 + 1, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      - groupA=DENY
      - groupB=PUB|SUB
      - groupC=SUB
  - accessKey: rocketmq2
    secretKey: 12345678
    whiteRemoteAddress: 192.168.1.*
    admin: true
"#;

    #[test]
    fn parses_the_sample_file_and_writes_it_back() -> Result<(), PlainAclError> {
        let acl = PlainAcl::parse(SAMPLE)?;
        assert_eq!(acl.global_white, vec!["10.10.103.*", "192.168.0.*"]);
        let a = &acl.accounts["RocketMQ"];
        assert_eq!(a.secret_key, "12345678");
        assert_eq!(a.default_topic_perm, DENY);
        assert_eq!(a.default_group_perm, SUB);
        assert_eq!(a.topic_perms["topicB"], PUB | SUB);
        assert_eq!(a.group_perms["groupA"], DENY);
        assert!(a.has_resource_perms);
        let b = &acl.accounts["rocketmq2"];
        assert!(b.admin && !b.has_resource_perms);
        let again = PlainAcl::parse(&acl.to_yaml_string())?;
        assert_eq!(again.accounts, acl.accounts);
        assert_eq!(again.global_white, acl.global_white);
        Ok(())
    }

    #[test]
    fn short_keys_and_bad_entries_are_refused() {
        let short = "accounts:\n  - accessKey: abc\n    secretKey: 12345678\n";
        assert_eq!(
            PlainAcl::parse(short),
            Err(PlainAclError::Invalid(
                "The accessKey=abc and secretKey=****** cannot be null and length should longer than 6"
                    .into()
            ))
        );
        let six = "accounts:\n  - accessKey: abcdefg\n    secretKey: 123456\n";
        assert!(PlainAcl::parse(six).is_err());
        let bad =
            "accounts:\n  - accessKey: abcdefg\n    secretKey: 1234567\n    topicPerms: [t]\n";
        assert_eq!(
            PlainAcl::parse(bad),
            Err(PlainAclError::Invalid(
                "Parse resource permission failed for topic:t".into()
            ))
        );
        assert_eq!(PlainAcl::parse(""), Ok(PlainAcl::default()));
    }

    #[test]
    fn permission_checks() {
        assert!(check_permission(PUB, PUB | SUB));
        assert!(!check_permission(SUB, PUB));
        assert!(!check_permission(PUB, DENY | PUB));
        assert!(check_permission(ANY, SUB));
        assert_eq!(parse_perm(Some("nonsense")), DENY);
        assert_eq!(parse_perm(None), DENY);
    }
}

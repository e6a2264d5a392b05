//! Principals: `User:<name>` from SASL, from a client certificate's subject through
//! `ssl.principal.mapping.rules` (Kafka's `SslPrincipalMapper`), or from a RocketMQ access
//! key; `User:ANONYMOUS` for a connection that authenticated neither way.

use regex::Regex;

/// The principal of unauthenticated connections.
pub(crate) const ANONYMOUS: &str = "User:ANONYMOUS";

/// `User:<name>`.
pub(crate) fn user(name: &str) -> String {
    format!("User:{name}")
}

/// The name part of a principal (`alice` of `User:alice`), what quotas are keyed by.
pub(crate) fn name_of(principal: &str) -> &str {
    principal
        .split_once(':')
        .map(|(_, n)| n)
        .unwrap_or(principal)
}

/// A client certificate's subject as Java's `X500Principal.getName()` (RFC 2253) prints it,
/// which is what Kafka's mapping rules match: most specific RDN first
/// (`CN=alice,OU=eng,O=Example,C=US`), keywords CN, C, L, ST, O, OU, DC, STREET, UID, other
/// attribute types as dotted OIDs with a `#`-hex value.
pub(crate) fn subject_dn(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let mut rdns: Vec<String> = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|atv| {
                let oid = atv.attr_type().to_id_string();
                let keyword = match oid.as_str() {
                    "2.5.4.3" => Some("CN"),
                    "2.5.4.6" => Some("C"),
                    "2.5.4.7" => Some("L"),
                    "2.5.4.8" => Some("ST"),
                    "2.5.4.10" => Some("O"),
                    "2.5.4.11" => Some("OU"),
                    "2.5.4.9" => Some("STREET"),
                    "0.9.2342.19200300.100.1.25" => Some("DC"),
                    "0.9.2342.19200300.100.1.1" => Some("UID"),
                    _ => None,
                };
                match (keyword, atv.as_str()) {
                    (Some(k), Ok(v)) => format!("{k}={}", escape_rfc2253(v)),
                    (k, _) => {
                        let value = atv.attr_value();
                        let mut der = vec![value.tag().0 as u8];
                        let len = value.data.len();
                        if len < 0x80 {
                            der.push(len as u8);
                        } else {
                            let bytes = (len as u32).to_be_bytes();
                            let skip = bytes.iter().take_while(|b| **b == 0).count();
                            der.push(0x80 | (4 - skip) as u8);
                            der.extend_from_slice(&bytes[skip..]);
                        }
                        der.extend_from_slice(value.data);
                        let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                        format!("{}=#{hex}", k.map(str::to_string).unwrap_or(oid))
                    }
                }
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

fn escape_rfc2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Why a mapping rule set could not be parsed or applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MappingError {
    #[error("invalid ssl.principal.mapping.rules entry {0:?}: {1}")]
    Invalid(String, String),
    #[error("no ssl.principal.mapping.rules rule applies to {0}")]
    NoMatch(String),
}

#[derive(Debug)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Option<char>,
    },
}

/// `ssl.principal.mapping.rules`: `RULE:pattern/replacement/[LU]` entries and `DEFAULT`,
/// separated by commas or newlines, tried in order; the first whose pattern matches the
/// whole DN gives the name.
#[derive(Debug)]
pub(crate) struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl PrincipalMapper {
    /// Parses the rules (empty or absent: `DEFAULT`).
    pub(crate) fn parse(rules: &str) -> Result<Self, MappingError> {
        let mut out = Vec::new();
        let mut rest = rules.trim();
        let group_ref =
            Regex::new(r"\$(\d)").map_err(|e| MappingError::Invalid("$N".into(), e.to_string()))?;
        while !rest.is_empty() {
            rest = rest.trim_start_matches([',', '\n', '\r', ' ', '\t']);
            if rest.is_empty() {
                break;
            }
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                out.push(Rule::Default);
                rest = r;
                continue;
            }
            let Some(body) = rest.strip_prefix("RULE:") else {
                return Err(MappingError::Invalid(
                    rest.to_string(),
                    "expected RULE: or DEFAULT".into(),
                ));
            };
            // pattern/replacement/flags, where `\/` escapes a slash.
            let mut fields: Vec<String> = vec![String::new()];
            let mut chars = body.char_indices().peekable();
            let mut end = body.len();
            while let Some((i, c)) = chars.next() {
                if fields.len() == 3 {
                    // Flags run to the next separator.
                    if matches!(c, ',' | '\n' | '\r') {
                        end = i;
                        break;
                    }
                    if let Some(f) = fields.last_mut() {
                        f.push(c);
                    }
                    continue;
                }
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            if let Some(f) = fields.last_mut() {
                                if n != '/' {
                                    f.push('\\');
                                }
                                f.push(n);
                            }
                        }
                    }
                    '/' => fields.push(String::new()),
                    c => {
                        if let Some(f) = fields.last_mut() {
                            f.push(c);
                        }
                    }
                }
            }
            let entry = &body[..end];
            if fields.len() != 3 {
                return Err(MappingError::Invalid(
                    entry.to_string(),
                    "expected RULE:pattern/replacement/[LU]".into(),
                ));
            }
            let flags = fields[2].trim();
            let case = match flags {
                "" => None,
                "L" => Some('L'),
                "U" => Some('U'),
                f => {
                    return Err(MappingError::Invalid(
                        entry.to_string(),
                        format!("unknown flag {f:?} (L or U)"),
                    ))
                }
            };
            let pattern = Regex::new(&format!("^(?:{})$", fields[0]))
                .map_err(|e| MappingError::Invalid(entry.to_string(), e.to_string()))?;
            // Java's `$1abc` is group 1 then "abc"; the regex crate would read a group
            // named "1abc".
            let replacement = group_ref.replace_all(&fields[1], "$${$1}").into_owned();
            out.push(Rule::Replace {
                pattern,
                replacement,
                case,
            });
            rest = &body[end..];
        }
        if out.is_empty() {
            out.push(Rule::Default);
        }
        Ok(Self { rules: out })
    }

    /// The principal name for a DN.
    pub(crate) fn name(&self, dn: &str) -> Result<String, MappingError> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(dn.to_string()),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if !pattern.is_match(dn) {
                        continue;
                    }
                    let name = pattern.replace(dn, replacement.as_str()).into_owned();
                    let name = match case {
                        Some('L') => name.to_lowercase(),
                        Some('U') => name.to_uppercase(),
                        _ => name,
                    };
                    if !name.is_empty() {
                        return Ok(name);
                    }
                }
            }
        }
        Err(MappingError::NoMatch(dn.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_documented_rules() -> Result<(), MappingError> {
        let m = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
             RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\
             RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U,DEFAULT",
        )?;
        assert_eq!(m.name("CN=kafka-1,OU=ServiceUsers,O=Org,C=US")?, "kafka-1");
        assert_eq!(
            m.name("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Palo Alto,ST=CA,C=US")?,
            "duke@javasoft"
        );
        assert_eq!(m.name("OU=x,cn=alice.b,O=y")?, "ALICE.B");
        assert_eq!(m.name("O=only")?, "O=only");
        Ok(())
    }

    #[test]
    fn default_is_the_full_dn_and_unmatched_fails() -> Result<(), MappingError> {
        assert_eq!(PrincipalMapper::parse("")?.name("CN=a,O=b")?, "CN=a,O=b");
        let m = PrincipalMapper::parse("RULE:^CN=([a-z]+)$/$1/")?;
        assert_eq!(m.name("CN=bob")?, "bob");
        assert!(m.name("CN=Bob,O=x").is_err());
        assert!(PrincipalMapper::parse("RULE:abc").is_err());
        assert!(PrincipalMapper::parse("RULE:(/x/Q").is_err());
        Ok(())
    }

    #[test]
    fn dn_of_a_generated_certificate() -> Result<(), Box<dyn std::error::Error>> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()])?;
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc");
        dn.push(rcgen::DnType::OrganizationalUnitName, "eng");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        assert_eq!(
            subject_dn(cert.der()).as_deref(),
            Some("CN=alice,OU=eng,O=Example\\, Inc,C=US")
        );
        Ok(())
    }
}

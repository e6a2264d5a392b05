//! Kafka listener configuration with Kafka's names: `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map`, and per-listener overrides
//! `listener.name.<name>.<key>` that take precedence over the plain key.

use crate::config::{Config, ConfigError};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// How a listener secures its connections (Kafka's `SecurityProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    /// Kafka's name of the protocol.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections are wrapped in TLS.
    pub(crate) fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether clients must authenticate with SASL before anything else.
    pub(crate) fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// One configured Kafka listener.
#[derive(Debug, Clone)]
pub(crate) struct ListenerSpec {
    /// Listener name as configured (e.g. `PLAINTEXT`, `MTLS`).
    pub(crate) name: String,
    pub(crate) protocol: SecurityProtocol,
    /// Where to bind.
    pub(crate) bind: SocketAddr,
    /// What clients are told, if `advertised.listeners` names this listener.
    pub(crate) advertised: Option<(String, i32)>,
}

/// Splits `NAME://host:port` into its name and address; an empty host means all interfaces.
fn parse_endpoint(entry: &str) -> Option<(String, String, u16)> {
    let (name, rest) = entry.trim().split_once("://")?;
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((
        name.trim().to_string(),
        host.to_string(),
        port.parse().ok()?,
    ))
}

fn bad(key: &str, value: &str, why: &'static str) -> ConfigError {
    ConfigError::Value {
        key: key.into(),
        value: value.into(),
        why,
    }
}

/// The security protocol of every listener name: Kafka's default map, extended or
/// overridden by `listener.security.protocol.map` (`NAME:PROTOCOL,...`).
fn protocol_map(cfg: &Config) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    let mut map: BTreeMap<String, SecurityProtocol> = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ]
    .into_iter()
    .map(|p| (p.name().to_string(), p))
    .collect();
    let key = "listener.security.protocol.map";
    if let Some(v) = cfg.get(key).filter(|v| !v.trim().is_empty()) {
        for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, proto) = part
                .split_once(':')
                .ok_or_else(|| bad(key, part, "expected NAME:PROTOCOL entries"))?;
            let proto = SecurityProtocol::parse(proto).ok_or_else(|| {
                bad(
                    key,
                    part,
                    "protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                )
            })?;
            map.insert(name.trim().to_ascii_uppercase(), proto);
        }
    }
    Ok(map)
}

/// Every Kafka listener this node binds: the entries of `listeners`, or else the one
/// PLAINTEXT listener on `kafka.listen` (`--kafka-addr`).
pub(crate) fn kafka_listeners(cfg: &Config) -> Result<Vec<ListenerSpec>, ConfigError> {
    let protocols = protocol_map(cfg)?;
    let mut advertised: BTreeMap<String, (String, i32)> = BTreeMap::new();
    let akey = "advertised.listeners";
    if let Some(v) = cfg.get(akey).filter(|v| !v.trim().is_empty()) {
        for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, host, port) = parse_endpoint(part)
                .ok_or_else(|| bad(akey, part, "expected NAME://host:port entries"))?;
            advertised.insert(name.to_ascii_uppercase(), (host, port as i32));
        }
    }
    let key = "listeners";
    let Some(v) = cfg.get(key).filter(|v| !v.trim().is_empty()) else {
        let bind = cfg.addr("kafka.listen")?;
        let name = "PLAINTEXT".to_string();
        // Without `listeners`, the first advertised entry describes the one listener.
        let adv = advertised
            .get(&name)
            .cloned()
            .or_else(|| advertised.values().next().cloned());
        return Ok(vec![ListenerSpec {
            name,
            protocol: SecurityProtocol::Plaintext,
            bind,
            advertised: adv,
        }]);
    };
    let mut out: Vec<ListenerSpec> = Vec::new();
    for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, host, port) = parse_endpoint(part)
            .ok_or_else(|| bad(key, part, "expected NAME://host:port entries"))?;
        let upper = name.to_ascii_uppercase();
        if out.iter().any(|l| l.name.eq_ignore_ascii_case(&name)) {
            return Err(bad(key, part, "each listener name may appear once"));
        }
        let protocol = *protocols.get(&upper).ok_or_else(|| {
            bad(
                key,
                part,
                "listener name has no entry in listener.security.protocol.map",
            )
        })?;
        let host = if host.is_empty() { "0.0.0.0" } else { &host };
        let bind: SocketAddr = format!("{host}:{port}")
            .parse()
            .or_else(|_| format!("[{host}]:{port}").parse())
            .map_err(|_| bad(key, part, "host must be a numeric address"))?;
        out.push(ListenerSpec {
            advertised: advertised.get(&upper).cloned(),
            name: upper,
            protocol,
            bind,
        });
    }
    if out.is_empty() {
        return Err(bad(key, v, "no listener given"));
    }
    Ok(out)
}

/// A setting for one listener: `listener.name.<name>.<key>` (name lower-cased, as Kafka
/// writes it; the name as configured is accepted too), else the plain key.
pub(crate) fn listener_value<'a>(cfg: &'a Config, listener: &str, key: &str) -> Option<&'a str> {
    let lower = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
    let asis = format!("listener.name.{listener}.{key}");
    cfg.get(&lower)
        .or_else(|| cfg.get(&asis))
        .or_else(|| cfg.get(key))
        .filter(|v| !v.trim().is_empty())
}

/// A setting given only for one listener (`listener.name.<name>.<key>`).
pub(crate) fn listener_only<'a>(cfg: &'a Config, listener: &str, key: &str) -> Option<&'a str> {
    let lower = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
    let asis = format!("listener.name.{listener}.{key}");
    cfg.get(&lower)
        .or_else(|| cfg.get(&asis))
        .filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(sets: &[&str]) -> Config {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::load(None, &sets).unwrap_or_default()
    }

    #[test]
    fn default_is_one_plaintext_listener() -> Result<(), ConfigError> {
        let l = kafka_listeners(&cfg(&["kafka.listen=127.0.0.1:0"]))?;
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name, "PLAINTEXT");
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[0].bind.to_string(), "127.0.0.1:0");
        Ok(())
    }

    #[test]
    fn named_listeners_with_custom_map_and_advertised() -> Result<(), ConfigError> {
        let c = cfg(&[
            "listeners=PLAINTEXT://127.0.0.1:9092,SASL_SSL://:9093,mtls://127.0.0.1:9094",
            "listener.security.protocol.map=MTLS:SSL",
            "advertised.listeners=SASL_SSL://broker.example:19093",
            "listener.name.mtls.ssl.client.auth=required",
            "ssl.client.auth=none",
        ]);
        let l = kafka_listeners(&c)?;
        let names: Vec<(&str, SecurityProtocol)> =
            l.iter().map(|l| (l.name.as_str(), l.protocol)).collect();
        assert_eq!(
            names,
            vec![
                ("PLAINTEXT", SecurityProtocol::Plaintext),
                ("SASL_SSL", SecurityProtocol::SaslSsl),
                ("MTLS", SecurityProtocol::Ssl)
            ]
        );
        assert_eq!(l[1].bind.to_string(), "0.0.0.0:9093");
        assert_eq!(l[1].advertised, Some(("broker.example".into(), 19093)));
        assert_eq!(l[0].advertised, None);
        assert_eq!(
            listener_value(&c, "MTLS", "ssl.client.auth"),
            Some("required")
        );
        assert_eq!(
            listener_value(&c, "SASL_SSL", "ssl.client.auth"),
            Some("none")
        );
        Ok(())
    }

    #[test]
    fn unknown_protocol_and_duplicates_are_refused() {
        assert!(kafka_listeners(&cfg(&["listeners=FOO://127.0.0.1:1"])).is_err());
        assert!(kafka_listeners(&cfg(&[
            "listeners=PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2"
        ]))
        .is_err());
        assert!(kafka_listeners(&cfg(&["listeners=PLAINTEXT://nohost"])).is_err());
    }
}

//! SASL mechanisms on the server side, independent of how a protocol frames the tokens:
//! PLAIN (checked against the stored SCRAM credentials, as Redpanda does) and
//! SCRAM-SHA-256 / SCRAM-SHA-512.

use super::scram::{Mechanism, ScramError, ScramServer, Step};
use super::Security;

/// Every mechanism this server implements, in the order it lists them.
pub(crate) const SUPPORTED: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// The largest SASL token accepted (Kafka's `sasl.server.max.receive.size` default).
pub(crate) const MAX_TOKEN: usize = 524_288;

/// The result of one client token.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Send this challenge; more tokens follow.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send `last` (may be empty).
    Done { user: String, last: Vec<u8> },
    /// Authentication failed: `client` is what the client is told, `reason` what is logged.
    Failed { client: String, reason: String },
}

enum State {
    Plain,
    Scram(ScramServer),
}

/// One authentication exchange.
pub(crate) struct Exchange {
    mechanism: &'static str,
    state: State,
}

impl Exchange {
    /// Starts an exchange for a mechanism the listener enables; `None` if it is not one.
    pub(crate) fn start(mechanism: &str, enabled: &[String]) -> Option<Self> {
        if !enabled.iter().any(|m| m == mechanism) {
            return None;
        }
        let name = SUPPORTED.iter().find(|m| **m == mechanism)?;
        let state = match *name {
            "PLAIN" => State::Plain,
            other => State::Scram(ScramServer::new(Mechanism::from_name(other)?)),
        };
        Some(Self {
            mechanism: name,
            state,
        })
    }

    /// The mechanism's name.
    pub(crate) fn mechanism(&self) -> &'static str {
        self.mechanism
    }

    /// Processes one client token.
    pub(crate) fn step(&mut self, token: &[u8], security: &Security) -> Outcome {
        if token.len() > MAX_TOKEN {
            return failed(format!(
                "Failing SASL authentication due to invalid receive size ({} bytes, limit {MAX_TOKEN})",
                token.len()
            ));
        }
        match &mut self.state {
            State::Plain => plain(token, security),
            State::Scram(s) => match s.step(token, |u, m| security.credential(u, m)) {
                Ok(Step::Challenge(c)) => Outcome::Continue(c),
                Ok(Step::Success { user, last }) => Outcome::Done { user, last },
                // Kafka passes only the authorization-id refusal through; every other SCRAM
                // failure reaches the client as the generic text.
                Err(ScramError::AuthzId) => failed(ScramError::AuthzId.to_string()),
                Err(e) => Outcome::Failed {
                    client: format!(
                        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                        self.mechanism
                    ),
                    reason: e.to_string(),
                },
            },
        }
    }
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`, messages as Kafka's PlainSaslServer.
fn plain(token: &[u8], security: &Security) -> Outcome {
    let Ok(text) = std::str::from_utf8(token) else {
        return failed("Invalid SASL/PLAIN response: not UTF-8".into());
    };
    let parts: Vec<&str> = text.split('\u{0}').collect();
    if parts.len() != 3 {
        return failed(format!(
            "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
            parts.len()
        ));
    }
    let (authzid, user, password) = (parts[0], parts[1], parts[2]);
    if user.is_empty() {
        return failed("Authentication failed: username not specified".into());
    }
    if password.is_empty() {
        return failed("Authentication failed: password not specified".into());
    }
    if !authzid.is_empty() && authzid != user {
        return failed(
            "Authentication failed: Client requested an authorization id that is different from username"
                .into(),
        );
    }
    if security.verify_password(user, password) {
        Outcome::Done {
            user: user.to_string(),
            last: Vec::new(),
        }
    } else {
        failed("Authentication failed: Invalid username or password".into())
    }
}

fn failed(msg: String) -> Outcome {
    Outcome::Failed {
        client: msg.clone(),
        reason: msg,
    }
}

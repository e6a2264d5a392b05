//! SaslAuthenticate (v0-2) and the raw tokens of a v0 handshake: one step of the SASL
//! exchange each. Success sets the connection's principal and, with
//! `connections.max.reauth.ms`, the session lifetime; failure answers
//! SASL_AUTHENTICATION_FAILED and closes the connection.

use super::session::{Sasl, Session};
use crate::auth::principal;
use crate::auth::sasl::Outcome;
use crate::auth::Security;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use std::time::Instant;

/// What one token produced.
pub(crate) struct StepResult {
    /// Bytes for the client (a challenge or the final message).
    pub(crate) token: Vec<u8>,
    /// Failure message for the client; the connection closes after it.
    pub(crate) error: Option<String>,
    /// Session lifetime to report, in ms (0: none).
    pub(crate) lifetime_ms: i64,
}

/// Feeds one client token to the exchange in progress.
pub(crate) fn step(session: &mut Session, security: &Security, token: &[u8]) -> StepResult {
    let listener = session.listener.clone();
    let Sasl::Exchanging { exchange, .. } = &mut session.sasl else {
        return StepResult {
            token: Vec::new(),
            error: Some("SaslAuthenticate without a SaslHandshake".into()),
            lifetime_ms: 0,
        };
    };
    let mechanism = exchange.mechanism();
    let outcome = exchange.step(token, security);
    let result = |r: &'static str| {
        metrics::counter!("sasl_authentications_total", "listener" => listener.name.clone(), "mechanism" => mechanism, "result" => r).increment(1);
    };
    match outcome {
        Outcome::Continue(challenge) => StepResult {
            token: challenge,
            error: None,
            lifetime_ms: 0,
        },
        Outcome::Done { user, last } => {
            let new = principal::user(&user);
            if session.authenticated_once && new != session.principal {
                result("failure");
                tracing::warn!(target: "audit", peer = %session.peer, listener = %listener.name, mechanism, from = %session.principal, to = %new, "re-authentication changed the principal; closing");
                session.sasl = Sasl::Handshake;
                return StepResult {
                    token: Vec::new(),
                    error: Some(format!(
                        "Cannot change principals during re-authentication from {}: {new}",
                        session.principal
                    )),
                    lifetime_ms: 0,
                };
            }
            result("success");
            tracing::debug!(peer = %session.peer, listener = %listener.name, mechanism, principal = %new, "SASL authentication succeeded");
            session.principal = new;
            session.sasl = Sasl::Done;
            session.authenticated_once = true;
            session.mechanism = Some(mechanism);
            session.authn_deadline = None;
            let lifetime_ms = listener.reauth.as_millis() as i64;
            session.expires = (lifetime_ms > 0).then(|| Instant::now() + listener.reauth);
            StepResult {
                token: last,
                error: None,
                lifetime_ms,
            }
        }
        Outcome::Failed { client, reason } => {
            result("failure");
            tracing::warn!(target: "audit", peer = %session.peer, listener = %listener.name, mechanism, reason = %reason, "SASL authentication failed");
            session.sasl = Sasl::Handshake;
            StepResult {
                token: Vec::new(),
                error: Some(client),
                lifetime_ms: 0,
            }
        }
    }
}

/// SaslAuthenticate: the response, and whether the connection closes after it.
pub(crate) fn handle(
    session: &mut Session,
    security: &Security,
    req: SaslAuthenticateRequest,
    version: i16,
) -> (SaslAuthenticateResponse, bool) {
    let mut resp = SaslAuthenticateResponse::default();
    match session.sasl {
        Sasl::Exchanging { raw: false, .. } => {}
        Sasl::Off | Sasl::Done => {
            resp.error_code = ResponseError::IllegalSaslState.code();
            resp.error_message = Some(super::sb(
                "SaslAuthenticate request received after successful authentication",
            ));
            return (resp, false);
        }
        _ => {
            resp.error_code = ResponseError::IllegalSaslState.code();
            resp.error_message = Some(super::sb(
                "Unexpected SaslAuthenticate request during SASL handshake.",
            ));
            return (resp, true);
        }
    }
    let r = step(session, security, &req.auth_bytes);
    resp.auth_bytes = Bytes::from(r.token);
    if version >= 1 {
        resp.session_lifetime_ms = r.lifetime_ms;
    }
    match r.error {
        Some(msg) => {
            resp.error_code = ResponseError::SaslAuthenticationFailed.code();
            resp.error_message = Some(super::sb(&msg));
            (resp, true)
        }
        None => (resp, false),
    }
}

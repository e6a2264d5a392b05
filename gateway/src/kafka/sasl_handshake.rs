//! SaslHandshake (v0-1): picks the mechanism of the exchange that follows; an unknown one is
//! answered with the enabled list and the connection closed. v0 means the tokens follow as
//! raw frames, v1 that they come in SaslAuthenticate requests. On an authenticated connection
//! it starts a re-authentication (KIP-368) when sessions expire, and is an illegal state
//! otherwise.

use super::sb;
use super::session::{Sasl, Session};
use crate::auth::sasl::Exchange;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};

/// The response, and whether the connection closes after it.
pub(crate) fn handle(
    session: &mut Session,
    req: SaslHandshakeRequest,
    version: i16,
) -> (SaslHandshakeResponse, bool) {
    let mut resp = SaslHandshakeResponse::default();
    let listener = session.listener.clone();
    let illegal = |close: bool| {
        (
            SaslHandshakeResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code()),
            close,
        )
    };
    match session.sasl {
        Sasl::Off => return illegal(false),
        Sasl::Exchanging { .. } => return illegal(true),
        Sasl::Done if listener.reauth.is_zero() => return illegal(false),
        Sasl::Done | Sasl::Handshake => {}
    }
    resp.mechanisms = listener.mechanisms.iter().map(|m| sb(m)).collect();
    let wanted = req.mechanism.to_string();
    if let Some(prev) = session.mechanism {
        if session.authenticated_once && prev != wanted {
            tracing::warn!(peer = %session.peer, listener = %listener.name, mechanism = %wanted, previous = prev, "re-authentication with another mechanism refused");
            resp.error_code = ResponseError::UnsupportedSaslMechanism.code();
            return (resp, true);
        }
    }
    match Exchange::start(&wanted, &listener.mechanisms) {
        Some(exchange) => {
            session.sasl = Sasl::Exchanging {
                exchange: Box::new(exchange),
                raw: version == 0,
            };
            (resp, false)
        }
        None => {
            metrics::counter!("sasl_authentications_total", "listener" => listener.name.clone(), "mechanism" => "unsupported", "result" => "failure").increment(1);
            tracing::warn!(target: "audit", peer = %session.peer, listener = %listener.name, mechanism = %wanted, "SASL mechanism not enabled; closing");
            resp.error_code = ResponseError::UnsupportedSaslMechanism.code();
            (resp, true)
        }
    }
}

//! The security state of one Kafka connection: its listener, its principal, and where it
//! stands in SASL authentication (KIP-43 handshake, KIP-152 SaslAuthenticate, KIP-368
//! re-authentication).

use crate::auth::listeners::SecurityProtocol;
use crate::auth::principal::{PrincipalMapper, ANONYMOUS};
use crate::auth::sasl::Exchange;
use crate::auth::tls::ReloadingServer;
use kafka_protocol::messages::ApiKey;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One bound Kafka listener and its security settings.
pub(crate) struct KafkaListener {
    pub(crate) name: String,
    pub(crate) protocol: SecurityProtocol,
    pub(crate) tls: Option<Arc<ReloadingServer>>,
    /// `sasl.enabled.mechanisms` of this listener.
    pub(crate) mechanisms: Vec<String>,
    /// `connections.max.reauth.ms` (0: sessions never expire).
    pub(crate) reauth: Duration,
    /// How long a connection may take to authenticate (`sasl.server.authn.timeout`).
    pub(crate) authn_timeout: Duration,
    pub(crate) mapper: PrincipalMapper,
    /// Bound address.
    pub(crate) local: SocketAddr,
    /// Endpoint clients are told for this listener.
    pub(crate) advertised: (String, i32),
}

/// Where a connection stands in SASL.
pub(crate) enum Sasl {
    /// Not a SASL listener.
    Off,
    /// Waiting for SaslHandshake (first time, or a re-authentication).
    Handshake,
    /// A mechanism was chosen; tokens come in SaslAuthenticate requests (v1 handshake) or
    /// as raw frames (v0).
    Exchanging { exchange: Box<Exchange>, raw: bool },
    /// Authenticated.
    Done,
}

/// Per-connection security state.
pub(crate) struct Session {
    pub(crate) listener: Arc<KafkaListener>,
    pub(crate) peer: SocketAddr,
    pub(crate) principal: String,
    pub(crate) sasl: Sasl,
    /// When the SASL session expires (KIP-368), if it does.
    pub(crate) expires: Option<Instant>,
    /// Set once any SASL exchange succeeded: later ones are re-authentications and may not
    /// change the principal.
    pub(crate) authenticated_once: bool,
    /// The peer presented a certificate that chains to the cluster's trust store: it may
    /// act as a replica (fetch as a follower).
    pub(crate) cluster_peer: bool,
    /// Deadline for the first authentication.
    pub(crate) authn_deadline: Option<Instant>,
    /// The mechanism of the last successful exchange (re-authentication must use it).
    pub(crate) mechanism: Option<&'static str>,
}

impl Session {
    /// A new connection's session; `cert_principal` is the mapped name of its client
    /// certificate, if it presented one.
    pub(crate) fn new(
        listener: Arc<KafkaListener>,
        peer: SocketAddr,
        cert_principal: Option<String>,
        cluster_peer: bool,
    ) -> Self {
        let sasl = if listener.protocol.sasl() {
            Sasl::Handshake
        } else {
            Sasl::Off
        };
        let authn_deadline = listener
            .protocol
            .sasl()
            .then(|| Instant::now() + listener.authn_timeout);
        Self {
            principal: cert_principal
                .map(|n| crate::auth::principal::user(&n))
                .unwrap_or_else(|| ANONYMOUS.to_string()),
            listener,
            peer,
            sasl,
            expires: None,
            authenticated_once: false,
            cluster_peer,
            authn_deadline,
            mechanism: None,
        }
    }

    /// Whether the connection may send requests other than authentication ones.
    pub(crate) fn authenticated(&self) -> bool {
        match self.sasl {
            Sasl::Off | Sasl::Done => true,
            // Re-authenticating connections stay authenticated meanwhile.
            Sasl::Handshake | Sasl::Exchanging { .. } => self.authenticated_once,
        }
    }

    /// Whether the next frame is a raw SASL token (after a v0 handshake).
    pub(crate) fn expects_raw_token(&self) -> bool {
        matches!(self.sasl, Sasl::Exchanging { raw: true, .. })
    }

    /// Why a request may not be processed now, if it may not: before authentication only
    /// ApiVersions and the SASL requests are allowed; once the session expired
    /// (`connections.max.reauth.ms`) only a re-authentication is.
    pub(crate) fn refuse(&self, api: ApiKey) -> Option<&'static str> {
        let expired = self.expires.is_some_and(|e| Instant::now() >= e);
        match api {
            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => None,
            _ if !self.authenticated() && api == ApiKey::ApiVersions => None,
            _ if !self.authenticated() => Some("request before SASL authentication completed"),
            _ if expired => {
                Some("SASL session expired without re-authentication (connections.max.reauth.ms)")
            }
            _ => None,
        }
    }
}

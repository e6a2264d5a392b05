//! The admin HTTP/JSON API (`admin.listen`, default 127.0.0.1:9644): mirror links today.
//! `gateway mirror ...` is its command-line client ([`cli`]).
//!
//! Once an authorizer is configured, every request needs HTTP Basic credentials of a SCRAM
//! user (checked against the salted credential) and the Kafka ACL it maps to: DESCRIBE on
//! the CLUSTER to read, ALTER on the CLUSTER to change; denials are audited like Kafka's.

pub(crate) mod cli;
mod mirror_links;

use crate::auth::acl::{Operation, ResourceType};
use crate::auth::{Protocol, Who};
use crate::broker::Broker;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// An error answer: `{"error": "..."}` with its status.
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// Binds the admin listener: an explicit `admin.listen` must bind; the default is skipped
/// with a warning when another process holds it (several servers on one machine).
pub(crate) async fn bind(cfg: &crate::config::Config) -> anyhow::Result<Option<TcpListener>> {
    let addr = cfg.addr("admin.listen")?;
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if cfg.explicit("admin.listen").is_none() => {
            tracing::warn!(%addr, error = %e, "admin API not started: the default address is taken (set admin.listen or --admin-addr)");
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!("binding the admin listener {addr}: {e}")),
    }
}

/// Serves the API until the process ends.
pub(crate) async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    tls: Option<Arc<crate::auth::tls::ReloadingServer>>,
) {
    let app = axum::Router::new()
        .merge(mirror_links::routes())
        .layer(axum::middleware::from_fn_with_state(
            broker.clone(),
            authorize,
        ))
        .with_state(broker);
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let result = match tls {
        None => axum::serve(listener, service).await,
        Some(tls) => {
            // tap_io makes axum's ConnectInfo<SocketAddr> available for a custom listener.
            use axum::serve::ListenerExt;
            let listener = TlsListener::new(listener, tls).tap_io(|_io| {});
            axum::serve(listener, service).await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "admin API stopped");
    }
}

/// The user of HTTP Basic credentials, if they are a SCRAM user's.
fn basic_user(broker: &Broker, req: &Request) -> Option<String> {
    use base64::Engine;
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    broker
        .security
        .verify_password(user, password)
        .then(|| user.to_string())
}

/// Authentication and authorization of every request once an authorizer is configured.
async fn authorize(
    State(broker): State<Arc<Broker>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if !broker.security.authorizer {
        return next.run(req).await;
    }
    let Some(user) = basic_user(&broker, &req) else {
        metrics::counter!("authentication_failures_total", "listener" => "ADMIN", "mechanism" => "BASIC").increment(1);
        tracing::info!(target: "audit", %peer, path = %req.uri().path(), "admin API: authentication failed");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"gateway\"")],
            Json(serde_json::json!({ "error": "authentication required (HTTP Basic with a SCRAM user)" })),
        )
            .into_response();
    };
    let principal = crate::auth::principal::user(&user);
    let who = Who {
        principal: &principal,
        peer,
        protocol: Protocol::Admin,
    };
    let op = if req.method() == Method::GET {
        Operation::Describe
    } else {
        Operation::Alter
    };
    let request = format!("{} {}", req.method(), req.uri().path());
    if !broker
        .security
        .check(&who, op, ResourceType::Cluster, "kafka-cluster", &request)
    {
        return ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "{principal} is not authorized to {} the cluster",
                op.label()
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Accepts TLS connections: handshakes run on their own tasks so a slow client holds up no
/// one else.
struct TlsListener {
    local: SocketAddr,
    rx: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
}

impl TlsListener {
    fn new(listener: TcpListener, tls: Arc<crate::auth::tls::ReloadingServer>) -> Self {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Ok((sock, peer)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let tx = tx.clone();
                let acceptor = tls.acceptor();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock)).await
                    {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        _ => {
                            metrics::counter!("tls_handshake_failures_total", "listener" => "ADMIN", "reason" => "handshake").increment(1);
                            tracing::debug!(%peer, "admin API: TLS handshake failed");
                        }
                    }
                });
            }
        });
        Self { local, rx }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Some(c) = self.rx.recv().await {
                return c;
            }
            // The acceptor task never ends while the listener lives; wait rather than spin.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

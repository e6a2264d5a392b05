//! TLS with rustls and Kafka's setting names: `ssl.keystore.type=PEM` with
//! `ssl.keystore.location` (private key and certificate chain in one PEM file),
//! `ssl.truststore.type=PEM` with `ssl.truststore.location` (CA certificates),
//! `ssl.client.auth=none|requested|required`. Key material is re-read when its files change
//! (checked every second) or on SIGHUP; connections already open keep their session.

use super::listeners::listener_value;
use crate::config::Config;
use parking_lot::{Mutex, RwLock};
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// Why TLS could not be configured.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("{key} is required for a TLS listener ({listener})")]
    Missing { key: String, listener: String },
    #[error("{key}={value}: only PEM is supported")]
    NotPem { key: String, value: String },
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, String),
    #[error("{0}: no private key found")]
    NoKey(PathBuf),
    #[error("{0}: no certificate found")]
    NoCert(PathBuf),
    #[error("ssl.client.auth={0}: expected none, requested or required")]
    ClientAuth(String),
    #[error("ssl.client.auth={0} needs ssl.truststore.location")]
    NoTruststore(String),
    #[error("TLS setup: {0}")]
    Rustls(String),
}

/// Whether and how clients present certificates (`ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    None,
    Requested,
    Required,
}

/// Where one listener's key material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    pub(crate) keystore: PathBuf,
    pub(crate) truststore: Option<PathBuf>,
    pub(crate) client_auth: ClientAuth,
}

impl TlsFiles {
    /// The key material of `listener` (`listener.name.<name>.ssl.*` over `ssl.*`); on a SASL_SSL listener (`sasl`) only a listener-prefixed
    /// `ssl.client.auth` counts, as in Kafka (clients authenticate with SASL there).
    pub(crate) fn from_config_for(
        cfg: &Config,
        listener: &str,
        sasl: bool,
    ) -> Result<Self, TlsError> {
        for key in ["ssl.keystore.type", "ssl.truststore.type"] {
            if let Some(v) = listener_value(cfg, listener, key) {
                if !v.trim().eq_ignore_ascii_case("PEM") {
                    return Err(TlsError::NotPem {
                        key: key.into(),
                        value: v.into(),
                    });
                }
            }
        }
        let keystore = listener_value(cfg, listener, "ssl.keystore.location")
            .map(PathBuf::from)
            .ok_or_else(|| TlsError::Missing {
                key: "ssl.keystore.location".into(),
                listener: listener.into(),
            })?;
        let truststore =
            listener_value(cfg, listener, "ssl.truststore.location").map(PathBuf::from);
        let client_auth_value = if sasl {
            super::listeners::listener_only(cfg, listener, "ssl.client.auth")
        } else {
            listener_value(cfg, listener, "ssl.client.auth")
        };
        let client_auth = match client_auth_value
            .unwrap_or("none")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            other => return Err(TlsError::ClientAuth(other.into())),
        };
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(TlsError::NoTruststore(
                client_auth_value.unwrap_or("").into(),
            ));
        }
        Ok(Self {
            keystore,
            truststore,
            client_auth,
        })
    }

    fn paths(&self) -> Vec<PathBuf> {
        let mut v = vec![self.keystore.clone()];
        v.extend(self.truststore.clone());
        v
    }
}

/// ring's suites, AES-128-GCM first: as safe as AES-256 here and cheaper for both ends (the
/// server picks, ignoring clients such as OpenSSL that list AES-256 first).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::cipher_suite as cs;
    let mut p = rustls::crypto::ring::default_provider();
    let preferred = [
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    let rest: Vec<_> = p
        .cipher_suites
        .iter()
        .filter(|s| !preferred.iter().any(|x| x.suite() == s.suite()))
        .copied()
        .collect();
    p.cipher_suites = preferred.into_iter().chain(rest).collect();
    Arc::new(p)
}

/// The private key and certificate chain of a PEM keystore.
fn read_keystore(
    path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let sections = <(SectionKind, Vec<u8>)>::pem_file_iter(path)
        .map_err(|e| TlsError::Read(path.into(), e.to_string()))?;
    let mut certs = Vec::new();
    let mut key = None;
    for s in sections {
        let (kind, der) = s.map_err(|e| TlsError::Read(path.into(), e.to_string()))?;
        match kind {
            SectionKind::Certificate => certs.push(CertificateDer::from(der)),
            SectionKind::PrivateKey => key = Some(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::RsaPrivateKey => key = Some(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::EcPrivateKey => key = Some(PrivateKeyDer::Sec1(der.into())),
            _ => {}
        }
    }
    if certs.is_empty() {
        return Err(TlsError::NoCert(path.into()));
    }
    let key = key.ok_or_else(|| TlsError::NoKey(path.into()))?;
    Ok((certs, key))
}

/// The CA certificates of a PEM truststore.
fn read_truststore(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Read(path.into(), e.to_string()))?;
    for c in certs {
        let c = c.map_err(|e| TlsError::Read(path.into(), e.to_string()))?;
        roots
            .add(c)
            .map_err(|e| TlsError::Read(path.into(), e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCert(path.into()));
    }
    Ok(roots)
}

fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let (certs, key) = read_keystore(&files.keystore)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match (&files.truststore, files.client_auth) {
        (_, ClientAuth::None) | (None, _) => builder.with_no_client_auth(),
        (Some(ts), auth) => {
            let roots = Arc::new(read_truststore(ts)?);
            let v = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let v = if auth == ClientAuth::Requested {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder
                .with_client_cert_verifier(v.build().map_err(|e| TlsError::Rustls(e.to_string()))?)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    cfg.alpn_protocols = Vec::new();
    cfg.ignore_client_order = true;
    Ok(cfg)
}

fn mtimes(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// A TLS server configuration that follows its files.
pub(crate) struct ReloadingServer {
    label: String,
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl ReloadingServer {
    /// Loads the key material now (an error here stops the server from starting) and
    /// registers it for reloads.
    pub(crate) fn new(label: &str, files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let stamps = mtimes(&files.paths());
        let cfg = server_config(&files)?;
        let me = Arc::new(Self {
            label: label.into(),
            files,
            current: RwLock::new(Arc::new(cfg)),
            stamps: Mutex::new(stamps),
        });
        registry().lock().push(Arc::downgrade(&me));
        Ok(me)
    }

    /// The acceptor for a new connection.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().clone())
    }

    /// Re-reads the files if they changed (or `force`); a failed reload keeps the old keys.
    fn reload(&self, force: bool) {
        let now = mtimes(&self.files.paths());
        {
            let mut stamps = self.stamps.lock();
            if !force && *stamps == now {
                return;
            }
            *stamps = now;
        }
        match server_config(&self.files) {
            Ok(cfg) => {
                *self.current.write() = Arc::new(cfg);
                metrics::counter!("tls_reloads_total", "listener" => self.label.clone())
                    .increment(1);
                tracing::info!(listener = %self.label, keystore = %self.files.keystore.display(), "TLS key material reloaded");
            }
            Err(e) => {
                metrics::counter!("tls_reload_failures_total", "listener" => self.label.clone())
                    .increment(1);
                tracing::error!(listener = %self.label, error = %e, "TLS reload failed; keeping the previous keys");
            }
        }
    }
}

type Registry = Mutex<Vec<std::sync::Weak<ReloadingServer>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

fn reload_all(force: bool) {
    let servers: Vec<Arc<ReloadingServer>> = {
        let mut r = registry().lock();
        r.retain(|w| w.strong_count() > 0);
        r.iter().filter_map(|w| w.upgrade()).collect()
    };
    for s in servers {
        s.reload(force);
    }
}

/// Watches every TLS configuration's files (once a second) and reloads all of them on
/// SIGHUP. Reading happens on a blocking thread: the files may sit on slow storage.
pub(crate) fn spawn_reloader() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(|| reload_all(false)).await;
        }
    });
    tokio::spawn(async {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading TLS key material");
            let _ = tokio::task::spawn_blocking(|| reload_all(true)).await;
        }
    });
}

/// Node-to-node TLS (`cluster.ssl.keystore.location`, `cluster.ssl.truststore.location`):
/// every node presents its certificate and accepts only peers whose certificates chain to
/// the cluster's trust store.
pub(crate) struct ClusterTls {
    /// For connecting to peers (controller port, inter-broker listener).
    pub(crate) client: Arc<ClientConfig>,
    /// For the controller port: client certificates required.
    pub(crate) server: Arc<ReloadingServer>,
}

impl ClusterTls {
    /// `None` when cluster TLS is not configured.
    pub(crate) fn from_config(cfg: &Config) -> Result<Option<Self>, TlsError> {
        let get = |k: &str| {
            cfg.get(k)
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from)
        };
        let (keystore, truststore) = match (
            get("cluster.ssl.keystore.location"),
            get("cluster.ssl.truststore.location"),
        ) {
            (None, None) => return Ok(None),
            (Some(k), Some(t)) => (k, t),
            (Some(_), None) => {
                return Err(TlsError::Missing {
                    key: "cluster.ssl.truststore.location".into(),
                    listener: "CONTROLLER".into(),
                })
            }
            (None, Some(_)) => {
                return Err(TlsError::Missing {
                    key: "cluster.ssl.keystore.location".into(),
                    listener: "CONTROLLER".into(),
                })
            }
        };
        let (certs, key) = read_keystore(&keystore)?;
        let roots = read_truststore(&truststore)?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let server = ReloadingServer::new(
            "CONTROLLER",
            TlsFiles {
                keystore,
                truststore: Some(truststore),
                client_auth: ClientAuth::Required,
            },
        )?;
        Ok(Some(Self {
            client: Arc::new(client),
            server,
        }))
    }
}

/// Opens a connection to a peer, wrapped in TLS when `tls` is given (verifying the peer's
/// certificate against its host name or IP).
pub(crate) async fn connect(
    addr: &str,
    tls: Option<&Arc<ClientConfig>>,
) -> std::io::Result<Box<dyn crate::net::Stream>> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let Some(cfg) = tls else {
        return Ok(Box::new(s));
    };
    let host = addr
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(addr)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let s = tokio_rustls::TlsConnector::from(cfg.clone())
        .connect(name, s)
        .await?;
    Ok(Box::new(s))
}

/// Whether the first bytes a client sent open a TLS handshake (a TLS record of type
/// handshake, 0x16, with major version 3), as RocketMQ's `TlsModeHandler` tells TLS from
/// plaintext on a permissive port.
pub(crate) fn looks_like_tls(first: &[u8]) -> bool {
    first.len() >= 2 && first[0] == 0x16 && first[1] == 0x03
}

/// The cluster's trust store: a peer whose certificate chains to it is a node of this
/// cluster (`cluster.ssl.truststore.location`).
pub(crate) struct ClusterTrust {
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl ClusterTrust {
    pub(crate) fn load(truststore: &Path) -> Result<Self, TlsError> {
        let roots = Arc::new(read_truststore(truststore)?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        Ok(Self { verifier })
    }

    /// Whether a presented chain (end entity first) verifies against the cluster's CA.
    pub(crate) fn verifies(&self, chain: &[CertificateDer<'static>]) -> bool {
        let Some((end, rest)) = chain.split_first() else {
            return false;
        };
        self.verifier
            .verify_client_cert(end, rest, rustls::pki_types::UnixTime::now())
            .is_ok()
    }
}

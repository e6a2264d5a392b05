//! Connections to a link's source cluster, with the link's client settings (Kafka's names:
//! `security.protocol`, `ssl.truststore.location`, `ssl.keystore.location`,
//! `sasl.mechanism`, `sasl.username`, `sasl.password`).

use crate::kafka_client::{KafkaConn, SaslLogin};
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How to reach a source cluster.
#[derive(Clone)]
pub(crate) struct SourceConfig {
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<SaslLogin>,
}

fn read_pem(path: &str) -> Result<Vec<(SectionKind, Vec<u8>)>, String> {
    <(SectionKind, Vec<u8>)>::pem_file_iter(path)
        .map_err(|e| format!("{path}: {e}"))?
        .map(|s| s.map_err(|e| format!("{path}: {e}")))
        .collect()
}

impl SourceConfig {
    /// From a link's `--source-config` values.
    pub(crate) fn new(map: &BTreeMap<String, String>) -> Result<Self, String> {
        let protocol = map
            .get("security.protocol")
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_else(|| "PLAINTEXT".into());
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => return Err(format!("security.protocol={other} is not a Kafka protocol")),
        };
        let tls = if tls {
            let mut roots = rustls::RootCertStore::empty();
            let ca = map
                .get("ssl.truststore.location")
                .or_else(|| map.get("ssl.ca.location"))
                .ok_or("security.protocol needs ssl.truststore.location (a PEM CA file)")?;
            for (kind, der) in read_pem(ca)? {
                if kind == SectionKind::Certificate {
                    roots
                        .add(CertificateDer::from(der))
                        .map_err(|e| format!("{ca}: {e}"))?;
                }
            }
            let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
            let cfg = match map.get("ssl.keystore.location") {
                None => builder.with_no_client_auth(),
                Some(ks) => {
                    let mut certs = Vec::new();
                    let mut key = None;
                    for (kind, der) in read_pem(ks)? {
                        match kind {
                            SectionKind::Certificate => certs.push(CertificateDer::from(der)),
                            SectionKind::PrivateKey => key = Some(PrivateKeyDer::Pkcs8(der.into())),
                            SectionKind::EcPrivateKey => {
                                key = Some(PrivateKeyDer::Sec1(der.into()))
                            }
                            SectionKind::RsaPrivateKey => {
                                key = Some(PrivateKeyDer::Pkcs1(der.into()))
                            }
                            _ => {}
                        }
                    }
                    let key = key.ok_or_else(|| format!("{ks}: no private key"))?;
                    builder
                        .with_client_auth_cert(certs, key)
                        .map_err(|e| e.to_string())?
                }
            };
            Some(Arc::new(cfg))
        } else {
            None
        };
        let sasl = if sasl {
            Some(SaslLogin {
                mechanism: map
                    .get("sasl.mechanism")
                    .cloned()
                    .unwrap_or_else(|| "PLAIN".into()),
                username: map
                    .get("sasl.username")
                    .cloned()
                    .ok_or("SASL needs sasl.username")?,
                password: map
                    .get("sasl.password")
                    .cloned()
                    .ok_or("SASL needs sasl.password")?,
            })
        } else {
            None
        };
        Ok(Self { tls, sasl })
    }

    /// A ready connection to one source broker: TLS, SASL and version negotiation done.
    pub(crate) async fn connect(&self, addr: &str, client_id: &str) -> anyhow::Result<KafkaConn> {
        let mut conn = KafkaConn::connect(addr, client_id.to_string(), self.tls.as_ref()).await?;
        conn.negotiate().await?;
        if let Some(login) = &self.sasl {
            conn.authenticate(login).await?;
        }
        Ok(conn)
    }
}

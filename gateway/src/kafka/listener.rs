//! Accepting Kafka connections on one listener: connection limits, the TLS handshake on
//! SSL and SASL_SSL listeners, and the principal of a client certificate.

use super::session::{KafkaListener, Session};
use crate::broker::Broker;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on one listener until it fails.
pub(crate) async fn serve(broker: Arc<Broker>, listener: Arc<KafkaListener>, tcp: TcpListener) {
    loop {
        let slot = broker.connections.slot().await;
        let (stream, peer) = match tcp.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(listener = %listener.name, error = %e, "Kafka accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = broker.connections.admit(slot, peer.ip(), &listener.name) else {
            continue;
        };
        // connection_creation_rate of the ip entity: a connection over the rate is closed
        // after the throttle time, as Kafka does.
        let throttle = {
            let snap = broker.security.snapshot();
            broker.quotas.record(
                &snap.state,
                crate::auth::quota::Kind::Connection,
                "",
                &peer.ip().to_string(),
                1.0,
            )
        };
        if throttle > 0 {
            metrics::counter!("connections_rejected_total", "listener" => listener.name.clone(), "reason" => "connection_creation_rate").increment(1);
            tracing::warn!(%peer, listener = %listener.name, throttle_ms = throttle, "connection creation rate quota exceeded; closing");
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(throttle as u64)).await;
                drop((stream, permit));
            });
            continue;
        }
        let broker = broker.clone();
        let listener = listener.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let name = listener.name.clone();
            metrics::gauge!("kafka_connections", "listener" => name.clone()).increment(1.0);
            metrics::counter!("kafka_connections_accepted_total", "listener" => name.clone())
                .increment(1);
            let result = match listener.tls.clone() {
                None => {
                    let session =
                        Session::new(listener.clone(), peer, None, broker.cluster_trust.is_none());
                    let (rd, wr) = stream.into_split();
                    super::connection(broker, rd, wr, session).await
                }
                Some(tls) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => {
                            let certs = s.get_ref().1.peer_certificates().map(<[_]>::to_vec);
                            let mut cert_principal = None;
                            let mut cluster_peer = broker.cluster_trust.is_none();
                            if let Some(chain) = certs.as_deref().filter(|c| !c.is_empty()) {
                                if let Some(trust) = &broker.cluster_trust {
                                    cluster_peer = trust.verifies(chain);
                                }
                                let dn = crate::auth::principal::subject_dn(&chain[0]);
                                match dn.map(|dn| listener.mapper.name(&dn)) {
                                    Some(Ok(n)) => cert_principal = Some(n),
                                    Some(Err(e)) => {
                                        tracing::warn!(target: "audit", %peer, listener = %name, error = %e, "client certificate not mapped to a principal; closing");
                                        metrics::counter!("ssl_authentications_total", "listener" => name.clone(), "result" => "failure").increment(1);
                                        metrics::gauge!("kafka_connections", "listener" => name)
                                            .decrement(1.0);
                                        return;
                                    }
                                    None => {
                                        tracing::warn!(%peer, listener = %name, "unreadable client certificate; closing");
                                        metrics::gauge!("kafka_connections", "listener" => name)
                                            .decrement(1.0);
                                        return;
                                    }
                                }
                                metrics::counter!("ssl_authentications_total", "listener" => name.clone(), "result" => "success").increment(1);
                            }
                            let session =
                                Session::new(listener.clone(), peer, cert_principal, cluster_peer);
                            let (rd, wr) = tokio::io::split(s);
                            super::connection(broker, rd, wr, session).await
                        }
                        Ok(Err(e)) => {
                            metrics::counter!("tls_handshake_failures_total", "listener" => name.clone(), "reason" => "handshake").increment(1);
                            tracing::warn!(%peer, listener = %name, error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            metrics::counter!("tls_handshake_failures_total", "listener" => name.clone(), "reason" => "timeout").increment(1);
                            tracing::warn!(%peer, listener = %name, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::warn!(%peer, listener = %name, error = %e, "closing Kafka connection");
            }
            metrics::gauge!("kafka_connections", "listener" => name).decrement(1.0);
        });
    }
}

impl KafkaListener {
    /// A bound listener's runtime settings: TLS key material, SASL mechanisms,
    /// re-authentication, principal mapping and the advertised endpoint.
    pub(crate) fn build(
        cfg: &crate::config::Config,
        spec: crate::auth::listeners::ListenerSpec,
        local: std::net::SocketAddr,
        default_host: &str,
    ) -> anyhow::Result<Self> {
        use crate::auth::listeners::listener_value;
        let name = spec.name.clone();
        let tls = if spec.protocol.tls() {
            let files =
                crate::auth::tls::TlsFiles::from_config_for(cfg, &name, spec.protocol.sasl())?;
            Some(crate::auth::tls::ReloadingServer::new(&name, files)?)
        } else {
            None
        };
        let mut mechanisms = Vec::new();
        if spec.protocol.sasl() {
            for m in listener_value(cfg, &name, "sasl.enabled.mechanisms")
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
            {
                if !crate::auth::sasl::SUPPORTED.contains(&m) {
                    anyhow::bail!(
                        "sasl.enabled.mechanisms: {m} is not supported (supported: {})",
                        crate::auth::sasl::SUPPORTED.join(", ")
                    );
                }
                mechanisms.push(m.to_string());
            }
            if mechanisms.is_empty() {
                anyhow::bail!("listener {name} is SASL but sasl.enabled.mechanisms is empty");
            }
        }
        let ms = |key: &str, default: i64| -> anyhow::Result<Duration> {
            let v = listener_value(cfg, &name, key)
                .map(|v| v.trim().parse::<i64>())
                .transpose()
                .map_err(|_| anyhow::anyhow!("{key} must be a number of milliseconds"))?
                .unwrap_or(default);
            Ok(Duration::from_millis(v.max(0) as u64))
        };
        let mapper = crate::auth::principal::PrincipalMapper::parse(
            listener_value(cfg, &name, "ssl.principal.mapping.rules").unwrap_or("DEFAULT"),
        )?;
        let advertised = spec.advertised.clone().unwrap_or_else(|| {
            let host = if local.ip().is_unspecified() {
                default_host.to_string()
            } else {
                local.ip().to_string()
            };
            (host, local.port() as i32)
        });
        let reauth = ms("connections.max.reauth.ms", 0)?;
        let authn_timeout =
            ms("sasl.server.authn.timeout", 30_000)?.max(Duration::from_millis(100));
        Ok(Self {
            name,
            protocol: spec.protocol,
            tls,
            mechanisms,
            reauth,
            authn_timeout,
            mapper,
            local,
            advertised,
        })
    }
}

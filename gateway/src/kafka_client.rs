//! A minimal Kafka protocol client for node-to-node traffic (replica fetches and
//! OffsetForLeaderEpoch) and for mirror links (any Kafka-compatible source, with version
//! negotiation, TLS and SASL), encoding with the same `kafka-protocol` messages the server
//! decodes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

/// Largest response accepted from a peer.
const MAX_RESPONSE: usize = 256 << 20;

/// One connection to a peer's Kafka listener.
pub(crate) struct KafkaConn {
    stream: BufReader<Box<dyn crate::net::Stream>>,
    correlation: i32,
    client_id: String,
    /// The peer's version ranges, once asked (`negotiate`).
    versions: std::collections::HashMap<i16, (i16, i16)>,
}

/// SASL credentials for a connection.
#[derive(Debug, Clone)]
pub(crate) struct SaslLogin {
    pub(crate) mechanism: String,
    pub(crate) username: String,
    pub(crate) password: String,
}

impl KafkaConn {
    /// Connects to a peer's inter-broker listener, over TLS with this node's certificate when
    /// `tls` is given.
    pub(crate) async fn connect(
        addr: &str,
        client_id: String,
        tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    ) -> anyhow::Result<Self> {
        let s = tokio::time::timeout(Duration::from_secs(3), crate::auth::tls::connect(addr, tls))
            .await??;
        Ok(Self {
            stream: BufReader::new(s),
            correlation: 0,
            client_id,
            versions: std::collections::HashMap::new(),
        })
    }

    /// Asks the peer which versions it speaks (ApiVersions v3, falling back to v0).
    pub(crate) async fn negotiate(&mut self) -> anyhow::Result<()> {
        use kafka_protocol::messages::ApiVersionsRequest;
        let t = Duration::from_secs(5);
        let mut req = ApiVersionsRequest::default();
        req.client_software_name = StrBytes::from_static_str("gateway-mirror");
        req.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let resp = match self.call(&req, 3, t).await {
            Ok(r) if r.error_code == 0 => r,
            _ => self.call(&ApiVersionsRequest::default(), 0, t).await?,
        };
        self.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The newest version of `R` both sides speak, at most `max` (after `negotiate`).
    pub(crate) fn version<R: Request>(&self, max: i16) -> anyhow::Result<i16> {
        let (lo, hi) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("the peer does not support API key {}", R::KEY))?;
        let v = hi.min(max);
        if v < lo {
            anyhow::bail!(
                "no common version of API key {} (peer {lo}-{hi}, ours up to {max})",
                R::KEY
            );
        }
        Ok(v)
    }

    /// Authenticates with SASL (SaslHandshake v1, then SaslAuthenticate): PLAIN or SCRAM.
    pub(crate) async fn authenticate(&mut self, login: &SaslLogin) -> anyhow::Result<()> {
        use crate::auth::scram::{Mechanism, ScramClient};
        use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
        let t = Duration::from_secs(10);
        let mut hs = SaslHandshakeRequest::default();
        hs.mechanism = StrBytes::from_string(login.mechanism.clone());
        let r = self.call(&hs, 1, t).await?;
        if r.error_code != 0 {
            anyhow::bail!(
                "SASL mechanism {} refused (error {}; the peer offers {:?})",
                login.mechanism,
                r.error_code,
                r.mechanisms
                    .iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
            );
        }
        let step = |bytes: Vec<u8>| {
            let mut a = SaslAuthenticateRequest::default();
            a.auth_bytes = Bytes::from(bytes);
            a
        };
        let fail = |r: &kafka_protocol::messages::SaslAuthenticateResponse| {
            anyhow::anyhow!(
                "SASL authentication as {} failed: {}",
                login.username,
                r.error_message.as_deref().unwrap_or("")
            )
        };
        match Mechanism::from_name(&login.mechanism) {
            None if login.mechanism == "PLAIN" => {
                let token = format!("\u{0}{}\u{0}{}", login.username, login.password).into_bytes();
                let r = self.call(&step(token), 1, t).await?;
                if r.error_code != 0 {
                    return Err(fail(&r));
                }
            }
            None => anyhow::bail!("SASL mechanism {} is not supported", login.mechanism),
            Some(mech) => {
                let mut client = ScramClient::new(mech, &login.username, &login.password);
                let r = self.call(&step(client.first()), 1, t).await?;
                if r.error_code != 0 {
                    return Err(fail(&r));
                }
                let fin = client
                    .final_message(&r.auth_bytes)
                    .map_err(|e| anyhow::anyhow!(e))?;
                let r = self.call(&step(fin), 1, t).await?;
                if r.error_code != 0 {
                    return Err(fail(&r));
                }
                client
                    .verify(&r.auth_bytes)
                    .map_err(|e| anyhow::anyhow!(e))?;
            }
        }
        Ok(())
    }

    /// Sends `req` at `version` and waits up to `timeout` for its response.
    pub(crate) async fn call<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> anyhow::Result<R::Response> {
        self.correlation = self.correlation.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = self.correlation;
        header.client_id = Some(StrBytes::from_string(self.client_id.clone()));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version))?;
        req.encode(&mut buf, version)?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        let expect = self.correlation;
        let body = tokio::time::timeout(timeout, async {
            self.stream.get_mut().write_all(&buf).await?;
            self.stream.get_mut().flush().await?;
            let len = self.stream.read_i32().await?;
            if len < 4 || len as usize > MAX_RESPONSE {
                anyhow::bail!("peer sent a response of {len} bytes");
            }
            let mut body = vec![0u8; len as usize];
            self.stream.read_exact(&mut body).await?;
            Ok(Bytes::from(body))
        })
        .await
        .map_err(|_| anyhow::anyhow!("peer did not answer within {timeout:?}"))??;
        let mut body = body;
        let rh = ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
        if rh.correlation_id != expect {
            anyhow::bail!(
                "response correlation id {} does not match request {expect}",
                rh.correlation_id
            );
        }
        let resp = R::Response::decode(&mut body, version)?;
        if body.has_remaining() {
            tracing::debug!(left = body.remaining(), "peer response had trailing bytes");
        }
        Ok(resp)
    }
}

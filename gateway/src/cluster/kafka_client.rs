//! A minimal Kafka protocol client for node-to-node traffic (replica fetches and
//! OffsetForLeaderEpoch), encoding with the same `kafka-protocol` messages the server decodes.

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
        })
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

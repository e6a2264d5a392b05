//! Prometheus exposition: installs the global `metrics` recorder and serves `GET /metrics`
//! on a listener the server already bound (so port 0 works without a race).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Installs the global recorder.
pub(crate) fn install() -> anyhow::Result<PrometheusHandle> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)?
        .install_recorder()?)
}

/// Serves `/metrics` until the listener fails; over HTTPS with `tls` (`metrics.ssl.enable`,
/// the `ssl.*` key material).
pub(crate) async fn serve(
    handle: PrometheusHandle,
    listener: TcpListener,
    tls: Option<std::sync::Arc<crate::auth::tls::ReloadingServer>>,
) {
    loop {
        let Ok((sock, peer)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut sock: Box<dyn crate::net::Stream> = match tls {
                None => Box::new(sock),
                Some(t) => {
                    match tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        t.acceptor().accept(sock),
                    )
                    .await
                    {
                        Ok(Ok(s)) => Box::new(s),
                        _ => {
                            metrics::counter!("tls_handshake_failures_total", "listener" => "METRICS", "reason" => "handshake").increment(1);
                            tracing::debug!(%peer, "metrics: TLS handshake failed");
                            return;
                        }
                    }
                }
            };
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            // Read the request head (bounded); the body, if any, is ignored.
            while n < buf.len() {
                match sock.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if head.starts_with("GET ")
                && (path == "/metrics" || path.starts_with("/metrics?"))
            {
                ("200 OK", handle.render())
            } else {
                tracing::debug!(%peer, path, "metrics: not found");
                ("404 Not Found", "not found\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

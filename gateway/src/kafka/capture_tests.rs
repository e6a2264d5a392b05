//! The Java 3.9 client's captured requests (`compat-tests/captures/kafka-java-3.9`) decode through
//! the same path the server uses, for every API and version we advertise, with no bytes left.

use super::supported_versions;
use bytes::Bytes;
use codecs::kafka::frame;
use kafka_protocol::messages::{ApiKey, RequestKind};
use std::path::PathBuf;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

fn captures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../compat-tests/captures/kafka-java-3.9")
}

#[test]
fn java_client_requests_decode() {
    let dir = captures();
    assert!(dir.is_dir(), "capture folder {} is missing", dir.display());
    let mut decoded = 0;
    let mut skipped = std::collections::BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            if v["dir"] != "client->server" {
                continue;
            }
            let raw = unhex(v["hex"].as_str().unwrap_or(""));
            let mut body = Bytes::from(raw[4..].to_vec());
            let ids = frame::peek_ids(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let api = ApiKey::try_from(ids.api_key).unwrap_or_else(|_| panic!("unknown key"));
            match supported_versions(api) {
                Some((min, max)) if (min..=max).contains(&ids.api_version) => {}
                _ => {
                    skipped.insert(format!("{api:?} v{}", ids.api_version));
                    continue;
                }
            }
            let header = frame::decode_header(api, &mut body)
                .unwrap_or_else(|e| panic!("{} {api:?}: {e}", path.display()));
            assert_eq!(header.correlation_id, ids.correlation_id);
            RequestKind::decode(api, &mut body, ids.api_version)
                .unwrap_or_else(|e| panic!("{} {api:?} v{}: {e}", path.display(), ids.api_version));
            assert!(
                body.is_empty(),
                "{} {api:?}: {} bytes left",
                path.display(),
                body.len()
            );
            decoded += 1;
        }
    }
    assert!(decoded >= 250, "decoded only {decoded}");
    // Only APIs we do not advertise are skipped; the Java client does not send those to us.
    let expected: std::collections::BTreeSet<String> = [
        "ConsumerGroupDescribe v0",
        "DescribeTopicPartitions v0",
        "GetTelemetrySubscriptions v0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(skipped, expected);
}

//! Replays the RocketMQ 4.9.4 Java client's and mqadmin's captured request frames
//! (`compat-tests/captures/rocketmq-4.9.4`) against a live server, one connection per recorded
//! connection, and compares each response code with what the real 4.9.4 name server and
//! broker answered (both directions of those captures are authoritative).

mod common;

use bytes::Bytes;
use codecs::rocketmq::{self as rmq, RemotingCommand};
use common::{data_dir, Server};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

struct Conn {
    stream: TcpStream,
}

impl Conn {
    /// Reads frames until the response to `opaque` arrives (skipping broker pushes).
    fn response(&mut self, opaque: i32, timeout: Duration) -> Option<RemotingCommand> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).ok()?;
            let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
            self.stream.read_exact(&mut buf).ok()?;
            let cmd = rmq::decode(Bytes::from(buf)).ok()?;
            if cmd.is_response() && cmd.opaque == opaque {
                return Some(cmd);
            }
        }
    }
}

struct Outcome {
    compared: usize,
    mismatches: Vec<String>,
}

/// Replays one capture file; `server` is "namesrv" or "broker" per frame.
fn replay(namesrv: &str, broker: &str, file: &str, skip: &[&str]) -> Outcome {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("captures/rocketmq-4.9.4")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let frames: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    // Expected response code per (stream, opaque).
    let mut expected: HashMap<(u64, i64), (i64, String)> = HashMap::new();
    for f in &frames {
        if f["dir"] == "server->client" && f["kind"] == "response" {
            expected.insert(
                (
                    f["stream"].as_u64().unwrap_or(0),
                    f["opaque"].as_i64().unwrap_or(-1),
                ),
                (
                    f["code"].as_i64().unwrap_or(-1),
                    f["request_code_name"].as_str().unwrap_or("").to_string(),
                ),
            );
        }
    }
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut out = Outcome {
        compared: 0,
        mismatches: Vec::new(),
    };
    for f in &frames {
        if f["dir"] != "client->server" || f["kind"] != "request" {
            continue;
        }
        let name = f["code_name"].as_str().unwrap_or("");
        if skip.contains(&name) {
            continue;
        }
        let stream = f["stream"].as_u64().unwrap_or(0);
        let opaque = f["opaque"].as_i64().unwrap_or(-1);
        let addr = if f["server"] == "namesrv" {
            namesrv
        } else {
            broker
        };
        let conn = conns.entry(stream).or_insert_with(|| Conn {
            stream: TcpStream::connect(addr).expect("connect"),
        });
        conn.stream
            .write_all(&unhex(f["hex"].as_str().unwrap_or("")))
            .expect("send");
        let Some((want, _)) = expected.get(&(stream, opaque)).cloned() else {
            continue; // oneway, or the real broker never answered (suspended pull)
        };
        let got = conn.response(opaque as i32, Duration::from_secs(20));
        out.compared += 1;
        match got {
            Some(r) if r.code as i64 == want => {}
            Some(r) => out.mismatches.push(format!(
                "{file} stream {stream} {name} opaque {opaque}: got {} ({:?}), real broker {want}",
                r.code, r.remark
            )),
            None => out.mismatches.push(format!(
                "{file} stream {stream} {name} opaque {opaque}: no response"
            )),
        }
    }
    out
}

fn ready_line_field(s: &Server, k: &str) -> String {
    s.field(k)
}

#[test]
fn java_client_and_mqadmin_get_the_real_brokers_answers() {
    let mut all = Vec::new();
    let mut compared = 0;
    // Captures that build on each other share a broker; each group starts fresh, as the
    // recorded sessions did.
    let groups: &[&[&str]] = &[
        &[
            "mqadmin-update-topic.jsonl",
            "mqadmin-topic-route.jsonl",
            "mqadmin-topic-list.jsonl",
            "mqadmin-cluster-list.jsonl",
        ],
        &["send-sync.jsonl"],
        &["heartbeat.jsonl"],
        &["lock-batch-mq.jsonl"],
        &["transaction.jsonl"],
        &["flow-sync-send-push-consume.jsonl"],
        &["flow-clustering-two-consumers.jsonl"],
        &["flow-broadcasting.jsonl"],
        &["flow-orderly-lock.jsonl"],
        &["flow-tag-filter.jsonl"],
        &["flow-delay.jsonl"],
        &["flow-lite-pull.jsonl"],
        &["flow-query-prep.jsonl"],
        &["flow-transaction-check.jsonl"],
    ];
    for files in groups {
        let (_g, dir) = data_dir();
        let s = Server::start_in(&dir, &[]);
        let (ns, br) = (
            ready_line_field(&s, "namesrv"),
            ready_line_field(&s, "broker"),
        );
        for file in files.iter() {
            // Pulls depend on timing the capture cannot reproduce; clients cover them.
            let o = replay(&ns, &br, file, &["PULL_MESSAGE"]);
            compared += o.compared;
            all.extend(o.mismatches);
        }
    }
    assert!(compared > 40, "compared only {compared} responses");
    assert!(
        all.is_empty(),
        "{} mismatches:\n{}",
        all.len(),
        all.join("\n")
    );
}

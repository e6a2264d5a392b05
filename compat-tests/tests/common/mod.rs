//! Starts real `gateway` processes for the tests, on loopback with ports the server picks.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The server binary: $GATEWAY_BIN, else the workspace's debug build.
pub fn gateway_bin() -> PathBuf {
    std::env::var_os("GATEWAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("debug")
                .join("gateway")
        })
}

/// A running server process.
pub struct Server {
    pub child: Child,
    pub kafka: String,
    pub metrics: String,
    pub data_dir: PathBuf,
    pub sets: Vec<String>,
    pub ready: String,
}

impl Server {
    /// Starts a server on `data_dir` with extra `--set` values and waits for its ready line.
    pub fn start_in(data_dir: &Path, sets: &[&str]) -> Server {
        let mut cmd = Command::new(gateway_bin());
        cmd.arg("--data-dir").arg(data_dir);
        for a in [
            "--kafka-addr",
            "--namesrv-addr",
            "--broker-addr",
            "--metrics-addr",
        ] {
            cmd.arg(a).arg("127.0.0.1:0");
        }
        cmd.arg("--set").arg("group.initial.rebalance.delay.ms=0");
        for s in sets {
            cmd.arg("--set").arg(s);
        }
        let log_path = log_path(data_dir);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("server log file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", gateway_bin().display()));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("gateway ready ") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "server did not print its ready line; see {}",
                    log_path.display()
                )
            });
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{k}=")).map(str::to_string))
                .expect("ready line field")
        };
        Server {
            child,
            kafka: field("kafka"),
            metrics: field("metrics"),
            data_dir: data_dir.to_path_buf(),
            sets: sets.iter().map(|s| s.to_string()).collect(),
            ready: line.clone(),
        }
    }

    /// A `key=value` field of the ready line (`kafka`, `namesrv`, `broker`, `metrics`).
    pub fn field(&self, key: &str) -> String {
        self.ready
            .split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{key}=")).map(str::to_string))
            .unwrap_or_default()
    }

    /// SIGKILLs the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts again on the same data directory (new ports).
    pub fn restart(&mut self) {
        self.kill9();
        let sets: Vec<String> = self.sets.clone();
        let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
        let dir = self.data_dir.clone();
        *self = Server::start_in(&dir, &refs);
    }

    /// Fetches /metrics.
    pub fn metrics_text(&self) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.metrics).expect("metrics connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Server logs are kept under target/test-logs, one file per data directory.
fn log_path(data_dir: &Path) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-logs");
    let _ = std::fs::create_dir_all(&dir);
    let name = data_dir
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "server".into());
    dir.join(format!("{name}.log"))
}

/// A fresh temporary data directory that lives as long as the returned guard.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("data");
    (d, p)
}

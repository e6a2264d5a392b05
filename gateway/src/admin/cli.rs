//! `gateway mirror [--admin URL] VERB ...`: the admin API's command-line client. Every verb
//! prints the API's JSON answer on stdout; an error exits non-zero with one line on stderr.

use clap::{Args, Subcommand};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `gateway mirror`.
#[derive(Debug, Args)]
pub(crate) struct MirrorCli {
    /// The server's admin API.
    #[arg(
        long,
        global = true,
        env = "GATEWAY_ADMIN",
        default_value = "http://127.0.0.1:9644"
    )]
    admin: String,
    /// User (a SCRAM user) when the server has an authorizer; the password comes from
    /// --password or GATEWAY_ADMIN_PASSWORD.
    #[arg(long, global = true, env = "GATEWAY_ADMIN_USER")]
    user: Option<String>,
    #[arg(
        long,
        global = true,
        env = "GATEWAY_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// PEM CA certificate for an https:// admin API.
    #[arg(long, global = true)]
    cacert: Option<std::path::PathBuf>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Creates a link that mirrors topics of the source cluster into read-only topics here.
    Create {
        name: String,
        #[command(flatten)]
        link: LinkArgs,
    },
    /// Lists the links.
    List,
    /// A link's state and every mirrored partition's ends and lag.
    Status { name: String },
    /// Stops fetching (no fetch starts once this returns).
    Pause { name: String },
    /// Fetches again.
    Resume { name: String },
    /// Makes the link's topics (or one topic) writable and stops mirroring them.
    Failover {
        name: String,
        #[arg(long)]
        topic: Option<String>,
    },
    /// Deletes a link; its topics become ordinary topics.
    Delete { name: String },
    /// On the old source after a failover: mirror back from BOOTSTRAP, truncating what the
    /// new primary does not have.
    /// Filters default to the topics both sides have.
    Reverse {
        name: String,
        #[command(flatten)]
        link: LinkArgs,
    },
}

/// What a link pulls: `create` and `reverse` take the same flags.
#[derive(Debug, Args)]
struct LinkArgs {
    /// Bootstrap servers of the source cluster.
    #[arg(long)]
    source: String,
    /// Topics to mirror (regex matching whole names; repeatable; default: all).
    #[arg(long = "topics")]
    topics: Vec<String>,
    /// Topics not to mirror (regex matching whole names; repeatable).
    #[arg(long = "exclude")]
    exclude: Vec<String>,
    /// Consumer groups whose offsets are synced (regex; default: all).
    #[arg(long)]
    groups: Option<String>,
    /// Client setting for the source, Kafka's names (repeatable):
    /// security.protocol, ssl.truststore.location, sasl.mechanism, sasl.username, ...
    #[arg(long = "source-config", value_name = "KEY=VALUE")]
    source_config: Vec<String>,
}

impl LinkArgs {
    fn body(&self, name: &str) -> Result<Value, String> {
        Ok(json!({
            "name": name,
            "source": self.source,
            "topics": self.topics,
            "exclude": self.exclude,
            "groups": self.groups,
            "source_config": pairs(&self.source_config)?,
        }))
    }
}

fn pairs(values: &[String]) -> Result<BTreeMap<String, String>, String> {
    values
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| format!("--source-config {kv:?} is not KEY=VALUE"))
        })
        .collect()
}

fn base_url(admin: &str) -> String {
    let a = admin.trim().trim_end_matches('/');
    if a.starts_with("http://") || a.starts_with("https://") {
        a.to_string()
    } else {
        format!("http://{a}")
    }
}

fn client(cli: &MirrorCli) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = &cli.cacert {
        for cert in
            CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?
        {
            roots
                .add(cert.map_err(|e| format!("{}: {e}", path.display()))?)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())
}

async fn call(
    cli: &MirrorCli,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let base = base_url(&cli.admin);
    let mut req = client(cli)?.request(method, format!("{base}{path}"));
    if let Some(user) = &cli.user {
        req = req.basic_auth(user, cli.password.as_deref());
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot reach the admin API at {base}: {}", root_cause(&e)))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    if status.is_success() {
        return Ok(value);
    }
    let reason = value
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| text.trim().to_string());
    Err(format!("{reason} (HTTP {})", status.as_u16()))
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

async fn run_verb(cli: &MirrorCli) -> Result<Value, String> {
    use reqwest::Method;
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let link = |name: &str, action: &str| format!("/v1/mirror/links/{}{action}", enc(name));
    let (method, path, body) = match &cli.verb {
        Verb::Create { name, link } => (
            Method::POST,
            "/v1/mirror/links".to_string(),
            Some(link.body(name)?),
        ),
        Verb::List => (Method::GET, "/v1/mirror/links".to_string(), None),
        Verb::Status { name } => (Method::GET, link(name, ""), None),
        Verb::Pause { name } => (Method::POST, link(name, "/pause"), None),
        Verb::Resume { name } => (Method::POST, link(name, "/resume"), None),
        Verb::Failover { name, topic } => (
            Method::POST,
            link(name, "/failover"),
            Some(json!({ "topic": topic })),
        ),
        Verb::Delete { name } => (Method::DELETE, link(name, ""), None),
        Verb::Reverse { name, link: args } => {
            (Method::POST, link(name, "/reverse"), Some(args.body(name)?))
        }
    };
    call(cli, method, &path, body).await
}

/// Runs one verb; the process's exit code.
pub(crate) fn run(cli: MirrorCli) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gateway mirror: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_verb(&cli)) {
        Ok(v) => {
            let text = if matches!(cli.verb, Verb::Status { .. } | Verb::List) {
                serde_json::to_string_pretty(&v)
            } else {
                serde_json::to_string(&v)
            };
            println!("{}", text.unwrap_or_default());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            let line = e.replace('\n', " ");
            eprintln!("gateway mirror: {line}");
            std::process::ExitCode::FAILURE
        }
    }
}

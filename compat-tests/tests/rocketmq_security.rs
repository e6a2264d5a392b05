//! RocketMQ security with `rocketmq-client-rust` (a real third-party client): requests signed
//! by its `AclClientRPCHook` against `plain_acl.yml` accounts (allowed sends and pulls, a wrong
//! secret, a missing access key, a PUB-only key that may not consume, a non-admin key that may
//! not create topics, mqadmin's ACL requests, the file re-read on change), a forged signature
//! on a raw socket, and TLS on the name-server and broker ports in enforcing and permissive
//! modes.

#![recursion_limit = "256"]
// The classic pull consumer returns a pull's error to the caller, which is what these
// refusal checks need.
#![allow(deprecated)]

mod rocketmq_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cheetah_string::CheetahString;
use rocketmq_client_rust::{
    AclClientRPCHook, AuthAdmin, ClientConfig, DefaultMQAdminExt, DefaultMQProducer,
    DefaultMQPullConsumer, SessionCredentials, TopicAdmin,
};
use rocketmq_common::{client_runtime, start, unique, within, Server};
use rocketmq_model::common::base::plain_access_config::PlainAccessConfig;
use rocketmq_model::common::config::TopicConfig;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendStatus;

const ADMIN: (&str, &str) = ("rocketmq-admin", "admin-secret-1");
const APP: (&str, &str) = ("orders-app", "orders-secret-1");
const PUB_ONLY: (&str, &str) = ("publisher", "publisher-secret");

fn acl_file(dir: &Path, orders: &str) -> String {
    let path = dir.join("plain_acl.yml");
    let text = format!(
        r#"globalWhiteRemoteAddresses:
accounts:
  - accessKey: {admin}
    secretKey: {admin_sk}
    admin: true
  - accessKey: {app}
    secretKey: {app_sk}
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - {orders}=PUB|SUB
  - accessKey: {pubonly}
    secretKey: {pubonly_sk}
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - {orders}=PUB
"#,
        admin = ADMIN.0,
        admin_sk = ADMIN.1,
        app = APP.0,
        app_sk = APP.1,
        pubonly = PUB_ONLY.0,
        pubonly_sk = PUB_ONLY.1,
    );
    std::fs::write(&path, text).expect("write plain_acl.yml");
    path.display().to_string()
}

/// How many requests the server refused with a remark containing `text` (its audit log: the
/// Rust client keeps broker remarks out of its errors).
fn refusals(srv: &Server, text: &str) -> usize {
    std::fs::read_to_string(&srv.log_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("RocketMQ request refused") && l.contains(text))
        .count()
}

/// Runs `fut`, which must fail, and checks the server refused it with `remark`.
async fn refused<T: std::fmt::Debug>(
    srv: &Server,
    remark: &str,
    fut: impl std::future::Future<Output = Result<T, String>>,
) {
    let before = refusals(srv, remark);
    let r = fut.await;
    assert!(r.is_err(), "expected a refusal ({remark}), got {r:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while refusals(srv, remark) <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not log a refusal with {remark:?}; client said {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An error with its sources: the client keeps the broker's remark in the source chain.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(" <- ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

fn hook(ak: &str, sk: &str) -> Arc<AclClientRPCHook> {
    Arc::new(AclClientRPCHook::new(SessionCredentials::with_keys(
        ak.to_string(),
        sk.to_string(),
    )))
}

fn config(namesrv: &str, tls: bool) -> ClientConfig {
    ClientConfig::builder()
        .namesrv_addr(namesrv.to_string())
        .client_ip("127.0.0.1")
        .instance_name(unique("inst"))
        .enable_tls(tls)
        .tls_client_auth_server(false)
        .tls_test_mode_enable(tls)
        .build()
        .expect("valid client config")
}

async fn producer(namesrv: &str, creds: Option<(&str, &str)>, tls: bool) -> DefaultMQProducer {
    let mut b = DefaultMQProducer::builder(client_runtime("producer"))
        .client_config(config(namesrv, tls))
        .producer_group(unique("pg"))
        .send_msg_timeout(5_000)
        .retry_times_when_send_failed(0);
    if let Some((ak, sk)) = creds {
        b = b.rpc_hook(hook(ak, sk));
    }
    let mut p = b.build();
    within("producer start", 30, p.start())
        .await
        .expect("producer start");
    p
}

async fn admin(namesrv: &str, creds: (&str, &str)) -> DefaultMQAdminExt {
    let mut a = DefaultMQAdminExt::with_rpc_hook(client_runtime("admin"), hook(creds.0, creds.1));
    *a.client_config_mut() = config(namesrv, false);
    a.set_namesrv_addr(namesrv.to_string());
    within("admin start", 30, a.start())
        .await
        .expect("admin start");
    a
}

async fn create_topic(srv: &Server, creds: (&str, &str), topic: &str) -> Result<(), String> {
    let mut a = admin(&srv.namesrv, creds).await;
    let r = within(
        "create topic",
        15,
        a.create_and_update_topic_config(
            srv.broker.as_str().into(),
            TopicConfig::with_queues(topic.to_string(), 1, 1),
        ),
    )
    .await
    .map_err(|e| chain(&e));
    a.shutdown().await;
    r
}

async fn send(p: &DefaultMQProducer, topic: &str, body: &str) -> Result<(), String> {
    let m = Message::builder()
        .topic(topic)
        .body_slice(body.as_bytes())
        .build_unchecked();
    match within("send", 15, p.send(m)).await {
        Ok(Some(r)) if r.send_status == SendStatus::SendOk => Ok(()),
        Ok(other) => Err(format!("{other:?}")),
        Err(e) => Err(format!(
            "{} (broker code {:?})",
            chain(&e),
            e.broker_response_code()
        )),
    }
}

async fn pull_all(
    namesrv: &str,
    creds: (&str, &str),
    topic: &str,
    group: &str,
) -> Result<Vec<String>, String> {
    let c = DefaultMQPullConsumer::builder(client_runtime("pull"))
        .consumer_group(group.to_string())
        .name_server_addr(namesrv.to_string())
        .rpc_hook(hook(creds.0, creds.1))
        .build()
        .map_err(|e| chain(&e))?;
    within("pull consumer start", 30, c.start())
        .await
        .map_err(|e| chain(&e))?;
    let mq = MessageQueue::from_parts(topic, "broker-1", 0);
    let r = within("pull", 20, c.pull(&mq, "*", 0, 32)).await;
    let _ = c.shutdown().await;
    let r = r.map_err(|e| chain(&e))?;
    Ok(r.msg_found_list()
        .map(|l| {
            l.iter()
                .map(|m| {
                    String::from_utf8_lossy(m.body().as_deref().unwrap_or_default()).into_owned()
                })
                .collect()
        })
        .unwrap_or_default())
}

#[test]
fn plain_acl_accounts_govern_sends_pulls_and_admin() {
    // The scenario's client calls nest deeply in a debug build: a test thread's 2 MiB stack
    // is not enough, so it runs on a thread (and runtime) with a larger one.
    let t = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(16 << 20)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(plain_acl_scenario())
        })
        .expect("thread");
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

async fn plain_acl_scenario() {
    let orders = unique("orders");
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = acl_file(tmp.path(), &orders);
    let (_guard, srv) = start(&[
        "rocketmq.acl.enable=true",
        &format!("rocketmq.acl.file={file}"),
        "auto.create.topics.enable=false",
        "rocketmq.auto.create.topic.enable=false",
    ]);

    // A non-admin key may not create topics; the admin may.
    refused(
        &srv,
        "Need admin permission for request code=17, but accessKey=orders-app is not",
        create_topic(&srv, APP, &orders),
    )
    .await;
    create_topic(&srv, ADMIN, &orders)
        .await
        .expect("admin creates the topic");

    // The app key sends and pulls its topic.
    let p = producer(&srv.namesrv, Some(APP), false).await;
    for i in 0..5 {
        send(&p, &orders, &format!("o-{i}"))
            .await
            .expect("allowed send");
    }
    let got = pull_all(&srv.namesrv, APP, &orders, &unique("g"))
        .await
        .expect("allowed pull");
    assert_eq!(got, (0..5).map(|i| format!("o-{i}")).collect::<Vec<_>>());

    // A wrong secret: the signature check fails with 4.9.4's words.
    let bad = producer(&srv.namesrv, Some((APP.0, "not-the-secret")), false).await;
    refused(
        &srv,
        "Check signature failed for accessKey=orders-app",
        send(&bad, &orders, "x"),
    )
    .await;

    // No AccessKey at all.
    let anon = producer(&srv.namesrv, None, false).await;
    refused(
        &srv,
        "No accessKey is configured",
        send(&anon, &orders, "x"),
    )
    .await;

    // A PUB-only key publishes but may not consume.
    let pubber = producer(&srv.namesrv, Some(PUB_ONLY), false).await;
    send(&pubber, &orders, "from-publisher")
        .await
        .expect("PUB allowed");
    refused(
        &srv,
        &format!("No default permission for topic:{orders}"),
        pull_all(&srv.namesrv, PUB_ONLY, &orders, &unique("g")),
    )
    .await;

    // Nothing was stored by the refused sends: the topic holds the six allowed messages.
    let got = pull_all(&srv.namesrv, APP, &orders, &unique("g"))
        .await
        .expect("pull");
    assert_eq!(got.len(), 6, "{got:?}");

    // mqadmin's updateAclConfig: a new account, usable at once.
    let a = admin(&srv.namesrv, ADMIN).await;
    let cfg = PlainAccessConfig {
        access_key: Some(CheetahString::from("late-comer")),
        secret_key: Some(CheetahString::from("late-secret")),
        default_topic_perm: Some(CheetahString::from("PUB")),
        ..Default::default()
    };
    within(
        "update acl",
        15,
        a.create_and_update_plain_access_config(srv.broker.as_str().into(), cfg),
    )
    .await
    .expect("updateAclConfig");
    let late = producer(&srv.namesrv, Some(("late-comer", "late-secret")), false).await;
    send(&late, &orders, "late")
        .await
        .expect("new account sends");
    // ... and deleteAclConfig removes it.
    within(
        "delete acl",
        15,
        a.delete_plain_access_config(srv.broker.as_str().into(), "late-comer".into()),
    )
    .await
    .expect("deleteAclConfig");
    refused(
        &srv,
        "No acl config for late-comer",
        send(&late, &orders, "late2"),
    )
    .await;
    let text = std::fs::read_to_string(&file).expect("acl file");
    assert!(!text.contains("late-comer"), "{text}");

    // The file is re-read when it changes: drop the app's topic permission.
    std::fs::write(
        &file,
        text.replace(&format!("{orders}=PUB|SUB"), &format!("{orders}=SUB")),
    )
    .expect("rewrite");
    let remark = format!("No default permission for topic:{orders}");
    let before = refusals(&srv, &remark);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = send(&p, &orders, "after-reload").await;
        if r.is_err() && refusals(&srv, &remark) > before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "file change not applied: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A raw SEND_MESSAGE_V2 with a made-up signature: refused, nothing stored, the server
/// serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signature_is_refused() {
    let topic = unique("forged");
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = acl_file(tmp.path(), &topic);
    let (_guard, srv) = start(&[
        "rocketmq.acl.enable=true",
        &format!("rocketmq.acl.file={file}"),
    ]);
    create_topic(&srv, ADMIN, &topic)
        .await
        .expect("admin creates the topic");
    let header = format!(
        r#"{{"code":310,"language":"JAVA","version":401,"opaque":7,"flag":0,"extFields":{{"a":"pg","b":"{topic}","c":"TBW102","d":"4","e":"0","f":"0","g":"1","h":"0","i":"","j":"0","k":"false","AccessKey":"{ak}","Signature":"AAAAAAAAAAAAAAAAAAAAAAAAAAA="}}}}"#,
        ak = APP.0
    );
    let body = b"forged body";
    let mut frame = Vec::new();
    frame.extend_from_slice(&((4 + header.len() + body.len()) as i32).to_be_bytes());
    frame.extend_from_slice(&(header.len() as i32).to_be_bytes());
    frame.extend_from_slice(header.as_bytes());
    frame.extend_from_slice(body);
    let mut s = TcpStream::connect(&srv.broker).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(&frame).expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("answer length");
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).expect("answer");
    let hlen = (i32::from_be_bytes([0, buf[1], buf[2], buf[3]])) as usize;
    let h: serde_json::Value = serde_json::from_slice(&buf[4..4 + hlen]).expect("json header");
    assert_eq!(h["code"], 1);
    assert_eq!(h["opaque"], 7);
    assert_eq!(
        h["remark"],
        "org.apache.rocketmq.acl.common.AclException: Check signature failed for accessKey=orders-app, org.apache.rocketmq.acl.plain.PlainPermissionManager.validate(PlainPermissionManager.java:683)"
    );
    // The refused send stored nothing: the queue holds only the signed send.
    let p = producer(&srv.namesrv, Some(APP), false).await;
    send(&p, &topic, "real").await.expect("signed send");
    let got = pull_all(&srv.namesrv, APP, &topic, &unique("g"))
        .await
        .expect("pull");
    assert_eq!(got, vec!["real".to_string()]);
}

fn write_certs(dir: &Path) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gateway");
    let cert = params.self_signed(&key).expect("cert");
    let path = dir.join("server.pem");
    std::fs::write(&path, format!("{}{}", key.serialize_pem(), cert.pem())).expect("write pem");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_enforcing_and_permissive_ports() {
    // The client builds its TLS configuration with rustls' process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pem = write_certs(tmp.path());
    let keystore = format!("ssl.keystore.location={pem}");

    // Enforcing: TLS clients work, plaintext ones get nothing.
    let (_g1, enforcing) = start(&["rocketmq.tls.server.mode=enforcing", &keystore]);
    let topic = unique("tls");
    let p = producer(&enforcing.namesrv, None, true).await;
    send(&p, &topic, "over-tls").await.expect("TLS send");
    let plain = producer(&enforcing.namesrv, None, false).await;
    assert!(send(&plain, &topic, "clear").await.is_err());

    // Permissive: both on the same ports.
    let (_g2, permissive) = start(&["rocketmq.tls.server.mode=permissive", &keystore]);
    let topic = unique("both");
    let tls = producer(&permissive.namesrv, None, true).await;
    send(&tls, &topic, "tls").await.expect("TLS send");
    let clear = producer(&permissive.namesrv, None, false).await;
    send(&clear, &topic, "clear").await.expect("plaintext send");
}

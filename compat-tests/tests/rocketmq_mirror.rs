//! Mirror links with RocketMQ applications (`rocketmq-client-rust`): a consumer group that
//! consumed on the source resumes on the target after the source is SIGKILLed and the link is
//! failed over, at exactly the offsets synced from the source; the group's `%RETRY%` topic
//! goes along; senders to a mirror topic get NO_PERMISSION until the failover.

#![recursion_limit = "256"]

mod rocketmq_common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use rocketmq_common::{
    consumer_builder, create_topic, gateway_bin, msg, producer, send_bodies, start, start_consumer,
    unique, within, Inbox,
};

const WAIT: Duration = Duration::from_secs(30);

/// `gateway mirror --admin http://ADMIN ARGS`: (exit code, stdout, stderr).
fn mirror(admin: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(gateway_bin())
        .arg("mirror")
        .arg("--admin")
        .arg(format!("http://{admin}"))
        .args(args)
        .output()
        .expect("gateway mirror runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mirror_ok(admin: &str, args: &[&str]) -> serde_json::Value {
    let (code, out, err) = mirror(admin, args);
    assert_eq!(code, 0, "gateway mirror {args:?}: {err}");
    serde_json::from_str(&out).expect("JSON on stdout")
}

/// Mirrored end offset per (topic, partition), once every partition has caught up.
fn caught_up(admin: &str, link: &str) -> Option<BTreeMap<(String, i64), i64>> {
    let st = mirror_ok(admin, &["status", link]);
    let parts = st["partitions"].as_array()?;
    let mut out = BTreeMap::new();
    for p in parts {
        if p["lag"] != 0 || p["source_end"] != p["target_end"] {
            return None;
        }
        out.insert(
            (p["topic"].as_str()?.to_string(), p["partition"].as_i64()?),
            p["target_end"].as_i64()?,
        );
    }
    Some(out)
}

/// Committed offsets of `group` on `topic`'s partitions `0..n`, read with rdkafka.
fn committed(bootstrap: &str, group: &str, topic: &str, n: i32) -> Vec<i64> {
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("rdkafka consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("OffsetFetch");
    (0..n)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

fn topics_of(bootstrap: &str) -> Vec<String> {
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("rdkafka consumer");
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("Metadata");
    md.topics().iter().map(|t| t.name().to_string()).collect()
}

fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_group_resumes_on_the_target_after_source_kill_and_failover() {
    let (_da, mut a) = start(&[]);
    let (_db, b) = start(&["mirror.offset.sync.interval.ms=300"]);
    let topic = unique("rmq_mirror");
    let group = unique("cg");
    create_topic(&a.namesrv, &a.broker, &topic, 4).await;

    // The group consumes the first 12 messages on the source, then stops (offsets persisted).
    let mut p = producer(&a.namesrv).await;
    let first: Vec<String> = (0..12).map(|i| format!("first-{i}")).collect();
    send_bodies(&p, &topic, &first).await;
    let in1 = Inbox::new();
    let mut c1 = start_consumer(
        consumer_builder(&a.namesrv, &group),
        &topic,
        "*",
        &in1,
        "c1",
    )
    .await;
    in1.wait_len("the first 12", 12, WAIT).await;
    c1.shutdown().await;
    let on_source = committed(&a.kafka, &group, &topic, 4);
    assert_eq!(on_source.iter().sum::<i64>(), 12, "{on_source:?}");
    // Sent after: these are what the group has not consumed yet.
    let second: Vec<String> = (0..8).map(|i| format!("second-{i}")).collect();
    send_bodies(&p, &topic, &second).await;
    p.shutdown().await;

    let retry = format!("%RETRY%{group}");
    assert!(topics_of(&a.kafka).contains(&retry));
    mirror_ok(
        &b.admin,
        &[
            "create", "dr", "--source", &a.kafka, "--topics", &topic, "--groups", &group,
        ],
    );
    let ends = wait("the link to catch up", || {
        caught_up(&b.admin, "dr").filter(|m| {
            (0..4)
                .map(|q| m.get(&(topic.clone(), q)).copied().unwrap_or(0))
                .sum::<i64>()
                == 20
        })
    });
    // The group's retry topic came with it.
    assert!(ends.keys().any(|(t, _)| *t == retry), "{ends:?}");
    wait("the group's offsets synced", || {
        (committed(&b.kafka, &group, &topic, 4) == on_source).then_some(())
    });

    // A RocketMQ sender on the target is refused: the topic is a mirror.
    let mut pb = producer(&b.namesrv).await;
    let refused = within(
        "send to mirror",
        15,
        pb.send_with_timeout(msg(&topic, "T", &[], "refused"), 5_000),
    )
    .await;
    match refused {
        Err(e) => assert_eq!(e.broker_response_code(), Some(16), "{e}"),
        Ok(r) => panic!("a send to a mirror topic was accepted: {r:?}"),
    }

    a.kill9();
    let out = mirror_ok(&b.admin, &["failover", "dr"]);
    assert_eq!(out["state"], "FAILED_OVER");

    // The group resumes on the target with exactly what it had not consumed.
    let in2 = Inbox::new();
    let mut c2 = start_consumer(
        consumer_builder(&b.namesrv, &group),
        &topic,
        "*",
        &in2,
        "c2",
    )
    .await;
    in2.wait_len("the 8 not yet consumed", 8, WAIT).await;
    // Sends flow on the promoted target; the group gets them next.
    let after: Vec<String> = (0..4).map(|i| format!("after-{i}")).collect();
    send_bodies(&pb, &topic, &after).await;
    in2.wait_len("the 4 sent after the failover", 12, WAIT)
        .await;
    let mut got = in2.bodies();
    c2.shutdown().await;
    pb.shutdown().await;
    got.sort();
    let mut expected: Vec<String> = second.iter().chain(after.iter()).cloned().collect();
    expected.sort();
    assert_eq!(
        got, expected,
        "resumed at the synced offsets: nothing re-read, nothing lost"
    );
}

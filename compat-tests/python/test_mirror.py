"""Mirror links between two real servers, driven through `gateway mirror` (the CLI of the
admin API) and checked with real clients: librdkafka (confluent-kafka) and kafka-python
produce on the source; the target holds the same batches at the same offsets; filters,
new topics and partition increases are followed; writes to mirror topics are refused;
consumer groups resume after a SIGKILL of the source and a failover at exactly their
synced offsets; failback truncates the old source's unmirrored tail and mirrors back."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Dict, List, Optional, Sequence, Tuple

import pytest
from confluent_kafka import KafkaError, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, NewPartitions

import kafka_wire as kw
from conftest import gateway_binary
from helpers import (
    Msg,
    admin_client,
    assert_all_delivered,
    confluent_consumer,
    consume_confluent,
    create_topic,
    kp_admin,
    kp_produce,
    produce_confluent,
    sample_messages,
    unique,
    wait_topic_ready,
    wait_until,
)
from security_util import make_pki, scram_args, tls_sets

# Offsets are synced every 300 ms in these tests (the default is 5 s).
TARGET_SETS = {"mirror.offset.sync.interval.ms": "300"}
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def mirror(srv, *args: str, check: bool = True, extra: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """`gateway mirror --admin <srv> ARGS`; with `check`, a zero exit is required."""
    cmd = [str(gateway_binary()), "mirror", "--admin", srv.admin_url, *extra, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr}"
    return proc


def status(srv, link: str) -> dict:
    return json.loads(mirror(srv, "status", link).stdout)


def wait_caught_up(srv, link: str, expected: Dict[Tuple[str, int], int], timeout: float = 30.0) -> dict:
    """Waits until the link reports exactly the partitions in `expected` (topic, partition)
    -> end offset, each with target_end == source_end == that offset and lag 0."""

    def check():
        st = status(srv, link)
        got = {(p["topic"], p["partition"]): p for p in st["partitions"]}
        if set(got) != set(expected):
            return False
        ok = all(
            got[k]["source_end"] == end and got[k]["target_end"] == end and got[k]["lag"] == 0
            for k, end in expected.items()
        )
        return st if ok else False

    return wait_until(check, f"link {link} caught up at {expected}", timeout)


def raw_fetch(bootstrap: str, topic: str, partition: int, offset: int = 0) -> Tuple[int, int, bytes]:
    """Fetch v4 of one partition: (error, high watermark, record bytes as stored)."""
    host, port = bootstrap.rsplit(":", 1)
    sock = kw.connect(host, int(port))
    try:
        body = kw.roundtrip(sock, kw.fetch_v4_request(7, topic, partition, offset, 100), 7)
    finally:
        sock.close()
    (_, _, err, hw, records), = kw.parse_fetch_v4(body)
    return err, hw, records


def records_of(bootstrap: str, topic: str, ends: Dict[int, int]) -> List[tuple]:
    recs = consume_confluent(bootstrap, topic, ends)
    return sorted((r.partition, r.offset, r.key, r.value, r.headers, r.timestamp, r.ts_type) for r in recs)


def committed(bootstrap: str, group: str) -> Dict[Tuple[str, int], int]:
    admin = kp_admin(bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
        return {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()}
    finally:
        admin.close()


def commit(bootstrap: str, group: str, offsets: Dict[Tuple[str, int], int]) -> None:
    c = confluent_consumer(bootstrap, **{"group.id": group})
    try:
        c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def test_link_copies_batches_unchanged_and_follows_filters_new_topics_and_partitions(server_factory):
    src = server_factory(name="src")
    dst = server_factory(name="dst", sets=TARGET_SETS)
    u = unique("m")
    orders, excluded, other, literal = f"orders-{u}", f"orders-tmp-{u}", f"other-{u}", f"lit-{u}"
    create_topic(src.bootstrap, orders, 3, {"retention.ms": "123456789", "max.message.bytes": "500000"})
    for t in (excluded, other, literal):
        create_topic(src.bootstrap, t, 1)
    base = int(time.time() * 1000) - 60_000
    # librdkafka: idempotent (producer ids and sequences in the batches), zstd, headers.
    d1 = produce_confluent(src.bootstrap, orders, sample_messages(3, 20, base),
                           {"enable.idempotence": True, "compression.type": "zstd", "linger.ms": 20})
    # kafka-python: gzip batches of its own.
    d2 = kp_produce(src.bootstrap, orders, sample_messages(3, 10, base + 5000), compression_type="gzip")
    assert_all_delivered(d1)
    assert all(d.error is None for d in d2), [d.error for d in d2 if d.error]
    produce_confluent(src.bootstrap, literal, [Msg(0, b"k", b"literal")])
    produce_confluent(src.bootstrap, excluded, [Msg(0, b"k", b"tmp")])
    produce_confluent(src.bootstrap, other, [Msg(0, b"k", b"other")])

    out = mirror(dst, "create", "dr", "--source", src.bootstrap, "--topics", "orders-.*",
                 "--topics", literal, "--exclude", "orders-tmp-.*")
    assert json.loads(out.stdout)["state"] == "ACTIVE"
    expected = {(orders, p): 30 for p in range(3)}
    expected[(literal, 0)] = 1
    st = wait_caught_up(dst, "dr", expected)
    assert st["state"] == "ACTIVE" and st["name"] == "dr"
    assert all(p["state"] == "ACTIVE" for p in st["partitions"])

    # The same batches, byte for byte (offsets, timestamps, producer ids, compression, CRCs).
    for p in range(3):
        s_err, s_hw, s_bytes = raw_fetch(src.bootstrap, orders, p)
        d_err, d_hw, d_bytes = raw_fetch(dst.bootstrap, orders, p)
        assert (s_err, s_hw) == (d_err, d_hw) == (0, 30)
        assert len(s_bytes) > 0 and d_bytes == s_bytes, f"partition {p}: batches differ"
    ends = {p: 30 for p in range(3)}
    assert records_of(dst.bootstrap, orders, ends) == records_of(src.bootstrap, orders, ends)

    # Topic configs set on the source came along; filters kept the others out.
    res = ConfigResource(ConfigResource.Type.TOPIC, orders)
    dst_admin = admin_client(dst.bootstrap)
    cfg = dst_admin.describe_configs([res])[res].result(timeout=10)
    assert cfg["retention.ms"].value == "123456789"
    assert cfg["max.message.bytes"].value == "500000"
    md = dst_admin.list_topics(timeout=10)
    assert excluded not in md.topics and other not in md.topics

    # Writes to a mirror topic are refused with POLICY_VIOLATION.
    refused = produce_confluent(dst.bootstrap, orders, [Msg(0, b"k", b"not allowed")],
                                {"message.timeout.ms": 5000, "retries": 0})
    assert refused[0].error is not None and refused[0].error.code() == KafkaError.POLICY_VIOLATION

    # A new matching topic and a partition increase are followed.
    late = f"orders-late-{u}"
    create_topic(src.bootstrap, late, 2)
    produce_confluent(src.bootstrap, late, [Msg(1, b"late", b"late-1")])
    src_admin = admin_client(src.bootstrap)
    src_admin.create_partitions([NewPartitions(orders, 5)])[orders].result(timeout=10)
    wait_topic_ready(src.bootstrap, orders, 5)
    produce_confluent(src.bootstrap, orders, [Msg(4, b"p4", b"in-partition-4")])
    expected.update({(orders, 3): 0, (orders, 4): 1, (late, 0): 0, (late, 1): 1})
    wait_caught_up(dst, "dr", expected)
    wait_topic_ready(dst.bootstrap, orders, 5)
    got = consume_confluent(dst.bootstrap, orders, {4: 1})
    assert [(r.offset, r.key, r.value) for r in got] == [(0, b"p4", b"in-partition-4")]
    got = consume_confluent(dst.bootstrap, late, {0: 0, 1: 1})
    assert [(r.partition, r.offset, r.value) for r in got] == [(1, 0, b"late-1")]

    # Link list shows the definition.
    links = json.loads(mirror(dst, "list").stdout)
    assert [(x["name"], x["source"], x["topics"], x["exclude"]) for x in links] == [
        ("dr", src.bootstrap, ["orders-.*", literal], ["orders-tmp-.*"])
    ]


def test_source_retention_gap_restarts_at_source_log_start(server_factory):
    src = server_factory(name="src")
    dst = server_factory(name="dst", sets=TARGET_SETS)
    t = unique("ret")
    create_topic(src.bootstrap, t, 1)
    assert_all_delivered(produce_confluent(src.bootstrap, t, [Msg(0, b"k", f"v{i}".encode()) for i in range(10)]))
    # Records the mirror never read are deleted at the source before the link starts.
    src_admin = admin_client(src.bootstrap)
    for fut in src_admin.delete_records([TopicPartition(t, 0, 6)]).values():
        fut.result(timeout=10)
    mirror(dst, "create", "ret", "--source", src.bootstrap, "--topics", t)
    wait_caught_up(dst, "ret", {(t, 0): 10})
    got = consume_confluent(dst.bootstrap, t, {0: 10})
    assert [(r.offset, r.value) for r in got] == [(i, f"v{i}".encode()) for i in range(6, 10)]
    c = confluent_consumer(dst.bootstrap)
    try:
        low, high = c.get_watermark_offsets(TopicPartition(t, 0), timeout=10, cached=False)
    finally:
        c.close()
    assert (low, high) == (6, 10)


def test_failover_after_source_kill_groups_resume_at_synced_offsets(server_factory):
    src = server_factory(name="src")
    dst = server_factory(name="dst", sets=TARGET_SETS)
    t = unique("fo")
    create_topic(src.bootstrap, t, 2)
    msgs = [Msg(p, f"k{p}-{i}".encode(), f"v{p}-{i}".encode()) for i in range(50) for p in range(2)]
    assert_all_delivered(produce_confluent(src.bootstrap, t, msgs))
    # Two groups committed on the source: a librdkafka one and a kafka-python one.
    g1, g2 = unique("g1"), unique("g2")
    commit(src.bootstrap, g1, {(t, 0): 37, (t, 1): 12})
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    kc = KafkaConsumer(bootstrap_servers=src.bootstrap, group_id=g2, enable_auto_commit=False)
    kc.commit({KTP(t, 0): OffsetAndMetadata(21, "", -1)})
    kc.close()

    mirror(dst, "create", "dr", "--source", src.bootstrap, "--topics", t)
    wait_caught_up(dst, "dr", {(t, 0): 50, (t, 1): 50})
    wait_until(lambda: committed(dst.bootstrap, g1) == {(t, 0): 37, (t, 1): 12}, "g1 synced")
    wait_until(lambda: committed(dst.bootstrap, g2) == {(t, 0): 21}, "g2 synced")

    src.kill()
    killed = time.monotonic()
    out = mirror(dst, "failover", "dr")
    assert json.loads(out.stdout)["state"] == "FAILED_OVER"
    # Producers continue at the next offset.
    d = produce_confluent(dst.bootstrap, t, [Msg(0, b"after", b"after-failover")])
    assert_all_delivered(d)
    accepted = time.monotonic() - killed
    assert (d[0].partition, d[0].offset) == (0, 50)
    print(f"failover: source SIGKILL -> first write accepted on the target in {accepted:.3f}s")
    st = status(dst, "dr")
    assert st["state"] == "FAILED_OVER"
    assert {p["state"] for p in st["partitions"]} == {"FAILED_OVER"}

    # The librdkafka group resumes at exactly 37 and 12.
    c = confluent_consumer(dst.bootstrap, **{"group.id": g1})
    c.subscribe([t])
    seen: Dict[int, List[int]] = {0: [], 1: []}
    deadline = time.monotonic() + 60
    while len(seen[0]) < 14 or len(seen[1]) < 38:
        assert time.monotonic() < deadline, f"group {g1} read {seen}"
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        seen[m.partition()].append(m.offset())
    c.close()
    assert seen[0] == list(range(37, 51)) and seen[1] == list(range(12, 50))

    # The kafka-python group resumes at exactly 21.
    kc = KafkaConsumer(bootstrap_servers=dst.bootstrap, group_id=g2, enable_auto_commit=False,
                       auto_offset_reset="earliest")
    kc.assign([KTP(t, 0)])
    first = None
    deadline = time.monotonic() + 30
    while first is None:
        assert time.monotonic() < deadline, "kafka-python group read nothing"
        for _tp, recs in kc.poll(timeout_ms=200).items():
            first = first or recs[0]
    kc.close()
    assert (first.offset, first.value) == (21, b"v0-21")


def test_failback_truncates_unmirrored_tail_and_mirrors_back(server_factory):
    a = server_factory(name="a")
    b = server_factory(name="b", sets=TARGET_SETS)
    t = unique("fb")
    create_topic(a.bootstrap, t, 1)
    assert_all_delivered(produce_confluent(a.bootstrap, t, [Msg(0, b"a", f"a{i}".encode()) for i in range(20)]))
    mirror(b, "create", "dr", "--source", a.bootstrap, "--topics", t)
    wait_caught_up(b, "dr", {(t, 0): 20})
    assert json.loads(mirror(b, "pause", "dr").stdout)["state"] == "PAUSED"
    # Written on A after the last mirrored record: the tail a failover loses.
    assert_all_delivered(produce_confluent(a.bootstrap, t, [Msg(0, b"lost", f"lost{i}".encode()) for i in range(3)]))
    a.kill()
    mirror(b, "failover", "dr")
    d = produce_confluent(b.bootstrap, t, [Msg(0, b"b", f"b{i}".encode()) for i in range(2)])
    assert [x.offset for x in d] == [20, 21]
    a.start()

    # A plain create refuses to adopt A's existing topic.
    refused = mirror(a, "create", "back", "--source", b.bootstrap, "--topics", t, check=False)
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1 and "already exists here and is not a mirror topic" in refused.stderr
    # reverse cuts A back to where the two diverged (offset 20) and mirrors B's records.
    rev = json.loads(mirror(a, "reverse", "dr", "--source", b.bootstrap).stdout)
    # Without --topics, the topics both sides have, as literal (escaped) names.
    assert rev["state"] == "ACTIVE" and rev["topics"] == [t.replace("-", "\\-")]
    wait_caught_up(a, "dr", {(t, 0): 22})
    got = consume_confluent(a.bootstrap, t, {0: 22})
    assert [(r.offset, r.value) for r in got] == (
        [(i, f"a{i}".encode()) for i in range(20)] + [(20, b"b0"), (21, b"b1")]
    )
    # A's copy is now a mirror: writes there are refused.
    refused = produce_confluent(a.bootstrap, t, [Msg(0, b"x", b"x")], {"message.timeout.ms": 5000, "retries": 0})
    assert refused[0].error is not None and refused[0].error.code() == KafkaError.POLICY_VIOLATION


def test_links_survive_restart_pause_resume_delete_and_cli_errors(server_factory):
    src = server_factory(name="src")
    dst = server_factory(name="dst", sets=TARGET_SETS)
    t = unique("life")
    create_topic(src.bootstrap, t, 1)
    produce_confluent(src.bootstrap, t, [Msg(0, b"k", b"one")])
    mirror(dst, "create", "life", "--source", src.bootstrap, "--topics", t)
    wait_caught_up(dst, "life", {(t, 0): 1})

    # Errors: one line on stderr, non-zero exit.
    for args, text in [
        (("status", "nope"), "mirror link nope does not exist"),
        (("create", "life", "--source", src.bootstrap), "mirror link life already exists"),
        (("create", "bad", "--source", src.bootstrap, "--topics", "("), "invalid regex"),
        (("pause", "nope"), "does not exist"),
    ]:
        p = mirror(dst, *args, check=False)
        assert p.returncode != 0 and p.stdout == "", (args, p)
        assert p.stderr.count("\n") == 1 and text in p.stderr, (args, p.stderr)
    p = subprocess.run([str(gateway_binary()), "mirror", "--admin", "http://127.0.0.1:1", "list"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and p.stderr.startswith("gateway mirror: cannot reach the admin API")

    # Paused: nothing more is fetched until resumed.
    assert json.loads(mirror(dst, "pause", "life").stdout)["state"] == "PAUSED"
    produce_confluent(src.bootstrap, t, [Msg(0, b"k", b"two")])
    # Two fetch cycles (500 ms long polls) would have brought it in were the link running.
    time.sleep(1.5)
    assert consume_confluent(dst.bootstrap, t, {0: 1}) and status(dst, "life")["state"] == "PAUSED"
    c = confluent_consumer(dst.bootstrap)
    assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=10, cached=False) == (0, 1)
    c.close()

    # The definition (paused) survives a restart; resumed, it catches up.
    dst.kill()
    dst.start()
    assert status(dst, "life")["state"] == "PAUSED"
    mirror(dst, "resume", "life")
    wait_caught_up(dst, "life", {(t, 0): 2})
    dst.restart()
    produce_confluent(src.bootstrap, t, [Msg(0, b"k", b"three")])
    wait_caught_up(dst, "life", {(t, 0): 3})

    # Delete: the topic stays, with its records, and becomes writable.
    assert mirror(dst, "delete", "life").returncode == 0
    assert json.loads(mirror(dst, "list").stdout) == []
    d = produce_confluent(dst.bootstrap, t, [Msg(0, b"k", b"local")])
    assert_all_delivered(d)
    assert d[0].offset == 3


def test_source_over_sasl_ssl_and_admin_api_with_authorizer(server_factory, tmp_path):
    pki = make_pki(tmp_path / "pki")
    users = {"admin": "admin-secret", "mirror": "mirror-secret", "bob": "bob-secret"}
    src = server_factory(name="src", sets={"listeners": "SASL_SSL://127.0.0.1:0", **tls_sets(pki)},
                         args=scram_args(users))
    dst = server_factory(name="dst", sets={**TARGET_SETS, "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
                                           "authorizer.class.name": AUTHORIZER, "super.users": "User:admin"},
                         args=scram_args(users))
    dst_sasl = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "admin", "sasl.password": "admin-secret"}
    sasl_ssl = {"security.protocol": "SASL_SSL", "ssl.ca.location": str(pki.ca_pem),
                "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin", "sasl.password": "admin-secret"}
    src_addr = src.listener("SASL_SSL")
    t = unique("sec")
    admin = admin_client(src_addr, **sasl_ssl)
    from confluent_kafka.admin import NewTopic

    admin.create_topics([NewTopic(t, 1, 1)])[t].result(timeout=10)
    assert_all_delivered(produce_confluent(src_addr, t, [Msg(0, b"k", f"s{i}".encode()) for i in range(5)], sasl_ssl))

    create = ("create", "sec", "--source", src_addr, "--topics", t,
              "--source-config", "security.protocol=SASL_SSL",
              "--source-config", f"ssl.truststore.location={pki.ca_pem}",
              "--source-config", "sasl.mechanism=SCRAM-SHA-512",
              "--source-config", "sasl.username=mirror",
              "--source-config", "sasl.password=mirror-secret")
    # No credentials, wrong password, a user without ALTER on the cluster: refused.
    p = mirror(dst, *create, check=False)
    assert p.returncode != 0 and "authentication required" in p.stderr and "(HTTP 401)" in p.stderr
    p = mirror(dst, *create, check=False, extra=("--user", "admin", "--password", "wrong"))
    assert p.returncode != 0 and "(HTTP 401)" in p.stderr
    p = mirror(dst, *create, check=False, extra=("--user", "bob", "--password", "bob-secret"))
    assert p.returncode != 0 and "(HTTP 403)" in p.stderr and "User:bob" in p.stderr
    as_admin = ("--user", "admin", "--password", "admin-secret")
    mirror(dst, *create, extra=as_admin)

    def caught_up():
        st = json.loads(mirror(dst, "status", "sec", extra=as_admin).stdout)
        return [(p["topic"], p["target_end"], p["lag"]) for p in st["partitions"]] == [(t, 5, 0)]

    wait_until(caught_up, "link over SASL_SSL caught up")
    got = consume_confluent(dst.listener("SASL_PLAINTEXT"), t, {0: 5}, conf=dst_sasl)
    assert [r.value for r in got] == [f"s{i}".encode() for i in range(5)]
    # The password is not shown back.
    links = mirror(dst, "list", extra=as_admin).stdout
    assert "mirror-secret" not in links
    assert "mirror-secret" not in "".join(path.read_text(errors="replace") for path in dst.log_paths)


def test_link_into_a_three_node_cluster_survives_leader_kill_and_source_restart(server_factory, tmp_path):
    """Each mirror partition is pulled by its leader in the target cluster and replicated by
    its followers; killing that leader and restarting the source interrupt nothing but the
    lag; the failed-over topic takes writes at the next offsets."""
    from test_cluster import Cluster, read_all

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # A fixed port: the link's bootstrap stays valid across the source's restart.
    src = server_factory(name="src", sets={"listeners": f"PLAINTEXT://127.0.0.1:{port}"})
    dst = Cluster(tmp_path / "cluster", 3, ["mirror.offset.sync.interval.ms=300"])
    try:
        t = unique("cl")
        create_topic(src.bootstrap, t, 2)
        first = [Msg(p, None, f"a{p}-{i}".encode()) for i in range(100) for p in range(2)]
        assert_all_delivered(produce_confluent(src.bootstrap, t, first, {"compression.type": "lz4"}))
        node1 = type("Admin", (), {"admin_url": "http://" + dict(
            f.split("=", 1) for f in (dst.root / "node-1.ports").read_text().split())["admin"]})()
        mirror(node1, "create", "dr", "--source", src.bootstrap, "--topics", t)

        def same(bootstrap: str, ends: Dict[int, int]):
            for p, end in ends.items():
                want = read_all(src.bootstrap, t, p, end)
                assert len(want) == end
                got = read_all(bootstrap, t, p, end)
                if got != want:
                    return False
            return True

        # Any node's status covers every partition.
        wait_caught_up(node1, "dr", {(t, 0): 100, (t, 1): 100}, timeout=60)
        wait_until(lambda: same(dst.bootstrap, {0: 100, 1: 100}), "cluster holds the source's records", 60)

        # SIGKILL the target leader of partition 0; the new leader goes on pulling.
        leader = dst.partition(t, 0).leader
        dst.kill(leader)
        more = [Msg(p, None, f"b{p}-{i}".encode()) for i in range(50) for p in range(2)]
        assert_all_delivered(produce_confluent(src.bootstrap, t, more))
        others = dst.other_bootstrap(leader)
        wait_until(lambda: same(others, {0: 150, 1: 150}), "mirroring goes on after the leader's SIGKILL", 60)
        dst.restart(leader)

        # The source restarts: the link retries with back-off and resumes at the target's end.
        src.stop()
        src.start()
        assert src.bootstrap == f"127.0.0.1:{port}"
        assert_all_delivered(produce_confluent(src.bootstrap, t, [Msg(0, None, b"after-restart")]))
        wait_until(lambda: same(dst.bootstrap, {0: 151, 1: 150}), "mirroring resumes after the source restarts", 60)

        # Failover: writes continue at the next offset.
        assert json.loads(mirror(node1, "failover", "dr").stdout)["state"] == "FAILED_OVER"
        p = Producer({"bootstrap.servers": dst.bootstrap, "acks": "all"})
        got = []
        p.produce(t, value=b"on-target", partition=1, on_delivery=lambda e, m: got.append((e, m.offset())))
        assert p.flush(30) == 0
        assert got == [(None, 150)]
    finally:
        dst.down()


def test_admin_api_over_https(server_factory, tmp_path):
    pki = make_pki(tmp_path / "pki")
    srv = server_factory(sets={"admin.ssl.enable": "true", **tls_sets(pki)})
    url = f"https://{srv.addrs['admin']}"
    gw = str(gateway_binary())
    ok = subprocess.run([gw, "mirror", "--admin", url, "--cacert", str(pki.ca_pem), "list"],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == []
    # Without the CA the server's certificate is not trusted; plain HTTP gets no answer.
    untrusted = subprocess.run([gw, "mirror", "--admin", url, "list"], capture_output=True, text=True, timeout=30)
    assert untrusted.returncode != 0 and untrusted.stderr.count("\n") == 1
    plain = subprocess.run([gw, "mirror", "--admin", url.replace("https", "http"), "list"],
                           capture_output=True, text=True, timeout=30)
    assert plain.returncode != 0


def tansu_binary() -> Optional[str]:
    import os
    import shutil

    return os.environ.get("TANSU_BIN") or shutil.which("tansu")


@pytest.mark.skipif(tansu_binary() is None, reason="Tansu is not installed (scripts/test installs it into .tools)")
def test_link_from_tansu_memory_engine(server_factory, tmp_path):
    """A source that is not this server: Tansu with its memory engine. Records produced there by
    librdkafka appear here at the same offsets with the same keys, values, headers and
    timestamps."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp_path / "tansu.log", "wb")
    tansu = subprocess.Popen(
        [tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    try:
        src = f"127.0.0.1:{port}"

        def listening():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, "Tansu listening")
        dst = server_factory(name="dst", sets=TARGET_SETS)
        t = unique("tansu")
        create_topic(src, t, 2)
        base = int(time.time() * 1000) - 10_000
        msgs = sample_messages(2, 15, base)
        assert_all_delivered(produce_confluent(src, t, msgs))
        mirror(dst, "create", "tansu", "--source", src, "--topics", t)
        wait_caught_up(dst, "tansu", {(t, 0): 15, (t, 1): 15})
        ends = {0: 15, 1: 15}
        assert records_of(dst.bootstrap, t, ends) == records_of(src, t, ends)
    finally:
        tansu.kill()
        tansu.wait(timeout=10)
        log.close()


def test_link_between_two_three_node_clusters_through_kills_on_both_sides(tmp_path):
    """Source and target are both 3-node clusters: the link follows the source's leaders, and
    SIGKILLs of a target leader and of a source leader interrupt nothing but the lag."""
    from test_cluster import Cluster, create, read_all

    src = Cluster(tmp_path / "src", 3, [])
    dst = Cluster(tmp_path / "dst", 3, ["mirror.offset.sync.interval.ms=300"])
    try:
        t = unique("cc")
        create(src, t, 2, 3, {"min.insync.replicas": "2"})
        acks_all = {"acks": "all", "enable.idempotence": True}
        first = [Msg(p, None, f"a{p}-{i}".encode()) for i in range(100) for p in range(2)]
        assert_all_delivered(produce_confluent(src.bootstrap, t, first, acks_all))
        node1 = type("Admin", (), {"admin_url": "http://" + dict(
            f.split("=", 1) for f in (dst.root / "node-1.ports").read_text().split())["admin"]})()
        mirror(node1, "create", "dr", "--source", src.bootstrap, "--topics", t)

        def same(src_bootstrap: str, dst_bootstrap: str, ends: Dict[int, int]) -> bool:
            for p, end in ends.items():
                want = read_all(src_bootstrap, t, p, end)
                assert len(want) == end
                if read_all(dst_bootstrap, t, p, end) != want:
                    return False
            return True

        wait_caught_up(node1, "dr", {(t, 0): 100, (t, 1): 100}, timeout=60)
        assert same(src.bootstrap, dst.bootstrap, {0: 100, 1: 100})

        # A target leader dies.
        victim = dst.partition(t, 0).leader
        dst.kill(victim)
        more = [Msg(p, None, f"b{p}-{i}".encode()) for i in range(50) for p in range(2)]
        assert_all_delivered(produce_confluent(src.bootstrap, t, more, acks_all))
        wait_until(lambda: same(src.bootstrap, dst.other_bootstrap(victim), {0: 150, 1: 150}),
                   "mirroring goes on after a target leader's SIGKILL", 60)
        dst.restart(victim)

        # A source leader dies: the link finds the new one.
        source_victim = src.partition(t, 1).leader
        src.kill(source_victim)
        live_src = src.other_bootstrap(source_victim)
        last = [Msg(p, None, f"c{p}-{i}".encode()) for i in range(50) for p in range(2)]
        assert_all_delivered(produce_confluent(live_src, t, last, {**acks_all, "message.timeout.ms": 60000}))
        wait_until(lambda: same(live_src, dst.bootstrap, {0: 200, 1: 200}),
                   "mirroring goes on after a source leader's SIGKILL", 90)
    finally:
        dst.down()
        src.down()

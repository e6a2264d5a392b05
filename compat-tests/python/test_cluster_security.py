"""A secured 3-node cluster (`scripts/cluster up 3 DIR --secure`): clients on SASL_SSL,
replication on a mutual-TLS listener, the controller port on mutual TLS. A process without
the cluster's certificate can neither join nor fetch partition data as a replica."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import gateway_binary
from helpers import consume_confluent, unique, wait_until
from security_util import make_pki

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "cluster"


@pytest.fixture
def secure_cluster(tmp_path):
    root = tmp_path / "cluster"
    env = dict(os.environ, GATEWAY_BIN=str(gateway_binary()))
    subprocess.run([str(SCRIPT), "up", "3", str(root), "--secure"], check=True, env=env, timeout=180)
    yield root
    subprocess.run([str(SCRIPT), "down", str(root)], check=False, timeout=60)
    logs = Path(os.environ.get("TEST_LOG_DIR", REPO_ROOT / "target" / "test-logs")) / "cluster-secure"
    logs.mkdir(parents=True, exist_ok=True)
    for i in range(1, 4):
        src = root / f"node-{i}.log"
        if src.exists():
            (logs / f"node-{i}.log").write_bytes(src.read_bytes())


def ports(root: Path, node: int) -> dict:
    return dict(f.split("=", 1) for f in (root / f"node-{node}.ports").read_text().split())


def client_conf(root: Path) -> dict:
    return {"bootstrap.servers": (root / "bootstrap").read_text().strip(), "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(root / "pki" / "ca.pem"), "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "admin", "sasl.password": "admin-secret"}


def logs_contain(root: Path, text: str) -> bool:
    return any(text in (root / f"node-{i}.log").read_text(errors="replace") for i in range(1, 4))


def live_nodes(root: Path, node: int = 1) -> int:
    import urllib.request

    body = urllib.request.urlopen(f"http://{ports(root, node)['metrics']}/metrics", timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith("cluster_live_nodes "):
            return int(float(line.split()[1]))
    return -1


def test_secured_cluster_replicates_and_keeps_intruders_out(secure_cluster, tmp_path):
    root = secure_cluster
    conf = client_conf(root)
    admin = AdminClient(conf)
    topic = unique("secure")
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)])[topic].result(timeout=30)

    # Replication over the mutual-TLS INTERNAL listener: every replica joins the ISR and
    # acks=all produces succeed.
    def full_isr():
        md = admin.list_topics(topic, timeout=10).topics[topic]
        return len(md.partitions) == 3 and all(sorted(p.isrs) == [1, 2, 3] for p in md.partitions.values())

    wait_until(full_isr, "every replica in sync over mutual TLS", timeout=60)
    p = Producer({**conf, "acks": "all", "enable.idempotence": True})
    acked = []
    for i in range(60):
        p.produce(topic, f"s-{i}".encode(), partition=i % 3,
                  on_delivery=lambda e, m: acked.append((e, m.partition(), m.offset())))
    assert p.flush(60) == 0
    assert [e for e, _, _ in acked if e is not None] == []
    ends = {q: sum(1 for _, part, _ in acked if part == q) for q in range(3)}
    got = consume_confluent(conf["bootstrap.servers"], topic, ends, conf={k: v for k, v in conf.items()
                                                                       if k != "bootstrap.servers"})
    assert sorted(r.value for r in got) == sorted(f"s-{i}".encode() for i in range(60))

    # An intruder with a certificate from another CA tries to join as node 9.
    other = make_pki(tmp_path / "intruder-pki")
    voters = (root / "voters").read_text().strip()
    intruder_dir = tmp_path / "intruder"
    log = open(tmp_path / "intruder.log", "wb")
    intruder = subprocess.Popen([
        str(gateway_binary()), "--data-dir", str(intruder_dir),
        "--kafka-addr", "127.0.0.1:0", "--namesrv-addr", "127.0.0.1:0", "--broker-addr", "127.0.0.1:0",
        "--metrics-addr", "127.0.0.1:0",
        "--set", "node.id=9", "--set", f"controller.quorum.voters={voters}",
        "--set", "controller.listen=127.0.0.1:0",
        "--set", f"cluster.ssl.keystore.location={other.server_pem}",
        "--set", f"cluster.ssl.truststore.location={other.ca_pem}",
    ], stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_until(lambda: logs_contain(root, "controller connection without a valid cluster certificate refused"),
                   "the voters to refuse the intruder's controller connections", timeout=30)
        assert live_nodes(root) == 3
        md = admin.list_topics(timeout=10)
        assert sorted(md.brokers) == [1, 2, 3]
    finally:
        intruder.kill()
        intruder.wait(timeout=10)
        log.close()

    # Plain TCP on a controller port: no answer to anything.
    host, port = ports(root, 1)["controller"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"\x00\x00\x00\x10{\"Heartbeat\":{}}")
        s.settimeout(10)
        data = b""
        while True:
            try:
                chunk = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
        assert b"Heartbeat" not in data and (data == b"" or data[:1] == b"\x15"), data[:32]

    # The replication listener needs a client certificate of the cluster's CA.
    host, port = ports(root, 1)["internal"].rsplit(":", 1)
    for cert in (None, other.client("mallory")):
        ctx = ssl.create_default_context(cafile=str(root / "pki" / "ca.pem"))
        if cert:
            ctx.load_cert_chain(cert["cert"], cert["key"])
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\x00\x00")
                    if not tls.recv(4):
                        raise ConnectionResetError("closed")

    # Even an authenticated super user on the client listener may not fetch as a replica:
    # only a node's certificate makes a connection a replica's.
    from kafka.admin import KafkaAdminClient
    from kafka.protocol.consumer.fetch import FetchRequest

    kadmin = KafkaAdminClient(bootstrap_servers=conf["bootstrap.servers"], security_protocol="SASL_SSL",
                              ssl_cafile=str(root / "pki" / "ca.pem"), sasl_mechanism="SCRAM-SHA-512",
                              sasl_plain_username="admin", sasl_plain_password="admin-secret")
    T = FetchRequest.FetchTopic
    leader = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
    req = FetchRequest(
        version=12, replica_id=(leader % 3) + 1, max_wait_ms=100, min_bytes=1, max_bytes=1 << 20,
        isolation_level=0, session_id=0, session_epoch=-1,
        topics=[T(topic=topic, partitions=[T.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0,
                                                            log_start_offset=-1, partition_max_bytes=1 << 20)])],
        forgotten_topics_data=[], rack_id="",
    )
    resp = kadmin._manager.run(kadmin._manager.send, req, leader)
    codes = [p.error_code for t in resp.responses for p in t.partitions]
    assert codes == [29], resp
    assert all(not p.records for t in resp.responses for p in t.partitions)
    assert logs_contain(root, "fetch as a replica refused: not a cluster node")
    kadmin.close()

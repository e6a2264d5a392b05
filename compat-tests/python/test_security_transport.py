"""TLS listeners and SASL authentication with real clients: confluent-kafka (librdkafka),
kcat and kafka-python over SSL, SASL_SSL (SCRAM-SHA-512, PLAIN), SASL_PLAINTEXT
(SCRAM-SHA-256) and mutual TLS; refusals of wrong passwords, plaintext on TLS ports, TLS
on plaintext ports and garbage SASL tokens."""

from __future__ import annotations

import socket
import ssl
import struct
import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient

import kafka_wire as kw
from helpers import (
    Msg,
    assert_all_delivered,
    consume_confluent,
    ends_from_deliveries,
    kp_consume,
    kp_produce,
    produce_confluent,
    run_kcat,
    unique,
)
from security_util import make_pki, scram_args, tls_sets

USERS = {"admin": "admin-secret", "alice": "alice-secret"}


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path / "pki")


def _msgs(n: int, tag: str):
    return [Msg(key=f"k{i}".encode(), value=f"{tag}-{i}".encode(), partition=0) for i in range(n)]


def _roundtrip_confluent(bootstrap: str, conf: dict, tag: str):
    topic = unique(tag)
    msgs = _msgs(20, tag)
    deliveries = produce_confluent(bootstrap, topic, msgs, conf=conf)
    assert_all_delivered(deliveries)
    assert [d.offset for d in deliveries] == list(range(20))
    got = consume_confluent(bootstrap, topic, ends_from_deliveries(deliveries, [0]), conf=conf)
    assert [(r.key, r.value) for r in got] == [(m.key, m.value) for m in msgs]
    return topic


def test_ssl_listener_serves_confluent_and_kcat(server_factory, pki):
    srv = server_factory(sets={
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
        **tls_sets(pki),
    })
    ssl_addr = srv.listener("SSL")
    assert srv.addrs["listener.SSL"].startswith("SSL://")
    assert srv.addrs["listener.PLAINTEXT"].startswith("PLAINTEXT://")
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(pki.ca_pem)}
    topic = _roundtrip_confluent(ssl_addr, conf, "ssl")
    # Metadata over the SSL listener names the SSL endpoint, so clients stay on it.
    md = AdminClient({"bootstrap.servers": ssl_addr, **conf}).list_topics(timeout=10)
    assert [f"{b.host}:{b.port}" for b in md.brokers.values()] == [ssl_addr]
    # kcat (Debian's librdkafka 2.0.2) over TLS reads the same records.
    out = run_kcat(["-C", "-b", ssl_addr, "-X", "security.protocol=ssl", "-X",
                    f"ssl.ca.location={pki.ca_pem}", "-t", topic, "-o", "beginning", "-e", "-q",
                    "-f", "%k=%s\\n"]).stdout.decode()
    assert out.splitlines() == [f"k{i}=ssl-{i}" for i in range(20)]


def test_sasl_ssl_scram_sha512_and_plain(server_factory, pki):
    srv = server_factory(
        sets={"listeners": "SASL_SSL://127.0.0.1:0", **tls_sets(pki)},
        args=scram_args(USERS),
    )
    addr = srv.listener("SASL_SSL")
    base = {"security.protocol": "SASL_SSL", "ssl.ca.location": str(pki.ca_pem)}
    scram = {**base, "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice",
             "sasl.password": "alice-secret"}
    topic = _roundtrip_confluent(addr, scram, "scram512")
    # PLAIN checks the password against the same stored SCRAM credential.
    plain = {**base, "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret"}
    got = consume_confluent(addr, topic, {0: 20}, conf=plain)
    assert [r.value for r in got] == [f"scram512-{i}".encode() for i in range(20)]
    # kcat with SCRAM-SHA-512 over TLS.
    out = run_kcat(["-C", "-b", addr, "-X", "security.protocol=sasl_ssl", "-X", f"ssl.ca.location={pki.ca_pem}",
                    "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=admin", "-X",
                    "sasl.password=admin-secret", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\\n"])
    assert out.stdout.decode().splitlines() == [f"scram512-{i}" for i in range(20)]


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_wrong_password_is_refused(server_factory, pki, mechanism):
    srv = server_factory(
        sets={"listeners": "SASL_SSL://127.0.0.1:0", **tls_sets(pki)},
        args=scram_args(USERS),
    )
    errors = []
    p = Producer({
        "bootstrap.servers": srv.listener("SASL_SSL"), "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(pki.ca_pem), "sasl.mechanism": mechanism,
        "sasl.username": "alice", "sasl.password": "not-the-password",
        "error_cb": lambda e: errors.append(e), "message.timeout.ms": 3000,
    })
    p.produce(unique("denied"), b"x")
    deadline = time.monotonic() + 20
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) and time.monotonic() < deadline:
        p.poll(0.2)
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth, f"no authentication error reported: {errors}"
    assert "Authentication failed" in auth[0].str()
    p.purge()
    p.flush(1)


def test_kafka_python_scram_sha256_over_sasl_plaintext(server_factory):
    srv = server_factory(
        sets={"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms": "SCRAM-SHA-256"},
        args=scram_args({"bob": "bob-secret"}, "SCRAM-SHA-256"),
    )
    addr = srv.listener("SASL_PLAINTEXT")
    conf = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                sasl_plain_username="bob", sasl_plain_password="bob-secret")
    topic = unique("kp-scram")
    msgs = _msgs(15, "kp")
    deliveries = kp_produce(addr, topic, msgs, **conf)
    assert [d.error for d in deliveries] == [None] * 15
    assert [d.offset for d in deliveries] == list(range(15))
    got = kp_consume(addr, topic, {0: 15}, **conf)
    assert [r.value for r in got] == [m.value for m in msgs]


def test_mutual_tls_principal_from_certificate(server_factory, pki):
    """Only the MTLS listener requires a client certificate; with the authorizer on, the
    certificate's mapped name is the principal its ACLs are written for."""
    srv = server_factory(sets={
        "listeners": "PLAINTEXT://127.0.0.1:0,MTLS://127.0.0.1:0",
        "listener.security.protocol.map": "MTLS:SSL",
        "listener.name.mtls.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+),OU=eng,.*$/$1/,DEFAULT",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
        **tls_sets(pki),
    })
    addr = srv.listener("MTLS")
    alice = pki.client("alice")
    admin = AdminClient({"bootstrap.servers": srv.bootstrap})
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)
    topic = unique("mtls")
    futures = admin.create_acls([
        AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                   AclOperation.ALL, AclPermissionType.ALLOW),
        AclBinding(ResourceType.GROUP, "*", ResourcePatternType.LITERAL, "User:alice", "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, "User:alice", "*",
                   AclOperation.IDEMPOTENT_WRITE, AclPermissionType.ALLOW),
    ])
    for f in futures.values():
        f.result(timeout=10)
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(pki.ca_pem),
            "ssl.certificate.location": alice["cert"], "ssl.key.location": alice["key"]}
    msgs = _msgs(10, "mtls")
    deliveries = produce_confluent(addr, topic, msgs, conf=conf)
    assert_all_delivered(deliveries)
    got = consume_confluent(addr, topic, {0: 10}, conf=conf)
    assert [r.value for r in got] == [m.value for m in msgs]
    # A certificate that maps to another principal has no ACL on the topic.
    mallory = pki.client("mallory")
    conf_m = {**conf, "ssl.certificate.location": mallory["cert"], "ssl.key.location": mallory["key"]}
    bad = produce_confluent(addr, topic, _msgs(1, "m"), conf={**conf_m, "message.timeout.ms": 5000})
    assert bad[0].error is not None and bad[0].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Without a client certificate the handshake fails.
    ctx = ssl.create_default_context(cafile=str(pki.ca_pem))
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(kw.api_versions_v0_request(1))
                kw.recv_frame(s)


def test_plaintext_on_tls_port_and_tls_on_plaintext_port_are_closed(server_factory, pki):
    srv = server_factory(sets={"listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", **tls_sets(pki)})
    # A Kafka request in clear text on the TLS port: the handshake fails, nothing is served.
    host, port = srv.listener("SSL").rsplit(":", 1)
    with kw.connect(host, int(port)) as s:
        s.sendall(kw.api_versions_v0_request(1))
        # rustls answers with a TLS alert record (0x15) and closes; never a Kafka frame.
        s.settimeout(10)
        received = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                break
            if not chunk:
                break
            received += chunk
        assert received == b"" or received[:2] == b"\x15\x03", received[:16]
    # A TLS ClientHello on the plaintext port: closed without an answer.
    host, port = srv.listener("PLAINTEXT").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(pki.ca_pem))
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    # The server still serves both listeners.
    _roundtrip_confluent(srv.listener("PLAINTEXT"), {}, "after-garbage")
    _roundtrip_confluent(srv.listener("SSL"), {"security.protocol": "SSL", "ssl.ca.location": str(pki.ca_pem)},
                         "after-garbage-ssl")
    text = open(srv.log_path).read()
    assert "TLS handshake on a plaintext Kafka listener" in text
    assert "TLS handshake failed" in text


def _sasl_handshake(s, corr: int, mechanism: str, version: int = 1) -> int:
    s.sendall(kw.request(17, version, corr, kw.string(mechanism)))
    _, body = kw.recv_frame(s)
    return struct.unpack(">h", body[:2])[0]


def _sasl_authenticate(s, corr: int, token: bytes):
    body = kw.i32(len(token)) + token
    s.sendall(kw.request(36, 1, corr, body))
    got = kw.recv_frame(s)
    _, resp = got
    code = struct.unpack(">h", resp[:2])[0]
    return code, resp


def test_sasl_bad_input(server_factory):
    srv = server_factory(sets={"listeners": "SASL_PLAINTEXT://127.0.0.1:0"}, args=scram_args(USERS))
    host, port = srv.listener("SASL_PLAINTEXT").rsplit(":", 1)
    # Anything but ApiVersions/SaslHandshake before authentication: closed, no answer.
    with kw.connect(host, int(port)) as s:
        s.sendall(kw.metadata_v1_request(1))
        kw.expect_closed(s)
    # Unknown mechanism: UNSUPPORTED_SASL_MECHANISM (33) with the enabled list, then closed.
    with kw.connect(host, int(port)) as s:
        assert _sasl_handshake(s, 1, "GSSAPI") == 33
        kw.expect_closed(s)
    # A garbage SCRAM token: SASL_AUTHENTICATION_FAILED (58), then closed.
    with kw.connect(host, int(port)) as s:
        assert _sasl_handshake(s, 1, "SCRAM-SHA-256") == 0
        code, _ = _sasl_authenticate(s, 2, b"\x00\xffgarbage,,,")
        assert code == 58
        kw.expect_closed(s)
    # A forged SCRAM final message (wrong nonce, made-up proof): refused.
    with kw.connect(host, int(port)) as s:
        assert _sasl_handshake(s, 1, "SCRAM-SHA-512") == 0
        code, resp = _sasl_authenticate(s, 2, b"n,,n=alice,r=abcdef")
        assert code == 0
        code, _ = _sasl_authenticate(s, 3, b"c=biws,r=abcdefREPLAYED,p=AAAA")
        assert code == 58
        kw.expect_closed(s)
    # An oversized token (over sasl.server.max.receive.size): closed.
    with kw.connect(host, int(port)) as s:
        assert _sasl_handshake(s, 1, "PLAIN") == 0
        s.sendall(kw.request(36, 1, 2, kw.i32(600_000) + b"x" * 600_000))
        kw.expect_closed(s)
    # The server is fine: a real client authenticates.
    conf = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "admin", "sasl.password": "admin-secret"}
    _roundtrip_confluent(srv.listener("SASL_PLAINTEXT"), conf, "after-bad-sasl")


def test_reauthentication_keeps_the_connection(server_factory, pki):
    """KIP-368: with connections.max.reauth.ms the session lifetime is announced and
    librdkafka re-authenticates on the same connection; nothing fails meanwhile."""
    srv = server_factory(
        sets={"listeners": "SASL_SSL://127.0.0.1:0", "connections.max.reauth.ms": "1500", **tls_sets(pki)},
        args=scram_args(USERS),
    )
    addr = srv.listener("SASL_SSL")
    conf = {"security.protocol": "SASL_SSL", "ssl.ca.location": str(pki.ca_pem),
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice", "sasl.password": "alice-secret"}
    topic = unique("reauth")
    errors = []
    p = Producer({"bootstrap.servers": addr, **conf, "error_cb": lambda e: errors.append(e), "linger.ms": 0})
    acked = []
    deadline = time.monotonic() + 5
    i = 0
    while time.monotonic() < deadline:
        p.produce(topic, f"r{i}".encode(), partition=0,
                  on_delivery=lambda err, m: acked.append((err, m.offset())))
        i += 1
        p.poll(0.05)
    assert p.flush(30) == 0
    assert all(err is None for err, _ in acked), acked[:3]
    assert sorted(o for _, o in acked) == list(range(i))
    assert not [e for e in errors if e.code() == KafkaError._AUTHENTICATION], errors
    # More than one successful authentication on the SASL listener: re-authentications.
    import urllib.request
    text = urllib.request.urlopen(srv.metrics_url, timeout=10).read().decode()
    ok = [line for line in text.splitlines()
          if line.startswith("sasl_authentications_total") and 'result="success"' in line
          and 'mechanism="SCRAM-SHA-512"' in line]
    assert ok and float(ok[0].rsplit(" ", 1)[1]) >= 3, ok


def _ssl_client_works(addr: str, ca) -> bool:
    try:
        AdminClient({"bootstrap.servers": addr, "security.protocol": "SSL", "ssl.ca.location": str(ca),
                     "socket.timeout.ms": 3000}).list_topics(timeout=3)
        return True
    except Exception:  # noqa: BLE001 - a failed handshake shows up as a timeout or transport error
        return False


def test_key_material_is_reloaded_on_change_and_on_sighup(server_factory, tmp_path):
    import os
    import shutil
    import signal

    first, second = make_pki(tmp_path / "first"), make_pki(tmp_path / "second")
    keystore, truststore = tmp_path / "live.pem", tmp_path / "ca.pem"
    shutil.copy(first.server_pem, keystore)
    shutil.copy(first.ca_pem, truststore)
    srv = server_factory(sets={
        "listeners": "SSL://127.0.0.1:0",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.location": str(truststore),
        "metrics.ssl.enable": "true",
    })
    addr = srv.listener("SSL")
    assert _ssl_client_works(addr, first.ca_pem)
    assert not _ssl_client_works(addr, second.ca_pem)

    # The file changes: new connections get the new certificate, without a restart.
    tmp = tmp_path / "next.pem"
    shutil.copy(second.server_pem, tmp)
    os.replace(tmp, keystore)
    from helpers import wait_until
    wait_until(lambda: _ssl_client_works(addr, second.ca_pem), "the new certificate to be served", timeout=15)
    assert not _ssl_client_works(addr, first.ca_pem)

    # Back to the first certificate with the file's old modification time: only SIGHUP
    # makes the server read it again.
    stamp = os.stat(keystore).st_mtime_ns
    shutil.copy(first.server_pem, tmp)
    os.utime(tmp, ns=(stamp, stamp))
    os.replace(tmp, keystore)
    os.utime(keystore, ns=(stamp, stamp))
    assert _ssl_client_works(addr, second.ca_pem)
    srv.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: _ssl_client_works(addr, first.ca_pem), "SIGHUP to reload the key material", timeout=15)

    # The metrics listener serves HTTPS with the same key material.
    import ssl as _ssl
    import urllib.request
    ctx = _ssl.create_default_context(cafile=str(first.ca_pem))
    body = urllib.request.urlopen(f"https://{srv.addrs['metrics']}/metrics", context=ctx, timeout=10).read().decode()
    assert 'tls_reloads_total{listener="SSL"} 2' in body, [l for l in body.splitlines() if "tls_reload" in l]


def test_large_answers_over_tls_arrive_whole(server_factory, pki):
    """A 12 MiB Fetch answer over TLS to a slow reader arrives complete, and nothing else is
    needed from the client to get its tail (the server flushes the TLS stream after every
    write: encrypted records left buffered stalled librdkafka consumers in bench runs)."""
    srv = server_factory(sets={"listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", **tls_sets(pki)})
    topic = unique("big")
    msgs = [Msg(key=None, value=bytes([65 + i % 26]) * 1000, partition=0) for i in range(12000)]
    assert_all_delivered(produce_confluent(srv.listener("PLAINTEXT"), topic, msgs))
    host, port = srv.listener("SSL").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(pki.ca_pem))
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.settimeout(10)
            # A slow reader keeps the socket buffers full while the answer is written.
            s.sendall(kw.fetch_v4_request(7, topic, 0, 0, 100, max_bytes=12 << 20))
            data = b""
            while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
                chunk = s.recv(65536)
                assert chunk, "connection closed mid-answer"
                data += chunk
                time.sleep(0.005)
            corr = struct.unpack(">i", data[4:8])[0]
            body = data[8:]
            assert corr == 7
    [(name, part, err, hw, records)] = kw.parse_fetch_v4(body)
    assert (name, part, err, hw) == (topic, 0, 0, 12000)
    got = kw.decode_batches(records)
    assert len(records) > 10_000_000 and len(got) >= 10000
    assert [v for _, _, v in got] == [m.value for m in msgs[:len(got)]]


def test_connection_limits_and_authentication_deadline(server_factory):
    srv = server_factory(
        sets={"listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
              "max.connections.per.ip": "3", "sasl.server.authn.timeout": "500"},
        args=scram_args(USERS),
    )
    host, port = srv.listener("PLAINTEXT").rsplit(":", 1)
    held = [kw.connect(host, int(port)) for _ in range(3)]
    for i, s in enumerate(held):
        body = kw.roundtrip(s, kw.api_versions_v0_request(i + 1), i + 1)
        assert kw.parse_api_versions_v0(body).error_code == 0
    # A fourth connection from the same address is closed at once, without an answer.
    with kw.connect(host, int(port)) as extra:
        extra.sendall(kw.api_versions_v0_request(9))
        kw.expect_closed(extra)
    # One closed frees a slot.
    held.pop().close()
    from helpers import wait_until

    def fourth_works() -> bool:
        try:
            with kw.connect(host, int(port)) as s:
                kw.parse_api_versions_v0(kw.roundtrip(s, kw.api_versions_v0_request(5), 5))
                return True
        except (AssertionError, OSError):
            return False

    wait_until(fourth_works, "a slot freed by a closed connection", timeout=10)
    for s in held:
        s.close()
    # A SASL connection that never authenticates is closed after sasl.server.authn.timeout
    # (once the server has seen the closes above, the address has slots again).
    host, port = srv.listener("SASL_PLAINTEXT").rsplit(":", 1)
    sasl_conn = []

    def sasl_connected() -> bool:
        try:
            s = kw.connect(host, int(port))
            assert kw.parse_api_versions_v0(kw.roundtrip(s, kw.api_versions_v0_request(1), 1)).error_code == 0
            sasl_conn.append(s)
            return True
        except (AssertionError, OSError):
            return False

    wait_until(sasl_connected, "a SASL connection once slots are free", timeout=10)
    with sasl_conn[0] as s:
        kw.expect_closed(s, timeout=10)
    # The reason is logged as the connection task ends, which can be just after the close.
    wait_until(lambda: "no authentication within" in open(srv.log_path).read(),
               "the authentication deadline logged", timeout=10)
    text = open(srv.log_path).read()
    assert "address already has the configured maximum of connections" in text

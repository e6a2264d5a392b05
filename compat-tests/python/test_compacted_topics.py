"""Compacted topics: a record without a key is refused (Kafka's INVALID_RECORD with KIP-467
per-record errors), the other partitions of the same request unaffected; the deprecated
`message.format.version` is accepted and ignored as Kafka 3.x does."""

from __future__ import annotations

from confluent_kafka import KafkaError
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

import kafka_wire as kw
from helpers import Msg, admin_client, consume_confluent, create_topic, produce_confluent, unique

INVALID_RECORD = 87


def test_keyless_record_refused_on_compacted_topic_with_record_errors(server):
    t = unique("compact")
    create_topic(server.bootstrap, t, 2, {"cleanup.policy": "compact"})
    # One request, two partitions: p0's batch has a keyless record (index 1), p1's is keyed.
    sock = kw.connect(server.kafka_host, server.kafka_port)
    try:
        bad = kw.record_batch([(b"k0", b"v0"), (None, b"no key"), (b"k2", b"v2"), (None, b"again")],
                              base_ts=1_700_000_000_000)
        good = kw.record_batch([(b"a", b"1"), (b"b", b"2")], base_ts=1_700_000_000_000)
        body = kw.roundtrip(sock, kw.produce_v8_request(3, t, [(0, bad), (1, good)]), 3)
    finally:
        sock.close()
    got = {p: rest for (_, p, *rest) in kw.parse_produce_v8(body)}
    err, base, record_errors, message = got[0]
    why = f"Compacted topic cannot accept message without key in topic partition {t}-0."
    assert (err, base) == (INVALID_RECORD, -1)
    assert record_errors == [(1, why), (3, why)]
    assert message.startswith("One or more records have been rejected due to 2 record errors in total")
    assert got[1] == [0, 0, [], None]
    # Nothing of the refused batch was stored; the other partition's records were.
    recs = consume_confluent(server.bootstrap, t, {0: 0, 1: 2})
    assert [(r.partition, r.offset, r.key) for r in recs] == [(1, 0, b"a"), (1, 1, b"b")]

    # librdkafka reports the refusal per message.
    d = produce_confluent(server.bootstrap, t, [Msg(0, None, b"x")], {"message.timeout.ms": 5000, "retries": 0})
    assert d[0].error is not None and d[0].error.code() == KafkaError.INVALID_RECORD
    d = produce_confluent(server.bootstrap, t, [Msg(0, b"key", b"x")])
    assert d[0].error is None and d[0].offset == 0
    # A delete-policy topic takes keyless records.
    plain = unique("plain")
    create_topic(server.bootstrap, plain, 1)
    d = produce_confluent(server.bootstrap, plain, [Msg(0, None, b"x")])
    assert d[0].error is None


def test_message_format_version_is_accepted_and_ignored(server):
    t = unique("mfv")
    create_topic(server.bootstrap, t, 1)
    admin = admin_client(server.bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, t, set_config={"message.format.version": "0.10.0.0"})
    admin.alter_configs([res])[res].result(timeout=10)
    inc = ConfigResource(ConfigResource.Type.TOPIC, t, incremental_configs=[
        ConfigEntry("message.format.version", "2.8", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([inc])[inc].result(timeout=10)
    # Still v2 batches: records produced after are read back normally.
    d = produce_confluent(server.bootstrap, t, [Msg(0, b"k", b"v")])
    assert d[0].error is None
    assert [r.value for r in consume_confluent(server.bootstrap, t, {0: 1})] == [b"v"]


def test_cleaner_keeps_the_last_record_per_key_at_its_offset(server_factory):
    srv = server_factory(sets={"log.cleaner.backoff.ms": "200"})
    t = unique("clean")
    # Every batch in its own segment (segment.ms=1), every closed segment cleanable at once.
    create_topic(srv.bootstrap, t, 1, {"cleanup.policy": "compact", "segment.ms": "1",
                                       "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0"})
    import time as _time

    expected = {}
    offset = 0
    # lz4 batches of 10 records over 7 keys: most batches keep some records and lose others,
    # so they are rewritten (re-encoded) with the survivors at their offsets.
    msgs = []
    for i in range(60):
        key = f"k{i % 7}".encode()
        value = None if i in (50, 53) else f"v{i}".encode()  # tombstones: k1 at 50, k4 at 53
        msgs.append(Msg(0, key, value))
    for start in range(0, 60, 10):
        d = produce_confluent(srv.bootstrap, t, msgs[start:start + 10],
                              {"compression.type": "lz4", "linger.ms": 50, "batch.num.messages": 10})
        assert all(x.error is None for x in d)
        for m, x in zip(msgs[start:start + 10], d):
            expected[m.key] = (x.offset, m.value)
            offset = max(offset, x.offset + 1)
        _time.sleep(0.01)
    # One more batch closes the last data segment.
    d = produce_confluent(srv.bootstrap, t, [Msg(0, b"marker", b"end")])
    assert d[0].offset == 60
    want = sorted((o, k, v) for k, (o, v) in expected.items() if v is not None) + [(60, b"marker", b"end")]

    def compacted():
        recs = consume_confluent(srv.bootstrap, t, {0: 61})
        got = sorted((r.offset, r.key, r.value) for r in recs)
        return got if got == want else False

    from helpers import wait_until

    wait_until(compacted, "the cleaner to keep one record per key", timeout=30)
    # kafka-python reads across the gaps too, and the result survives a restart.
    from helpers import kp_consume

    assert sorted((r.offset, r.key, r.value) for r in kp_consume(srv.bootstrap, t, {0: 61})) == want
    import urllib.request

    body = urllib.request.urlopen(srv.metrics_url, timeout=5).read().decode()
    removed = sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                  if line.startswith("log_cleaner_records_removed_total{") and f'topic="{t}"' in line)
    # 60 data records over 7 keys: the last of each survives except k4's, a tombstone
    # (delete.retention.ms=0); k1's tombstone at 50 was superseded at 57.
    assert removed == 54 and len(want) == 6 + 1
    srv.kill()
    srv.start()
    assert sorted((r.offset, r.key, r.value) for r in consume_confluent(srv.bootstrap, t, {0: 61})) == want


def test_kill_9_during_cleaning_loses_nothing(server_factory):
    """SIGKILL while the cleaner is rewriting segments (throttled so the pass takes seconds;
    its work directory exists): after the restart every key still reads its last value at its
    offset, and the next pass finishes the job."""
    from pathlib import Path

    from helpers import wait_until

    srv = server_factory(sets={"log.cleaner.backoff.ms": "100",
                               "log.cleaner.io.max.bytes.per.second": "250000"})
    t = unique("killclean")
    create_topic(srv.bootstrap, t, 1, {"cleanup.policy": "compact", "segment.bytes": "65536",
                                       "min.cleanable.dirty.ratio": "0.01"})
    # 1200 records of ~1 KiB over 60 keys: each key written 20 times, ~19 segments.
    msgs = [Msg(0, f"k{i % 60}".encode(), f"{i}:".encode() + b"x" * 1000) for i in range(1200)]
    d = produce_confluent(srv.bootstrap, t, msgs, {"linger.ms": 5})
    assert [x.offset for x in d] == list(range(1200))
    last = {}
    for i, m in enumerate(msgs):
        last[m.key] = (i, m.value)
    part = Path(srv.data_dir) / "logs" / f"{t}-0"
    wait_until(lambda: (part / "cleaning").exists(), "the cleaner to be rewriting a segment", timeout=60)
    srv.kill()
    srv.start()
    assert not (part / "cleaning").exists()

    def latest():
        recs = consume_confluent(srv.bootstrap, t, {0: 1200})
        seen = {}
        for r in recs:
            seen[r.key] = (r.offset, r.value)
        return recs, seen

    recs, seen = latest()
    assert seen == last, "a key lost its last value"
    offsets = [r.offset for r in recs]
    assert offsets == sorted(set(offsets)) and offsets[-1] == 1199

    def cleaned():
        # Below the active segment every key appears once.
        bases = sorted(int(p.stem) for p in part.glob("*.log"))
        active = bases[-1]
        recs, seen = latest()
        below = [r.key for r in recs if r.offset < active]
        return seen == last and len(below) == len(set(below)) and len(below) < 1200 - 60

    wait_until(cleaned, "the next pass to finish", timeout=120)

"""Exact round-trip of keys, values, headers and timestamps, with per-partition
order, through confluent-kafka (librdkafka), kafka-python and kcat."""

from __future__ import annotations

import json

import pytest

from helpers import (
    Msg,
    assert_all_delivered,
    assert_offsets_in_produce_order,
    assert_records_match,
    by_partition,
    consume_confluent,
    create_topic,
    kcat_consume,
    ends_from_deliveries,
    kp_consume,
    kp_produce,
    now_ms,
    produce_confluent,
    run_kcat,
    sample_messages,
    unique,
    watermarks,
)

PARTITIONS = 3


def special_messages(base_ts: int, producer: str):
    """Edge cases: null key, null value (tombstone), empty key/value, binary
    bytes, duplicate header keys (order matters), empty header value."""
    hdrs = (("dup", b"first"), ("dup", b"second"), ("empty", b""), ("bin", bytes([0, 1, 254, 255])))
    if producer == "confluent":
        hdrs = hdrs + (("null", None),)
    return [
        Msg(0, None, b"no-key", (), base_ts + 5000),
        Msg(1, b"tombstone-key", None, (), base_ts + 5001),
        Msg(2, b"\x00\xffbinary-key", bytes(range(256)), hdrs, base_ts + 5002),
        Msg(0, b"", b"", (), base_ts + 5003),
        Msg(1, "ключ-ü".encode(), "värde ✓".encode(), (("ütf", "✓".encode()),), base_ts + 5004),
    ]


@pytest.mark.parametrize("producer", ["confluent", "kafka-python"])
@pytest.mark.parametrize("consumer", ["confluent", "kafka-python"])
def test_roundtrip_exact(server, producer, consumer):
    topic = unique(f"rt-{producer}-{consumer}")
    create_topic(server.bootstrap, topic, PARTITIONS)
    base = now_ms() - 60_000
    msgs = sample_messages(PARTITIONS, 40, base) + special_messages(base, producer)

    if producer == "confluent":
        deliveries = produce_confluent(server.bootstrap, topic, msgs, {"acks": "all"})
    else:
        deliveries = kp_produce(server.bootstrap, topic, msgs, acks="all")
    assert_all_delivered(deliveries)
    assert_offsets_in_produce_order(deliveries)
    assert [d.partition for d in deliveries] == [m.partition for m in msgs]

    ends = ends_from_deliveries(deliveries, range(PARTITIONS))
    assert ends == {0: 42, 1: 42, 2: 41}
    if consumer == "confluent":
        consumed = consume_confluent(server.bootstrap, topic, ends)
    else:
        consumed = kp_consume(server.bootstrap, topic, ends)

    assert len(consumed) == len(msgs)
    assert_records_match(consumed, deliveries)
    # arrival order within each partition is offset order
    for p, recs in by_partition(consumed).items():
        assert [r.offset for r in recs] == list(range(ends[p])), f"partition {p} arrival order"
    # nothing beyond what was produced
    assert watermarks(server.bootstrap, topic, range(PARTITIONS)) == {p: (0, ends[p]) for p in range(PARTITIONS)}


# ---------------------------------------------------------------------------
# kcat (librdkafka 2.0.2 CLI)
# ---------------------------------------------------------------------------

def test_kcat_produce_consume_exact(server):
    topic = unique("rt-kcat")
    create_topic(server.bootstrap, topic, 2)
    lines = {p: [f"key-{p}-{i}:value {p} {i} with spaces;and=symbols" for i in range(25)] for p in range(2)}

    before = now_ms()
    for p in range(2):
        run_kcat(["-P", "-b", server.bootstrap, "-t", topic, "-p", str(p), "-K", ":",
                  "-H", "trace=abc123", "-H", f"src=kcat-p{p}", "-X", "acks=all"],
                 stdin=("\n".join(lines[p]) + "\n").encode())
    after = now_ms()

    out = kcat_consume(server.bootstrap, topic, "%p|%o|%k|%s|%h|%T\\n")
    rows = [line.split("|") for line in out.splitlines() if line]
    assert len(rows) == 50, out
    per = {0: [], 1: []}
    for p, o, k, s, h, ts in rows:
        per[int(p)].append((int(o), k, s, h, int(ts)))
    for p in range(2):
        got = per[p]
        assert [o for o, *_ in got] == list(range(25)), f"partition {p} offsets/order"
        assert [(k, s) for _, k, s, _, _ in got] == [tuple(line.split(":", 1)) for line in lines[p]]
        assert {h for *_, h, _ in got} == {f"trace=abc123,src=kcat-p{p}"}
        for *_, ts in got:
            assert before - 1000 <= ts <= after + 1000, f"CreateTime {ts} outside [{before}, {after}]"

    # a different client sees exactly the same records
    consumed = consume_confluent(server.bootstrap, topic, {0: 25, 1: 25})
    for r in consumed:
        k, s = lines[r.partition][r.offset].split(":", 1)
        assert (r.key, r.value) == (k.encode(), s.encode())
        assert r.headers == (("trace", b"abc123"), ("src", f"kcat-p{r.partition}".encode()))
        assert r.ts_type == "create"
        assert int(per[r.partition][r.offset][4]) == r.timestamp


def test_kcat_consumes_what_confluent_produced(server):
    topic = unique("rt-kcat-read")
    create_topic(server.bootstrap, topic, 3)
    base = now_ms() - 30_000
    msgs = [Msg(i % 3, f"k{i}".encode(), f"v{i}".encode(), (("n", str(i).encode()),), base + i) for i in range(60)]
    deliveries = produce_confluent(server.bootstrap, topic, msgs)
    assert_all_delivered(deliveries)

    out = kcat_consume(server.bootstrap, topic, "%p|%o|%k|%s|%h|%T\\n")
    rows = sorted(tuple(line.split("|")) for line in out.splitlines() if line)
    expected = sorted(
        (str(d.partition), str(d.offset), d.msg.key.decode(), d.msg.value.decode(),
         f"n={d.msg.headers[0][1].decode()}", str(d.msg.timestamp))
        for d in deliveries
    )
    assert rows == expected


def test_kcat_metadata_listing(server):
    topic = unique("md-kcat")
    create_topic(server.bootstrap, topic, 4)
    proc = run_kcat(["-L", "-b", server.bootstrap, "-t", topic, "-J"])
    md = json.loads(proc.stdout)
    assert [b["id"] for b in md["brokers"]] == [1]
    assert md["brokers"][0]["name"] == server.bootstrap
    topics = {t["topic"]: t for t in md["topics"]}
    assert set(topics) == {topic}
    parts = sorted(topics[topic]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2, 3]
    assert all(p["leader"] == 1 for p in parts)
    assert all([r["id"] for r in p["replicas"]] == [1] for p in parts)
    assert all([r["id"] for r in p["isrs"]] == [1] for p in parts)

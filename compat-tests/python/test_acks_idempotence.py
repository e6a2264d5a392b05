"""acks 0/1/all and the idempotent producer (InitProducerId + sequenced batches)."""

from __future__ import annotations

import pytest

from helpers import (
    Msg,
    assert_all_delivered,
    assert_offsets_in_produce_order,
    assert_records_match,
    consume_confluent,
    create_topic,
    kp_consume,
    kp_produce,
    now_ms,
    produce_confluent,
    unique,
    wait_until,
    watermarks,
)

N = 300
PARTITIONS = 2


def numbered(n: int, partitions: int, base_ts: int):
    return [Msg(i % partitions, f"k{i}".encode(), f"v{i}".encode(), (), base_ts + i) for i in range(n)]


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_confluent_acks(server, acks):
    topic = unique(f"acks-{acks}")
    create_topic(server.bootstrap, topic, PARTITIONS)
    msgs = numbered(N, PARTITIONS, now_ms() - 60_000)
    deliveries = produce_confluent(server.bootstrap, topic, msgs, {"acks": acks})
    assert_all_delivered(deliveries)
    ends = {p: N // PARTITIONS for p in range(PARTITIONS)}
    if acks == "0":
        # no response from the broker, so no offsets; wait until the log has them all
        assert {d.offset for d in deliveries} == {None}  # confluent-kafka reports None
        full = {p: (0, e) for p, e in ends.items()}
        wait_until(lambda: watermarks(server.bootstrap, topic, range(PARTITIONS)) == full,
                   f"all {N} acks=0 messages appended")
        for d in deliveries:
            d.offset = int(d.msg.key[1:]) // PARTITIONS  # produce order == log order per partition
    else:
        assert_offsets_in_produce_order(deliveries)
    consumed = consume_confluent(server.bootstrap, topic, ends)
    assert len(consumed) == N
    assert_records_match(consumed, deliveries)


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_kafka_python_acks(server, acks):
    topic = unique(f"kp-acks-{acks}")
    create_topic(server.bootstrap, topic, PARTITIONS)
    msgs = numbered(N, PARTITIONS, now_ms() - 60_000)
    deliveries = kp_produce(server.bootstrap, topic, msgs, acks=acks)
    assert_all_delivered(deliveries)
    ends = {p: N // PARTITIONS for p in range(PARTITIONS)}
    if acks == 0:
        full = {p: (0, e) for p, e in ends.items()}
        wait_until(lambda: watermarks(server.bootstrap, topic, range(PARTITIONS)) == full,
                   f"all {N} acks=0 messages appended")
        for d in deliveries:
            d.offset = int(d.msg.key[1:]) // PARTITIONS
    else:
        assert_offsets_in_produce_order(deliveries)
    consumed = kp_consume(server.bootstrap, topic, ends)
    assert len(consumed) == N
    assert_records_match(consumed, deliveries)


def assert_exactly_once_in_order(consumed, n: int, partitions: int):
    keys = [r.key for r in consumed]
    assert len(keys) == n, f"consumed {len(keys)} records, expected {n}"
    assert len(set(keys)) == n, "duplicates consumed"
    for p in range(partitions):
        seqs = [int(r.key[1:]) for r in sorted(consumed, key=lambda r: r.offset) if r.partition == p]
        assert seqs == list(range(p, n, partitions)), f"partition {p} order"


def test_confluent_idempotent_producer(server):
    n = 3000
    topic = unique("idem-ck")
    create_topic(server.bootstrap, topic, PARTITIONS)
    msgs = numbered(n, PARTITIONS, now_ms() - 60_000)
    deliveries = produce_confluent(server.bootstrap, topic, msgs, {
        "enable.idempotence": True,
        "max.in.flight.requests.per.connection": 5,
        "linger.ms": 2,
        "batch.num.messages": 100,
    })
    assert_all_delivered(deliveries)
    assert_offsets_in_produce_order(deliveries)
    ends = {p: n // PARTITIONS for p in range(PARTITIONS)}
    assert watermarks(server.bootstrap, topic, range(PARTITIONS)) == {p: (0, e) for p, e in ends.items()}
    consumed = consume_confluent(server.bootstrap, topic, ends)
    assert_exactly_once_in_order(consumed, n, PARTITIONS)
    assert_records_match(consumed, deliveries)


def test_kafka_python_idempotent_producer(server):
    n = 1000
    topic = unique("idem-kp")
    create_topic(server.bootstrap, topic, PARTITIONS)
    msgs = numbered(n, PARTITIONS, now_ms() - 60_000)
    deliveries = kp_produce(server.bootstrap, topic, msgs, enable_idempotence=True, acks="all",
                            max_in_flight_requests_per_connection=5)
    assert_all_delivered(deliveries)
    assert_offsets_in_produce_order(deliveries)
    ends = {p: n // PARTITIONS for p in range(PARTITIONS)}
    consumed = kp_consume(server.bootstrap, topic, ends)
    assert_exactly_once_in_order(consumed, n, PARTITIONS)
    assert_records_match(consumed, deliveries)

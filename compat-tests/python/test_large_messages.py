"""1 MiB messages under a raised message.max.bytes, and oversize rejection."""

from __future__ import annotations

import os

import kafka.errors as Errors
import pytest
from confluent_kafka import KafkaError

from helpers import (
    Msg,
    assert_all_delivered,
    assert_records_match,
    consume_confluent,
    create_topic,
    kp_consume,
    kp_produce,
    now_ms,
    produce_confluent,
    unique,
    watermarks,
)

MIB = 1024 * 1024
SERVER_LIMIT = 2 * MIB
# a batch holds one 1 MiB record but never two, so each request stays under the 2 MiB limit
ONE_RECORD_BATCH = 1_200_000
BIG_PRODUCER = {"message.max.bytes": 8 * MIB, "batch.size": ONE_RECORD_BATCH}
BIG_CONSUMER = {"fetch.max.bytes": 16 * MIB, "max.partition.fetch.bytes": 8 * MIB}
KP_BIG_CONSUMER = {"fetch_max_bytes": 16 * MIB, "max_partition_fetch_bytes": 8 * MIB}


@pytest.fixture
def big_server(server_factory):
    return server_factory(sets={"message.max.bytes": str(SERVER_LIMIT)})


def one_mib_messages(base_ts):
    # random bytes do not compress, so the batch really is > 1 MiB on the wire
    return [Msg(0, f"big-{i}".encode(), os.urandom(MIB), (("i", str(i).encode()),), base_ts + i) for i in range(3)]


def test_confluent_1mib_roundtrip(big_server):
    topic = unique("big-ck")
    create_topic(big_server.bootstrap, topic, 1)
    msgs = one_mib_messages(now_ms() - 60_000)
    d = produce_confluent(big_server.bootstrap, topic, msgs, {**BIG_PRODUCER, "linger.ms": 0})
    assert_all_delivered(d)
    assert [x.offset for x in d] == [0, 1, 2]
    assert_records_match(consume_confluent(big_server.bootstrap, topic, {0: 3}, conf=BIG_CONSUMER), d)
    assert_records_match(kp_consume(big_server.bootstrap, topic, {0: 3}, **KP_BIG_CONSUMER), d)


def test_kafka_python_1mib_roundtrip(big_server):
    topic = unique("big-kp")
    create_topic(big_server.bootstrap, topic, 1)
    msgs = one_mib_messages(now_ms() - 60_000)
    d = kp_produce(big_server.bootstrap, topic, msgs, max_request_size=8 * MIB, batch_size=ONE_RECORD_BATCH,
                   linger_ms=0)
    assert_all_delivered(d)
    assert [x.offset for x in d] == [0, 1, 2]
    assert_records_match(kp_consume(big_server.bootstrap, topic, {0: 3}, **KP_BIG_CONSUMER), d)
    assert_records_match(consume_confluent(big_server.bootstrap, topic, {0: 3}, conf=BIG_CONSUMER), d)


def test_confluent_over_limit_rejected(big_server):
    topic = unique("big-reject")
    create_topic(big_server.bootstrap, topic, 1)
    small = produce_confluent(big_server.bootstrap, topic, [Msg(0, b"before", b"x")])
    assert_all_delivered(small)
    d = produce_confluent(big_server.bootstrap, topic, [Msg(0, b"huge", os.urandom(3 * MIB))],
                          {"message.max.bytes": 8 * MIB, "batch.size": 8 * MIB, "linger.ms": 0, "retries": 0})
    assert d[0].error is not None, "3 MiB message accepted by a 2 MiB broker"
    assert d[0].error.code() == KafkaError.MSG_SIZE_TOO_LARGE, d[0].error
    assert watermarks(big_server.bootstrap, topic, [0]) == {0: (0, 1)}
    # the connection and the partition still work
    after = produce_confluent(big_server.bootstrap, topic, [Msg(0, b"after", b"y")])
    assert_all_delivered(after)
    assert after[0].offset == 1
    recs = consume_confluent(big_server.bootstrap, topic, {0: 2})
    assert [(r.offset, r.key) for r in recs] == [(0, b"before"), (1, b"after")]


def test_kafka_python_over_limit_rejected(big_server):
    topic = unique("big-reject-kp")
    create_topic(big_server.bootstrap, topic, 1)
    d = kp_produce(big_server.bootstrap, topic, [Msg(0, b"huge", os.urandom(3 * MIB))],
                   max_request_size=8 * MIB, batch_size=8 * MIB, linger_ms=0, retries=0)
    assert isinstance(d[0].error, Errors.MessageSizeTooLargeError), repr(d[0].error)
    assert watermarks(big_server.bootstrap, topic, [0]) == {0: (0, 0)}


def test_topic_max_message_bytes_override(server):
    topic = unique("big-topic-limit")
    create_topic(server.bootstrap, topic, 1, config={"max.message.bytes": "4096"})
    ok = produce_confluent(server.bootstrap, topic, [Msg(0, b"k", os.urandom(1000))], {"linger.ms": 0})
    assert_all_delivered(ok)
    d = produce_confluent(server.bootstrap, topic, [Msg(0, b"k", os.urandom(8192))], {"linger.ms": 0, "retries": 0})
    assert d[0].error is not None and d[0].error.code() == KafkaError.MSG_SIZE_TOO_LARGE, d[0].error
    assert watermarks(server.bootstrap, topic, [0]) == {0: (0, 1)}

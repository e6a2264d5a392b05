"""Produce v0-v2 with the legacy message formats (magic 0 and 1), as clients written for
Kafka 0.8-0.10 send them: kafka-python pinned to an old broker version produces, the server
converts each message set once into a v2 batch, and a modern client reads back exactly."""

from __future__ import annotations

import re
import urllib.request

import pytest

from helpers import (
    Msg,
    assert_all_delivered,
    assert_offsets_in_produce_order,
    consume_confluent,
    create_topic,
    ends_from_deliveries,
    kp_produce,
    unique,
)

# (api_version given to kafka-python, compression): (0, 10, 1) -> Produce v2 with magic 1;
# (0, 9) -> Produce v1 with magic 0; (0, 8, 2) -> Produce v0 with magic 0.
CASES = [
    ((0, 10, 1), None),
    ((0, 10, 1), "gzip"),
    ((0, 10, 1), "snappy"),
    ((0, 10, 1), "lz4"),
    ((0, 9), None),
    ((0, 9), "gzip"),
    ((0, 8, 2), None),
]


def converted_sets(server) -> float:
    with urllib.request.urlopen(server.metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    m = re.search(r"^kafka_legacy_message_sets_converted_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.parametrize("api_version,codec", CASES)
def test_legacy_message_sets_are_converted(server, api_version, codec):
    topic = unique("legacy")
    create_topic(server.bootstrap, topic, 2)
    with_ts = api_version >= (0, 10)
    msgs = [
        Msg(i % 2, f"k{i}".encode() if i % 3 else None, f"legacy-{i}".encode() * (1 + i % 4),
            (), 1_700_000_000_000 + i if with_ts else None)
        for i in range(60)
    ]
    conf = {"api_version": api_version}
    if codec:
        conf["compression_type"] = codec
    before = converted_sets(server)
    deliveries = kp_produce(server.bootstrap, topic, msgs, **conf)
    assert_all_delivered(deliveries)
    # The sets really were legacy ones (one per partition per request at least).
    assert converted_sets(server) >= before + 2
    assert_offsets_in_produce_order(deliveries)
    consumed = consume_confluent(server.bootstrap, topic, ends_from_deliveries(deliveries, range(2)))
    got = sorted((r.partition, r.offset, r.key, r.value) for r in consumed)
    want = sorted((d.partition, d.offset, d.msg.key, d.msg.value) for d in deliveries)
    assert got == want
    if with_ts:
        by_offset = {(r.partition, r.offset): r.timestamp for r in consumed}
        assert all(by_offset[(d.partition, d.offset)] == d.msg.timestamp for d in deliveries)

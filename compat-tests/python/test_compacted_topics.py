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

"""Every compression codec, produced by confluent-kafka, kafka-python and kcat,
consumed back exactly by both Python clients."""

from __future__ import annotations

import pytest

from helpers import (
    Msg,
    assert_all_delivered,
    assert_offsets_in_produce_order,
    assert_records_match,
    consume_confluent,
    create_topic,
    kcat_consume,
    ends_from_deliveries,
    kp_consume,
    kp_produce,
    now_ms,
    produce_confluent,
    run_kcat,
    unique,
)

CODECS = ["gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 2
PER_PARTITION = 150


def compressible_messages(base_ts: int):
    msgs = []
    for i in range(PER_PARTITION):
        for p in range(PARTITIONS):
            value = (f'{{"partition": {p}, "seq": {i}, "payload": "' + "abcdefgh" * 40 + '"}').encode()
            msgs.append(Msg(p, f"k-{p}-{i}".encode(), value, (("codec-test", str(i).encode()),), base_ts + i))
    return msgs


def test_kafka_python_has_all_codecs():
    # guards the environment: without these kafka-python silently can't use the codecs
    from kafka import codec

    assert codec.has_gzip() and codec.has_snappy() and codec.has_lz4() and codec.has_zstd()


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("producer", ["confluent", "kafka-python"])
def test_codec_roundtrip(server, producer, codec):
    topic = unique(f"cmp-{codec}-{producer}")
    create_topic(server.bootstrap, topic, PARTITIONS)
    msgs = compressible_messages(now_ms() - 60_000)
    if producer == "confluent":
        deliveries = produce_confluent(server.bootstrap, topic, msgs,
                                       {"compression.type": codec, "linger.ms": 50, "batch.num.messages": 50})
    else:
        deliveries = kp_produce(server.bootstrap, topic, msgs, compression_type=codec, linger_ms=50,
                                batch_size=16384)
    assert_all_delivered(deliveries)
    assert_offsets_in_produce_order(deliveries)
    ends = ends_from_deliveries(deliveries, range(PARTITIONS))
    assert ends == {0: PER_PARTITION, 1: PER_PARTITION}

    # both decoders must read the exact records back
    assert_records_match(consume_confluent(server.bootstrap, topic, ends), deliveries)
    assert_records_match(kp_consume(server.bootstrap, topic, ends), deliveries)


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_codec_roundtrip(server, codec):
    topic = unique(f"cmp-kcat-{codec}")
    create_topic(server.bootstrap, topic, 1)
    lines = [f"k{i}:" + f"line {i} " + "xyz" * 50 for i in range(200)]
    run_kcat(["-P", "-b", server.bootstrap, "-t", topic, "-p", "0", "-K", ":", "-z", codec,
              "-X", "linger.ms=50"], stdin=("\n".join(lines) + "\n").encode())
    out = kcat_consume(server.bootstrap, topic, "%o|%k|%s\\n")
    rows = [line.split("|") for line in out.splitlines() if line]
    assert rows == [[str(i), *lines[i].split(":", 1)] for i in range(200)]
    recs = consume_confluent(server.bootstrap, topic, {0: 200})
    assert [(r.offset, r.key, r.value) for r in recs] == [
        (i, lines[i].split(":", 1)[0].encode(), lines[i].split(":", 1)[1].encode()) for i in range(200)
    ]

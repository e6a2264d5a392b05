"""ListOffsets through the consumers: offsets_for_times, earliest and latest."""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

from helpers import (
    Msg,
    assert_all_delivered,
    confluent_consumer,
    consume_confluent,
    create_topic,
    kp_produce,
    now_ms,
    produce_confluent,
    unique,
)

# offsets 0..5 on partition 0 carry these CreateTime offsets from t0 (not monotonic on purpose)
STAMPS = [0, 1000, 2000, 2000, 7000, 3000]


def produce_stamped(server, topic, t0):
    msgs = [Msg(0, f"k{i}".encode(), f"v{i}".encode(), (), t0 + s) for i, s in enumerate(STAMPS)]
    msgs += [Msg(1, b"p1", b"only", (), t0 + 500)]
    d = produce_confluent(server.bootstrap, topic, msgs)
    assert_all_delivered(d)
    return d


def test_confluent_offsets_for_times(server):
    topic = unique("oft-ck")
    create_topic(server.bootstrap, topic, 2)
    t0 = now_ms() - 3_600_000
    produce_stamped(server, topic, t0)
    c = confluent_consumer(server.bootstrap)
    try:
        def lookup(partition, ts):
            [r] = c.offsets_for_times([TopicPartition(topic, partition, ts)], timeout=10)
            assert r.error is None
            return r.offset

        assert lookup(0, t0 - 1) == 0
        assert lookup(0, t0) == 0
        assert lookup(0, t0 + 1) == 1
        assert lookup(0, t0 + 2000) == 2          # first of two equal timestamps
        assert lookup(0, t0 + 2500) == 4          # first offset whose timestamp >= target
        assert lookup(0, t0 + 7000) == 4
        assert lookup(0, t0 + 7001) == OFFSET_END  # none: -1
        assert lookup(1, t0 + 400) == 0
        assert lookup(1, t0 + 501) == OFFSET_END
        res = c.offsets_for_times([TopicPartition(topic, 0, t0 + 1500), TopicPartition(topic, 1, t0)], timeout=10)
        assert sorted((r.partition, r.offset) for r in res) == [(0, 2), (1, 0)]

        # earliest / latest
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 6)
        assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=10, cached=False) == (0, 1)
    finally:
        c.close()

    # seeking to a looked-up offset reads exactly from there
    recs = consume_confluent(server.bootstrap, topic, {0: 6}, starts={0: 4})
    assert [(r.offset, r.key, r.timestamp) for r in recs] == [(4, b"k4", t0 + 7000), (5, b"k5", t0 + 3000)]


def test_seek_to_end_reads_only_new_records(server):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    topic = unique("oft-logical")
    create_topic(server.bootstrap, topic, 1)
    assert_all_delivered(produce_confluent(server.bootstrap, topic, [Msg(0, None, f"{i}".encode()) for i in range(5)]))
    c = KafkaConsumer(bootstrap_servers=server.bootstrap, enable_auto_commit=False)
    try:
        tp = KTP(topic, 0)
        c.assign([tp])
        c.seek_to_end(tp)
        assert c.position(tp) == 5  # resolved through ListOffsets(latest)
        assert_all_delivered(produce_confluent(server.bootstrap, topic, [Msg(0, None, b"new")]))
        got = []
        deadline = time.monotonic() + 30
        while not got:
            assert time.monotonic() < deadline, "no new message after seek_to_end"
            for rs in c.poll(200).values():
                got.extend(rs)
        assert [(r.offset, r.value) for r in got] == [(5, b"new")]
        c.seek_to_beginning(tp)
        assert c.position(tp) == 0  # ListOffsets(earliest)
    finally:
        c.close()
    recs = consume_confluent(server.bootstrap, topic, {0: 6}, starts={0: OFFSET_BEGINNING})
    assert [r.value for r in recs] == [b"0", b"1", b"2", b"3", b"4", b"new"]


def test_kafka_python_offsets_for_times(server):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    topic = unique("oft-kp")
    create_topic(server.bootstrap, topic, 2)
    t0 = now_ms() - 3_600_000
    msgs = [Msg(0, f"k{i}".encode(), f"v{i}".encode(), (), t0 + s) for i, s in enumerate(STAMPS)]
    assert_all_delivered(kp_produce(server.bootstrap, topic, msgs))
    c = KafkaConsumer(bootstrap_servers=server.bootstrap, enable_auto_commit=False)
    try:
        p0, p1 = KTP(topic, 0), KTP(topic, 1)
        res = c.offsets_for_times({p0: t0 + 1500})
        assert (res[p0].offset, res[p0].timestamp) == (2, t0 + 2000)
        res = c.offsets_for_times({p0: t0 + 2500})
        assert (res[p0].offset, res[p0].timestamp) == (4, t0 + 7000)
        res = c.offsets_for_times({p0: t0})
        assert (res[p0].offset, res[p0].timestamp) == (0, t0)
        assert c.offsets_for_times({p0: t0 + 7001}) == {p0: None}
        assert c.offsets_for_times({p1: t0}) == {p1: None}  # empty partition
        assert c.beginning_offsets([p0, p1]) == {p0: 0, p1: 0}
        assert c.end_offsets([p0, p1]) == {p0: 6, p1: 0}

        c.assign([p0])
        c.seek(p0, 4)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 2:
            assert time.monotonic() < deadline
            for rs in c.poll(200).values():
                got.extend(rs)
        assert [(r.offset, r.key, r.timestamp) for r in got] == [(4, b"k4", t0 + 7000), (5, b"k5", t0 + 3000)]
    finally:
        c.close()

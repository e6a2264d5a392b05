"""Restarts: graceful SIGTERM loses nothing; SIGKILL loses no acknowledged write."""

from __future__ import annotations

import threading
import time
from typing import Dict, List, Tuple

from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, ConfigSource

from helpers import (
    Member,
    Msg,
    admin_client,
    assert_all_delivered,
    assert_offsets_in_produce_order,
    assert_records_match,
    consume_confluent,
    create_topic,
    now_ms,
    poll_until,
    produce_confluent,
    sample_messages,
    unique,
    wait_until,
    watermarks,
)

T = 30


def committed_offsets(bootstrap: str, group: str, topic: str, partitions) -> Dict[int, int]:
    admin = admin_client(bootstrap)
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    res = admin.list_consumer_group_offsets([req], request_timeout=T)[group].result(timeout=T)
    return {tp.partition: tp.offset for tp in res.topic_partitions}


def test_graceful_restart_loses_nothing(server):
    topic, group = unique("restart"), unique("g-restart")
    create_topic(server.bootstrap, topic, 3, config={"retention.ms": "86400000"})
    base = now_ms() - 60_000
    msgs = sample_messages(3, 100, base)
    plain = produce_confluent(server.bootstrap, topic, msgs[:150], {"acks": "all"})
    packed = produce_confluent(server.bootstrap, topic, msgs[150:], {"acks": "all", "compression.type": "lz4"})
    deliveries = plain + packed
    assert_all_delivered(deliveries)
    assert_offsets_in_produce_order(deliveries)

    member = Member(server.bootstrap, group, topic)
    try:
        poll_until([member], lambda: member.assignment() == {0, 1, 2}, "member assigned")
        member.commit({0: 50, 1: 60, 2: 70})
    finally:
        member.close()
    admin = admin_client(server.bootstrap)
    low = admin.delete_records([TopicPartition(topic, 0, 10)], request_timeout=T)
    assert list(low.values())[0].result(timeout=T).low_watermark == 10

    rc = server.restart()
    assert rc == 0, f"gateway exited with {rc} after SIGTERM (expected a clean 0)"

    assert watermarks(server.bootstrap, topic, range(3)) == {0: (10, 100), 1: (0, 100), 2: (0, 100)}
    consumed = consume_confluent(server.bootstrap, topic, {0: 100, 1: 100, 2: 100})
    assert_records_match(consumed, [d for d in deliveries if not (d.partition == 0 and d.offset < 10)])
    assert committed_offsets(server.bootstrap, group, topic, range(3)) == {0: 50, 1: 60, 2: 70}
    admin = admin_client(server.bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    cfg = admin.describe_configs([res], request_timeout=T)[res].result(timeout=T)
    assert cfg["retention.ms"].value == "86400000"
    assert ConfigSource(cfg["retention.ms"].source) == ConfigSource.DYNAMIC_TOPIC_CONFIG

    # appends continue after the recovered log end
    more = produce_confluent(server.bootstrap, topic, [Msg(p, b"after", b"restart") for p in range(3)])
    assert_all_delivered(more)
    assert sorted((d.partition, d.offset) for d in more) == [(0, 100), (1, 100), (2, 100)]


def test_sigkill_during_produce_keeps_acknowledged(server):
    topic = unique("sigkill")
    partitions = 2
    create_topic(server.bootstrap, topic, partitions)
    acked: List[Tuple[bytes, int, int]] = []
    failed: List[bytes] = []
    produced = [0]
    lock = threading.Lock()
    stop = threading.Event()
    errors: List[BaseException] = []

    def on_delivery(err, msg):
        with lock:
            if err is None:
                acked.append((msg.key(), msg.partition(), msg.offset()))
            else:
                failed.append(msg.key())

    def produce_loop():
        try:
            p = Producer({
                "bootstrap.servers": server.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 1,
                "message.timeout.ms": 5000,
                "reconnect.backoff.max.ms": 500,
            })
            deadline = time.monotonic() + 120
            i = 0
            while not stop.is_set() and i < 2_000_000 and time.monotonic() < deadline:
                key = f"key-{i:08d}".encode()
                try:
                    p.produce(topic, key=key, value=b"value-" + key, partition=i % partitions,
                              on_delivery=on_delivery)
                    i += 1
                    produced[0] = i
                except BufferError:
                    p.poll(0.01)
                p.poll(0)
            p.flush(30)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    t = threading.Thread(target=produce_loop, name="sigkill-producer", daemon=True)
    t.start()
    try:
        wait_until(lambda: len(acked) >= 5000 or errors, "5000 acknowledged messages before the crash", timeout=60)
        assert not errors, errors
        server.kill()
        produced_at_kill = produced[0]
        with lock:
            acked_at_kill = len(acked)
    finally:
        stop.set()
        t.join(timeout=60)
    assert not t.is_alive(), "producer thread did not finish"
    assert not errors, errors
    assert produced_at_kill > acked_at_kill, "the producer was not mid-stream when the server died"

    server.start()
    by_partition: Dict[int, Dict[int, bytes]] = {p: {} for p in range(partitions)}
    for key, p, off in acked:
        by_partition[p][off] = key
    marks = watermarks(server.bootstrap, topic, range(partitions))
    for p in range(partitions):
        top = max(by_partition[p], default=-1)
        assert marks[p][0] == 0
        assert marks[p][1] >= top + 1, f"partition {p}: high watermark {marks[p][1]} below acked offset {top}"
    log = consume_confluent(server.bootstrap, topic, {p: marks[p][1] for p in range(partitions)}, timeout=120)
    stored = {(r.partition, r.offset): (r.key, r.value) for r in log}
    missing = [(p, off, key) for p in by_partition for off, key in by_partition[p].items()
               if stored.get((p, off)) != (key, b"value-" + key)]
    assert not missing, f"{len(missing)} acknowledged messages lost or changed after SIGKILL, e.g. {missing[:5]}"
    keys = [r.key for r in log]
    assert len(keys) == len(set(keys)), "idempotent producer's messages duplicated in the log"
    # every partition is dense: offsets 0..hw-1 all readable
    for p in range(partitions):
        assert sorted(off for (pp, off) in stored if pp == p) == list(range(marks[p][1]))

    more = produce_confluent(server.bootstrap, topic, [Msg(0, b"after-crash", b"ok")])
    assert_all_delivered(more)
    assert more[0].offset == marks[0][1]


def test_commits_and_topics_survive_sigkill(server):
    topic, group = unique("kill-meta"), unique("g-kill")
    create_topic(server.bootstrap, topic, 2, config={"cleanup.policy": "compact"})
    d = produce_confluent(server.bootstrap, topic, [Msg(p, f"k{p}-{i}".encode(), b"v") for p in range(2)
                                                    for i in range(5)])
    assert_all_delivered(d)
    member = Member(server.bootstrap, group, topic)
    try:
        poll_until([member], lambda: member.assignment() == {0, 1}, "member assigned")
        member.commit({0: 3, 1: 4})
    finally:
        member.close()
    server.kill()
    server.start()
    wait_until(lambda: watermarks(server.bootstrap, topic, [0, 1]) == {0: (0, 5), 1: (0, 5)}, "log recovered")
    assert committed_offsets(server.bootstrap, group, topic, [0, 1]) == {0: 3, 1: 4}
    admin = admin_client(server.bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    assert admin.describe_configs([res], request_timeout=T)[res].result(timeout=T)["cleanup.policy"].value == "compact"
    assert_records_match(consume_confluent(server.bootstrap, topic, {0: 5, 1: 5}), d)


def test_corrupted_bytes_on_disk_are_answered_corrupt_message_never_served(server):
    """A batch whose bytes change on disk after it was written fails its CRC on read: Fetch
    answers CORRUPT_MESSAGE for it, the batch before it is served intact, and no consumer ever
    receives the altered bytes."""
    from confluent_kafka import Consumer, KafkaError

    topic = unique("crc")
    create_topic(server.bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 0})
    for v in (b"first-value", b"second-value", b"third-value"):
        p.produce(topic, value=v, partition=0)
        assert p.flush(T) == 0  # one batch each, offsets 0, 1, 2
    seg = sorted((server.data_dir / "logs" / f"{topic}-0").glob("*.log"))[0]
    data = seg.read_bytes()
    at = data.index(b"second-value")
    with open(seg, "r+b") as f:  # what a bad disk or a stray write does to the file
        f.seek(at)
        f.write(b"SECOND")
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": unique("crc-g"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got, errors = [], []
    deadline = time.time() + 20
    while time.time() < deadline and not errors:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            errors.append(m.error().code())
        else:
            got.append((m.offset(), m.value()))
    c.close()
    assert got == [(0, b"first-value")]
    # Kafka's CORRUPT_MESSAGE (code 2) is librdkafka's INVALID_MSG.
    assert errors and errors[0] == KafkaError.INVALID_MSG == 2, errors

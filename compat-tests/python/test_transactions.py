"""Kafka transactions with real clients (librdkafka through confluent-kafka, kafka-python):
commit visible and abort invisible to read_committed, the last stable offset holding back
read_committed readers while a transaction is open, consume-transform-produce with
send_offsets_to_transaction, zombie fencing, the coordinator aborting a timed-out
transaction, and the admin side (ListTransactions, DescribeTransactions, DescribeProducers,
abort through WriteTxnMarkers)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP

from helpers import (
    confluent_consumer,
    create_topic,
    kp_admin,
    unique,
    wait_until,
)


def txn_producer(bootstrap: str, tid: str, **conf) -> Producer:
    base = {"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5}
    base.update(conf)
    p = Producer(base)
    p.init_transactions(30)
    return p


def send(p: Producer, topic: str, partition: int, values):
    for v in values:
        p.produce(topic, value=v.encode(), key=v.encode(), partition=partition)
    assert p.flush(30) == 0


def read_all(bootstrap: str, topic: str, partitions, isolation: str, timeout: float = 30.0):
    """Every record a consumer of `isolation` level gets until its position reaches the end
    its ListOffsets reports (the last stable offset for read_committed), per partition, as
    (offset, value) lists."""
    c = confluent_consumer(bootstrap, **{"isolation.level": isolation})
    try:
        ends = {}
        for p in partitions:
            _, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            ends[p] = hi
        c.assign([TopicPartition(topic, p, 0) for p in partitions])
        out = {p: [] for p in partitions}
        deadline = time.monotonic() + timeout
        while True:
            pos = {tp.partition: tp.offset for tp in c.position([TopicPartition(topic, p) for p in partitions])}
            if all(ends[p] == 0 or pos.get(p, -1) >= ends[p] for p in partitions):
                return ends, out
            assert time.monotonic() < deadline, f"positions {pos}, ends {ends}, got {out}"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            out[m.partition()].append((m.offset(), m.value().decode()))
    finally:
        c.close()


def kp_read_committed(bootstrap: str, topic: str, end: int, timeout: float = 30.0):
    """(offset, value) of what a kafka-python read_committed consumer of partition 0 gets from
    offset 0 until its position reaches `end`."""
    kc = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                       enable_auto_commit=False)
    try:
        kc.assign([KTP(topic, 0)])
        kc.seek(KTP(topic, 0), 0)
        seen = []
        deadline = time.monotonic() + timeout
        while kc.position(KTP(topic, 0)) < end:
            assert time.monotonic() < deadline, seen
            for recs in kc.poll(timeout_ms=500).values():
                seen += [(r.offset, r.value.decode()) for r in recs]
        return seen
    finally:
        kc.close()


def test_commit_visible_abort_hidden_with_librdkafka_and_kafka_python(server):
    t = unique("txn")
    create_topic(server.bootstrap, t, 2)
    p = txn_producer(server.bootstrap, unique("tid"))
    p.begin_transaction()
    send(p, t, 0, ["c0", "c1", "c2"])
    send(p, t, 1, ["d0", "d1"])
    p.commit_transaction(30)
    p.begin_transaction()
    send(p, t, 0, ["x0", "x1", "x2", "x3"])
    p.abort_transaction(30)
    p.begin_transaction()
    send(p, t, 0, ["a", "b"])
    p.commit_transaction(30)

    # p0: c0-c2 @0-2, COMMIT @3, x0-x3 @4-7, ABORT @8, a b @9-10, COMMIT @11; p1: d0 d1, COMMIT @2.
    ends, got = read_all(server.bootstrap, t, [0, 1], "read_committed")
    assert ends == {0: 12, 1: 3}
    assert got == {0: [(0, "c0"), (1, "c1"), (2, "c2"), (9, "a"), (10, "b")],
                   1: [(0, "d0"), (1, "d1")]}
    ends, got = read_all(server.bootstrap, t, [0, 1], "read_uncommitted")
    assert ends == {0: 12, 1: 3}
    assert got[0] == [(0, "c0"), (1, "c1"), (2, "c2"), (4, "x0"), (5, "x1"), (6, "x2"), (7, "x3"),
                      (9, "a"), (10, "b")]

    assert kp_read_committed(server.bootstrap, t, 12) == [
        (0, "c0"), (1, "c1"), (2, "c2"), (9, "a"), (10, "b")]


def test_open_transaction_holds_read_committed_at_the_last_stable_offset(server):
    t = unique("lso")
    create_topic(server.bootstrap, t, 1)
    p = txn_producer(server.bootstrap, unique("tid"))
    p.begin_transaction()
    send(p, t, 0, ["t0", "t1"])
    plain = Producer({"bootstrap.servers": server.bootstrap})
    plain.produce(t, value=b"plain", partition=0)
    assert plain.flush(30) == 0

    c = confluent_consumer(server.bootstrap, **{"isolation.level": "read_committed"})
    u = confluent_consumer(server.bootstrap, **{"isolation.level": "read_uncommitted"})
    try:
        # The last stable offset is the open transaction's first offset.
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=10, cached=False) == (0, 0)
        assert u.get_watermark_offsets(TopicPartition(t, 0), timeout=10, cached=False) == (0, 3)
        ends, got = read_all(server.bootstrap, t, [0], "read_uncommitted")
        assert got[0] == [(0, "t0"), (1, "t1"), (2, "plain")]
        c.assign([TopicPartition(t, 0, 0)])
        # Nothing while the transaction is open: a fetch long-polls at the LSO and returns empty.
        for _ in range(3):
            m = c.poll(0.5)
            assert m is None or m.error() is not None
        p.commit_transaction(30)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 3:
            assert time.monotonic() < deadline, got
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append((m.offset(), m.value().decode()))
        assert got == [(0, "t0"), (1, "t1"), (2, "plain")]
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=10, cached=False) == (0, 4)
    finally:
        c.close()
        u.close()


def test_consume_transform_produce_commits_offsets_only_with_the_transaction(server):
    src, dst, group = unique("in"), unique("out"), unique("ctp")
    create_topic(server.bootstrap, src, 1)
    create_topic(server.bootstrap, dst, 1)
    seed = Producer({"bootstrap.servers": server.bootstrap})
    for i in range(10):
        seed.produce(src, value=f"m{i}".encode(), partition=0)
    assert seed.flush(30) == 0

    c = confluent_consumer(server.bootstrap, **{"group.id": group, "isolation.level": "read_committed"})
    p = txn_producer(server.bootstrap, unique("tid"))
    try:
        c.subscribe([src])
        batch = []
        deadline = time.monotonic() + 30
        while len(batch) < 10:
            assert time.monotonic() < deadline
            m = c.poll(0.2)
            if m is not None and not m.error():
                batch.append(m)

        def committed():
            return c.committed([TopicPartition(src, 0)], timeout=10)[0].offset

        # First 4 in an aborted transaction: output hidden, offsets not committed.
        p.begin_transaction()
        send(p, dst, 0, [m.value().decode().upper() for m in batch[:4]])
        p.send_offsets_to_transaction([TopicPartition(src, 0, 4)], c.consumer_group_metadata(), 30)
        assert committed() < 0  # not visible before the commit
        p.abort_transaction(30)
        assert committed() < 0
        # All 10 committed together with their output.
        p.begin_transaction()
        send(p, dst, 0, [m.value().decode().upper() for m in batch])
        p.send_offsets_to_transaction([TopicPartition(src, 0, 10)], c.consumer_group_metadata(), 30)
        assert committed() < 0
        p.commit_transaction(30)
        assert committed() == 10
    finally:
        c.close()
    _, got = read_all(server.bootstrap, dst, [0], "read_committed")
    assert [v for _, v in got[0]] == [f"M{i}" for i in range(10)]
    assert [o for o, _ in got[0]] == list(range(5, 15))


def test_second_instance_fences_the_zombie_and_aborts_its_transaction(server):
    t, tid = unique("zombie"), unique("tid")
    create_topic(server.bootstrap, t, 1)
    old = txn_producer(server.bootstrap, tid)
    old.begin_transaction()
    send(old, t, 0, ["zombie-1"])
    new = txn_producer(server.bootstrap, tid)  # bumps the epoch, aborts the open transaction
    with pytest.raises(KafkaException) as e:
        old.produce(t, value=b"zombie-2", partition=0)
        old.flush(10)
        old.commit_transaction(10)
    assert e.value.args[0].code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                      KafkaError.INVALID_PRODUCER_EPOCH)
    new.begin_transaction()
    send(new, t, 0, ["fresh"])
    new.commit_transaction(30)
    _, got = read_all(server.bootstrap, t, [0], "read_committed")
    assert [v for _, v in got[0]] == ["fresh"]
    _, raw = read_all(server.bootstrap, t, [0], "read_uncommitted")
    assert [v for _, v in raw[0]] == ["zombie-1", "fresh"]


def test_coordinator_aborts_a_timed_out_transaction(server_factory):
    srv = server_factory(sets={"transaction.abort.timed.out.transaction.cleanup.interval.ms": "100"})
    t, tid = unique("timeout"), unique("tid")
    create_topic(srv.bootstrap, t, 1)
    p = txn_producer(srv.bootstrap, tid, **{"transaction.timeout.ms": 1000})
    p.begin_transaction()
    send(p, t, 0, ["late-1", "late-2"])
    admin = kp_admin(srv.bootstrap)
    try:
        # The abort marker makes the transaction's end the last stable offset.
        wait_until(lambda: admin.describe_transactions([tid])[tid].state.value == "CompleteAbort",
                   "transaction aborted by the coordinator", timeout=30)
        d = admin.describe_transactions([tid])[tid]
        assert d.producer_epoch == 1 and d.topic_partitions == set()
    finally:
        admin.close()
    with pytest.raises(KafkaException):
        p.commit_transaction(10)
    ends, got = read_all(srv.bootstrap, t, [0], "read_committed")
    assert ends == {0: 3} and got == {0: []}


def test_kafka_python_transactions_and_admin_views(server):
    t, tid = unique("kp-txn"), unique("kp-tid")
    create_topic(server.bootstrap, t, 1)
    p = KafkaProducer(bootstrap_servers=server.bootstrap, transactional_id=tid)
    p.init_transactions()
    p.begin_transaction()
    for i in range(3):
        p.send(t, key=b"k", value=f"ok{i}".encode(), partition=0)
    p.commit_transaction()
    p.begin_transaction()
    p.send(t, key=b"k", value=b"dropped", partition=0)
    p.flush()
    admin = kp_admin(server.bootstrap)
    try:
        d = admin.describe_transactions([tid])[tid]
        assert d.state.value == "Ongoing"
        assert {(tp.topic, tp.partition) for tp in d.topic_partitions} == {(t, 0)}
        assert d.transaction_start_time_ms > 0
        listed = [x for xs in admin.list_transactions().values() for x in xs]
        mine = [x for x in listed if x.transactional_id == tid]
        assert len(mine) == 1 and mine[0].state.value == "Ongoing"
        assert mine[0].producer_id == d.producer_id
        ongoing = [x for xs in admin.list_transactions(state_filters=["Ongoing"]).values() for x in xs]
        assert tid in [x.transactional_id for x in ongoing]
        prod = admin.describe_producers([KTP(t, 0)])[KTP(t, 0)].active_producers
        assert [(s.producer_id, s.current_transaction_start_offset) for s in prod] == [(d.producer_id, 4)]
        p.abort_transaction()
        d = admin.describe_transactions([tid])[tid]
        assert d.state.value == "CompleteAbort"
        prod = admin.describe_producers([KTP(t, 0)])[KTP(t, 0)].active_producers
        assert [s.current_transaction_start_offset for s in prod] == [-1]
    finally:
        admin.close()
        p.close()
    assert [v for _, v in kp_read_committed(server.bootstrap, t, 6)] == ["ok0", "ok1", "ok2"]


def test_admin_abort_of_a_hanging_transaction_through_write_txn_markers(server):
    from kafka.admin import AbortTransactionSpec

    t = unique("hang")
    create_topic(server.bootstrap, t, 1)
    p = txn_producer(server.bootstrap, unique("tid"))
    p.begin_transaction()
    send(p, t, 0, ["h0", "h1"])
    admin = kp_admin(server.bootstrap)
    try:
        prod = admin.describe_producers([KTP(t, 0)])[KTP(t, 0)].active_producers
        assert len(prod) == 1 and prod[0].current_transaction_start_offset == 0
        s = prod[0]
        admin.abort_transaction(AbortTransactionSpec(topic_partition=KTP(t, 0), producer_id=s.producer_id,
                                                     producer_epoch=s.producer_epoch, coordinator_epoch=-1))
        prod = admin.describe_producers([KTP(t, 0)])[KTP(t, 0)].active_producers
        assert prod[0].current_transaction_start_offset == -1
    finally:
        admin.close()
    ends, got = read_all(server.bootstrap, t, [0], "read_committed")
    assert ends == {0: 3} and got == {0: []}


def test_transaction_timeout_above_the_maximum_is_refused(server_factory):
    srv = server_factory(sets={"transaction.max.timeout.ms": "5000"})
    p = Producer({"bootstrap.servers": srv.bootstrap, "transactional.id": unique("tid"),
                  "transaction.timeout.ms": 6000})
    with pytest.raises(KafkaException) as e:
        p.init_transactions(10)
    assert e.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT


def test_transactions_survive_kill_9(server):
    """Committed, aborted and open transactions across a SIGKILL: the partition rebuilds its
    open and aborted transactions from the log, the coordinator its table from disk; the
    open one is aborted when its producer comes back."""
    t, tid = unique("crash"), unique("tid")
    create_topic(server.bootstrap, t, 1)
    p = txn_producer(server.bootstrap, tid)
    p.begin_transaction()
    send(p, t, 0, ["c0", "c1"])
    p.commit_transaction(30)
    p.begin_transaction()
    send(p, t, 0, ["x0"])
    p.abort_transaction(30)
    p.begin_transaction()
    send(p, t, 0, ["open0", "open1"])
    server.kill()
    server.start()
    # c0 c1 @0-1, COMMIT @2, x0 @3, ABORT @4, open0 open1 @5-6: the LSO is 5.
    ends, got = read_all(server.bootstrap, t, [0], "read_committed")
    assert ends == {0: 5}
    assert got == {0: [(0, "c0"), (1, "c1")]}
    admin = kp_admin(server.bootstrap)
    try:
        assert admin.describe_transactions([tid])[tid].state.value == "Ongoing"
    finally:
        admin.close()
    again = txn_producer(server.bootstrap, tid)  # aborts the open transaction
    again.begin_transaction()
    send(again, t, 0, ["after"])
    again.commit_transaction(30)
    ends, got = read_all(server.bootstrap, t, [0], "read_committed")
    assert ends == {0: 10}
    assert got == {0: [(0, "c0"), (1, "c1"), (8, "after")]}

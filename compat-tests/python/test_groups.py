"""Consumer groups with confluent-kafka: eager split + commit + resume,
cooperative-sticky incremental rebalancing, static membership."""

from __future__ import annotations

import time
from typing import List

from confluent_kafka import ConsumerGroupState

from helpers import (
    GROUP_DEADLINE_S,
    Member,
    Msg,
    admin_client,
    assert_all_delivered,
    create_topic,
    now_ms,
    poll_until,
    produce_confluent,
    unique,
)

PARTITIONS = 4


def split_evenly(a: Member, b: Member) -> bool:
    x, y = a.assignment(), b.assignment()
    return len(x) == PARTITIONS // 2 and len(y) == PARTITIONS // 2 and not (x & y) and (x | y) == set(range(PARTITIONS))


def messages(batch: str, per_partition: int, base_ts: int) -> List[Msg]:
    return [Msg(p, f"{batch}-{p}-{i}".encode(), f"{batch} value {p}/{i}".encode(), (("batch", batch.encode()),),
                base_ts + i) for i in range(per_partition) for p in range(PARTITIONS)]


def test_group_split_commit_and_resume(server):
    topic, group = unique("grp"), unique("g")
    create_topic(server.bootstrap, topic, PARTITIONS)
    c1 = Member(server.bootstrap, group, topic)
    c2 = Member(server.bootstrap, group, topic)
    members = [c1, c2]
    try:
        poll_until(members, lambda: split_evenly(c1, c2), "two members to split 4 partitions 2/2")
        a1, a2 = c1.assignment(), c2.assignment()

        deliveries = produce_confluent(server.bootstrap, topic, messages("a", 10, now_ms() - 60_000))
        assert_all_delivered(deliveries)
        by_key = {d.msg.key: d for d in deliveries}
        poll_until(members, lambda: len(c1.records) + len(c2.records) >= 40, "40 messages consumed by the group")
        for m, owned in ((c1, a1), (c2, a2)):
            assert {r.partition for r in m.records} == owned
            for p in owned:
                recs = [r for r in m.records if r.partition == p]
                assert [r.offset for r in recs] == list(range(10)), f"partition {p} consumed in order once"
                for r in recs:
                    d = by_key[r.key]
                    assert (d.partition, d.offset, r.value) == (r.partition, r.offset, d.msg.value)
        assert len(c1.records) + len(c2.records) == 40

        # commit offset 6 (= next message to read) on every partition, each by its owner
        c1.commit({p: 6 for p in a1})
        c2.commit({p: 6 for p in a2})
        assert c1.committed(a1) == {p: 6 for p in a1}
        assert c2.committed(a2) == {p: 6 for p in a2}
    finally:
        for m in members:
            m.close()

    # a new member of the same group takes over everything and resumes at 6
    c3 = Member(server.bootstrap, group, topic)
    try:
        poll_until([c3], lambda: c3.assignment() == set(range(PARTITIONS)), "new member assigned all partitions")
        assert c3.committed(range(PARTITIONS)) == {p: 6 for p in range(PARTITIONS)}
        poll_until([c3], lambda: len(c3.records) >= 16, "the 16 uncommitted messages")
        got = sorted((r.partition, r.offset, r.key) for r in c3.records)
        assert got == sorted((p, i, f"a-{p}-{i}".encode()) for p in range(PARTITIONS) for i in range(6, 10))
        assert c3.positions(range(PARTITIONS)) == {p: 10 for p in range(PARTITIONS)}
    finally:
        c3.close()


def test_cooperative_sticky_incremental_rebalance(server):
    topic, group = unique("coop"), unique("g-coop")
    create_topic(server.bootstrap, topic, PARTITIONS)
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    c1 = Member(server.bootstrap, group, topic, **conf)
    members = [c1]
    try:
        poll_until(members, lambda: c1.assignment() == set(range(PARTITIONS)), "first member owns all partitions")
        assert c1.nonempty_events() == [("assign", set(range(PARTITIONS)))]

        base_ts = now_ms() - 60_000
        assert_all_delivered(produce_confluent(server.bootstrap, topic, messages("a", 5, base_ts)))
        poll_until(members, lambda: len(c1.records) >= 20, "batch a consumed by the only member")
        c1.commit({p: 5 for p in range(PARTITIONS)})

        c2 = Member(server.bootstrap, group, topic, **conf)
        members.append(c2)
        poll_until(members, lambda: split_evenly(c1, c2), "cooperative split 2/2")
        moved = c2.assignment()
        kept = c1.assignment()
        # incremental: c1 only ever lost the partitions that moved, never the kept ones
        assert c1.nonempty_events() == [("assign", set(range(PARTITIONS))), ("revoke", moved)], c1.events
        assert c2.nonempty_events() == [("assign", moved)], c2.events
        assert all(kind != "lost" for kind, _ in c1.events + c2.events)

        assert_all_delivered(produce_confluent(server.bootstrap, topic, messages("b", 5, base_ts + 100)))
        poll_until(members, lambda: len(c1.records) + len(c2.records) >= 40, "batches a and b consumed")
        all_recs = c1.records + c2.records
        seen = [(r.partition, r.offset) for r in all_recs]
        assert sorted(seen) == sorted((p, o) for p in range(PARTITIONS) for o in range(10)), "each message exactly once"
        assert {r.partition for r in c2.records} == moved
        assert {r.partition for r in c1.records if r.key.startswith(b"b-")} == kept
        assert sorted(r.key for r in c2.records) == sorted(f"b-{p}-{i}".encode() for p in moved for i in range(5))
    finally:
        for m in members:
            m.close()


def test_static_member_rejoins_without_rebalance(server):
    topic, group = unique("static"), unique("g-static")
    create_topic(server.bootstrap, topic, PARTITIONS)
    dynamic = Member(server.bootstrap, group, topic)
    members = [dynamic]
    static = None
    try:
        poll_until(members, lambda: dynamic.assignment() == set(range(PARTITIONS)), "dynamic member owns everything")
        static = Member(server.bootstrap, group, topic, **{"group.instance.id": "static-a",
                                                           "session.timeout.ms": 30000})
        members.append(static)
        poll_until(members, lambda: split_evenly(dynamic, static), "static member joins and takes 2 partitions")
        static_parts = static.assignment()
        dynamic_events = list(dynamic.events)

        admin = admin_client(server.bootstrap)
        desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        assert desc.state == ConsumerGroupState.STABLE
        assert sorted((m.group_instance_id or "") for m in desc.members) == ["", "static-a"]
        old_member_id = next(m.member_id for m in desc.members if m.group_instance_id == "static-a")

        # close the static member: it does not leave the group (KIP-345) ...
        static.close()
        members.remove(static)
        static = None
        # ... and a new process with the same group.instance.id takes its place
        static = Member(server.bootstrap, group, topic, **{"group.instance.id": "static-a",
                                                           "session.timeout.ms": 30000})
        members.append(static)
        poll_until(members, lambda: static.assignment() == static_parts, "static member gets its partitions back")

        assert dynamic.events == dynamic_events, "the dynamic member saw a rebalance"
        assert dynamic.assignment() == set(range(PARTITIONS)) - static_parts
        assert static.nonempty_events() == [("assign", static_parts)]
        desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        assert desc.state == ConsumerGroupState.STABLE
        assert len(desc.members) == 2
        new_member = next(m for m in desc.members if m.group_instance_id == "static-a")
        assert new_member.member_id != old_member_id
        assert {tp.partition for tp in new_member.assignment.topic_partitions} == static_parts
    finally:
        for m in members:
            m.close()


def test_kafka_python_group_split_commit_and_resume(server):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    topic, group = unique("kp-grp"), unique("kp-g")
    create_topic(server.bootstrap, topic, PARTITIONS)

    def member():
        return KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, session_timeout_ms=10000, heartbeat_interval_ms=500)

    members = [member(), member()]
    got = {0: [], 1: []}

    def pump():
        for i, c in enumerate(members):
            for recs in c.poll(timeout_ms=50).values():
                got[i].extend(recs)

    def parts(c):
        return {tp.partition for tp in c.assignment()}

    def split():
        a, b = parts(members[0]), parts(members[1])
        return len(a) == 2 and len(b) == 2 and a | b == set(range(PARTITIONS))

    try:
        deadline = time.monotonic() + GROUP_DEADLINE_S
        while not split():
            assert time.monotonic() < deadline, "kafka-python members never split the partitions 2/2"
            pump()
        owned = [parts(c) for c in members]
        assert_all_delivered(produce_confluent(server.bootstrap, topic, messages("a", 10, now_ms() - 60_000)))
        deadline = time.monotonic() + GROUP_DEADLINE_S
        while len(got[0]) + len(got[1]) < 40:
            assert time.monotonic() < deadline, f"only {len(got[0]) + len(got[1])} of 40 records consumed"
            pump()
        for i in (0, 1):
            assert {r.partition for r in got[i]} == owned[i]
            for p in owned[i]:
                assert [r.offset for r in got[i] if r.partition == p] == list(range(10))
        for i, c in enumerate(members):
            c.commit({KTP(topic, p): OffsetAndMetadata(7, "", -1) for p in owned[i]})
    finally:
        for c in members:
            c.close()

    c = member()
    try:
        rest = []
        deadline = time.monotonic() + GROUP_DEADLINE_S
        while len(rest) < 12:
            assert time.monotonic() < deadline, f"resumed member read {len(rest)} of 12 records"
            for recs in c.poll(timeout_ms=100).values():
                rest.extend(recs)
        assert sorted((r.partition, r.offset, r.key) for r in rest) == \
            sorted((p, i, f"a-{p}-{i}".encode()) for p in range(PARTITIONS) for i in range(7, 10))
        assert {p: c.committed(KTP(topic, p)) for p in range(PARTITIONS)} == {p: 7 for p in range(PARTITIONS)}
    finally:
        c.close()

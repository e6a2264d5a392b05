"""Replicated cluster: real gateway processes started by scripts/cluster, real clients
(confluent-kafka / librdkafka), real faults (SIGKILL, SIGSTOP).

Every test checks exact outcomes: every acknowledged record is read back at its offset with its
value, ISR membership and leaders as reported by Metadata, and error codes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import gateway_binary
from helpers import unique, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "cluster"


class Cluster:
    def __init__(self, root: Path, n: int, extra: List[str]):
        self.root = root
        self.n = n
        env = dict(os.environ)
        env["GATEWAY_BIN"] = str(gateway_binary())
        args = [str(SCRIPT), "up", str(n), str(root)]
        for e in extra:
            args += ["--set", e]
        subprocess.run(args, check=True, env=env, timeout=120)
        self.bootstrap = (root / "bootstrap").read_text().strip()

    def pid(self, node: int) -> int:
        return int((self.root / f"node-{node}.pid").read_text().strip())

    def kafka_addr(self, node: int) -> str:
        fields = dict(f.split("=", 1) for f in (self.root / f"node-{node}.ports").read_text().split())
        return fields["kafka"]

    def kill(self, node: int, sig=signal.SIGKILL):
        os.kill(self.pid(node), sig)
        if sig == signal.SIGKILL:
            wait_until(lambda: not _alive(self.pid(node)), f"node {node} to die", timeout=10)

    def restart(self, node: int):
        subprocess.run(["sh", str(self.root / f"node-{node}.cmd")], check=True)

    def metric(self, node: int, name: str, topic: str, partition: int = 0) -> float | None:
        """A partition gauge from the node's Prometheus endpoint."""
        import urllib.request

        fields = dict(f.split("=", 1) for f in (self.root / f"node-{node}.ports").read_text().split())
        body = urllib.request.urlopen(f"http://{fields['metrics']}/metrics", timeout=5).read().decode()
        for line in body.splitlines():
            if line.startswith(name + "{") and f'topic="{topic}"' in line and f'partition="{partition}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return None

    def counter(self, node: int, name: str, label: str) -> float:
        """A counter with the given label (e.g. 'side="leader"'), 0 if not yet counted."""
        import urllib.request

        fields = dict(f.split("=", 1) for f in (self.root / f"node-{node}.ports").read_text().split())
        body = urllib.request.urlopen(f"http://{fields['metrics']}/metrics", timeout=5).read().decode()
        for line in body.splitlines():
            if line.startswith(name + "{") and label in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def add(self) -> int:
        """Starts one more node (scripts/cluster add); returns its id."""
        env = dict(os.environ)
        env["GATEWAY_BIN"] = str(gateway_binary())
        subprocess.run([str(SCRIPT), "add", str(self.root)], check=True, env=env, timeout=120)
        self.n += 1
        self.bootstrap = (self.root / "bootstrap").read_text().strip()
        return self.n

    def down(self):
        subprocess.run([str(SCRIPT), "down", str(self.root)], check=False, timeout=60)

    def admin(self, bootstrap: str | None = None) -> AdminClient:
        return AdminClient({"bootstrap.servers": bootstrap or self.bootstrap})

    def partition(self, topic: str, p: int, bootstrap: str | None = None):
        md = self.admin(bootstrap).list_topics(topic, timeout=10)
        return md.topics[topic].partitions[p]

    def other_bootstrap(self, exclude: int) -> str:
        return ",".join(self.kafka_addr(i) for i in range(1, self.n + 1) if i != exclude)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by the shell that started it) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def running_cluster(tmp_path, request, n: int, extra: List[str]):
    """A cluster for a fixture to yield from: taken down afterwards, its node logs kept."""
    c = Cluster(tmp_path / "cluster", n, extra)
    yield c
    c.down()
    # Keep the node logs where the test runner collects logs.
    logs = Path(os.environ.get("TEST_LOG_DIR", REPO_ROOT / "target" / "test-logs")) / f"cluster-{request.node.name}"
    logs.mkdir(parents=True, exist_ok=True)
    for i in range(1, c.n + 1):
        log = tmp_path / "cluster" / f"node-{i}.log"
        if log.exists():
            (logs / f"node-{i}.log").write_bytes(log.read_bytes())


@pytest.fixture
def cluster(tmp_path, request):
    yield from running_cluster(tmp_path, request, getattr(request, "param", 3), [])


def create(c: Cluster, topic: str, partitions: int, rf: int, configs: Dict[str, str] | None = None):
    admin = c.admin()
    fs = admin.create_topics([NewTopic(topic, partitions, rf, config=configs or {})])
    fs[topic].result(timeout=30)
    # Every node applies the metadata; wait until leaders are known everywhere.
    for i in range(1, c.n + 1):
        wait_until(
            lambda: all(p.leader >= 0 for p in c.admin(c.kafka_addr(i)).list_topics(topic, timeout=5).topics[topic].partitions.values())
            and len(c.admin(c.kafka_addr(i)).list_topics(topic, timeout=5).topics[topic].partitions) == partitions,
            f"{topic} visible on node {i}",
        )


def read_all(bootstrap: str, topic: str, partition: int, until: int, timeout: float = 30) -> Dict[int, bytes]:
    """Reads partition from offset 0 until offset `until` (exclusive) has been seen."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("chk"), "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, 0)])
    got: Dict[int, bytes] = {}
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and (len(got) < until or max(got, default=-1) < until - 1):
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            got[m.offset()] = m.value()
    finally:
        c.close()
    return got


def produce_acked(bootstrap: str, topic: str, partition: int, count: int, prefix: str, **conf) -> Tuple[List[Tuple[int, bytes]], List[str]]:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2, **conf})
    acked: List[Tuple[int, bytes]] = []
    errors: List[str] = []

    def cb(err, msg):
        if err is not None:
            errors.append(err.name())
        else:
            acked.append((msg.offset(), msg.value()))

    for i in range(count):
        p.produce(topic, value=f"{prefix}-{i}".encode(), partition=partition, on_delivery=cb)
        p.poll(0)
    p.flush(60)
    return acked, errors


def test_acks_all_leader_sigkill_loses_nothing(cluster):
    topic = unique("fail")
    create(cluster, topic, 1, 3, {"min.insync.replicas": "2"})
    leader = cluster.partition(topic, 0).leader
    p = Producer({
        "bootstrap.servers": cluster.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 1,
        "message.timeout.ms": 60000,
    })
    acked: Dict[int, bytes] = {}
    failed: List[str] = []

    def cb(err, msg):
        if err is not None:
            failed.append(err.name())
        else:
            acked[msg.offset()] = msg.value()

    sent = 0

    def send_one():
        nonlocal sent
        # At most 500 records in flight, so the stream is steady rather than one burst.
        while sent - len(acked) - len(failed) >= 500:
            p.poll(0.005)
        p.produce(topic, value=f"v-{sent}".encode(), partition=0, on_delivery=cb)
        sent += 1
        p.poll(0)

    # Steady stream; SIGKILL the leader once 2000 records are acknowledged.
    while len(acked) < 2000:
        send_one()
    cluster.kill(leader)
    killed = time.time()
    before = len(acked)
    first_after = None
    deadline = time.time() + 60
    while time.time() < deadline and len(acked) < before + 2000:
        send_one()
        if first_after is None and len(acked) > before + 500:
            first_after = time.time()
    assert p.flush(60) == 0
    assert failed == []
    assert len(acked) == sent, "every record sent was acknowledged (idempotent producer retried through failover)"
    assert first_after is not None
    print(f"failover: leader {leader} killed -> produce acknowledged again after {first_after - killed:.2f} s")
    new = cluster.partition(topic, 0, cluster.other_bootstrap(leader))
    assert new.leader not in (leader, -1)
    assert leader not in new.isrs
    got = read_all(cluster.other_bootstrap(leader), topic, 0, max(acked) + 1)
    # Exactly the acknowledged records, each at its acknowledged offset, no gaps or duplicates.
    assert got == acked


def test_restarted_node_catches_up_and_rejoins_isr(cluster):
    topic = unique("rejoin")
    create(cluster, topic, 1, 3)
    part = cluster.partition(topic, 0)
    follower = [r for r in part.replicas if r != part.leader][0]
    cluster.kill(follower)
    acked, errors = produce_acked(cluster.bootstrap, topic, 0, 500, "a")
    assert errors == [] and len(acked) == 500
    wait_until(lambda: follower not in cluster.partition(topic, 0).isrs, "ISR shrink after the kill", timeout=30)
    cluster.restart(follower)
    others = cluster.other_bootstrap(follower)
    wait_until(lambda: sorted(cluster.partition(topic, 0, others).isrs) == sorted(part.replicas), "restarted node back in the ISR", timeout=60)
    # It holds every record: its log end and high watermark (from its own metrics, refreshed
    # every 200 ms) reach exactly 500.
    wait_until(lambda: cluster.metric(follower, "partition_log_end_offset", topic) == 500, "follower log end", timeout=10)
    wait_until(lambda: cluster.metric(follower, "partition_high_watermark", topic) == 500, "follower high watermark", timeout=10)
    # And it serves them once it leads: the leader goes away, the restarted node is one of
    # the two ISR members left; whichever leads, every record is there.
    cluster.kill(part.leader)
    b = cluster.other_bootstrap(part.leader)
    wait_until(lambda: cluster.partition(topic, 0, b).leader not in (-1, part.leader), "new leader", timeout=30)
    got = read_all(b, topic, 0, 500)
    assert got == dict(acked)


def test_paused_follower_leaves_and_rejoins_isr(cluster):
    topic = unique("pause")
    create(cluster, topic, 1, 3)
    part = cluster.partition(topic, 0)
    follower = [r for r in part.replicas if r != part.leader][0]
    cluster.kill(follower, signal.SIGSTOP)
    try:
        # acks=all still completes once the paused follower drops out of the ISR.
        acked, errors = produce_acked(cluster.bootstrap, topic, 0, 100, "p", **{"message.timeout.ms": 60000})
        assert errors == [] and len(acked) == 100
        isr = cluster.partition(topic, 0).isrs
        assert follower not in isr and part.leader in isr
    finally:
        os.kill(cluster.pid(follower), signal.SIGCONT)
    wait_until(lambda: follower in cluster.partition(topic, 0).isrs, "resumed follower back in the ISR", timeout=60)
    acked2, errors2 = produce_acked(cluster.bootstrap, topic, 0, 100, "q")
    assert errors2 == [] and [o for o, _ in acked2] == list(range(100, 200))


def test_min_insync_replicas_refuses_acks_all(cluster):
    topic = unique("minisr")
    create(cluster, topic, 1, 3, {"min.insync.replicas": "3"})
    part = cluster.partition(topic, 0)
    follower = [r for r in part.replicas if r != part.leader][0]
    cluster.kill(follower)
    wait_until(lambda: follower not in cluster.partition(topic, 0).isrs, "ISR shrink", timeout=30)
    acked, errors = produce_acked(cluster.bootstrap, topic, 0, 3, "m", **{"message.timeout.ms": 5000, "retries": 0})
    assert acked == []
    assert errors and set(errors) <= {"NOT_ENOUGH_REPLICAS", "_MSG_TIMED_OUT"}
    assert "NOT_ENOUGH_REPLICAS" in errors
    # acks=1 does not need the ISR.
    acked1, errors1 = produce_acked(cluster.bootstrap, topic, 0, 3, "one", acks="1")
    assert errors1 == [] and [o for o, _ in acked1] == [0, 1, 2]


# Five nodes: the metadata quorum (a majority of all nodes) must survive losing both replicas.
@pytest.mark.parametrize("cluster", [5], indirect=True)
def test_no_clean_leader_stays_unavailable_until_isr_member_returns(cluster):
    topic = unique("unclean")
    create(cluster, topic, 1, 2)
    part = cluster.partition(topic, 0)
    leader = part.leader
    follower = [r for r in part.replicas if r != leader][0]
    acked, errors = produce_acked(cluster.bootstrap, topic, 0, 50, "before")
    assert errors == [] and len(acked) == 50
    # The follower dies first: the ISR shrinks to the leader, which then takes more writes.
    cluster.kill(follower)
    wait_until(lambda: cluster.partition(topic, 0).isrs == [leader], "ISR is the leader alone", timeout=30)
    more, errors = produce_acked(cluster.bootstrap, topic, 0, 50, "only-leader")
    assert errors == [] and [o for o, _ in more] == list(range(50, 100))
    cluster.kill(leader)
    third = [i for i in range(1, cluster.n + 1) if i not in (leader, follower)][0]
    b3 = cluster.kafka_addr(third)
    wait_until(lambda: cluster.partition(topic, 0, b3).leader == -1, "partition offline", timeout=30)
    # The stale follower comes back: it is not in the ISR, so it must not lead (it lacks 50..99).
    cluster.restart(follower)
    wait_until(lambda: follower in [b.id for b in cluster.admin(b3).list_topics(timeout=5).brokers.values()], "follower registered", timeout=30)
    assert cluster.partition(topic, 0, b3).leader == -1
    # The last ISR member returns and leads again with all 100 records.
    cluster.restart(leader)
    wait_until(lambda: cluster.partition(topic, 0, b3).leader == leader, "ISR member leads again", timeout=30)
    got = read_all(b3, topic, 0, 100)
    assert got == dict(acked + more)


def test_controller_kill_elects_new_controller(cluster):
    a = cluster.admin()
    controller = a.describe_cluster().result(timeout=10).controller.id
    assert controller == a.list_topics(timeout=10).controller_id
    cluster.kill(controller)
    others = cluster.other_bootstrap(controller)

    survivors = cluster.admin(others)

    def new_controller():
        c = survivors.list_topics(timeout=5).controller_id
        return c not in (controller, -1) and c

    started = time.time()
    wait_until(new_controller, "a new controller", timeout=30)
    topic = unique("after")
    admin = cluster.admin(others)
    fs = admin.create_topics([NewTopic(topic, 2, 2)])
    fs[topic].result(timeout=30)
    print(f"controller {controller} killed -> topic created through the new controller after {time.time() - started:.2f} s")
    wait_until(lambda: all(p.leader >= 0 for p in cluster.admin(others).list_topics(topic, timeout=5).topics[topic].partitions.values()), "leaders for the new topic")
    acked, errors = produce_acked(others, topic, 1, 10, "c")
    assert errors == [] and [o for o, _ in acked] == list(range(10))


def test_preferred_leader_election_restores_leadership(cluster):
    from confluent_kafka import ElectionType

    topic = unique("pref")
    create(cluster, topic, 1, 3)
    part = cluster.partition(topic, 0)
    pref = part.replicas[0]
    assert part.leader == pref
    first, errors = produce_acked(cluster.bootstrap, topic, 0, 100, "a")
    assert errors == [] and len(first) == 100
    cluster.kill(pref)
    b = cluster.other_bootstrap(pref)
    wait_until(lambda: cluster.partition(topic, 0, b).leader not in (-1, pref), "failover", timeout=30)
    second, errors = produce_acked(b, topic, 0, 100, "b")
    assert errors == [] and [o for o, _ in second] == list(range(100, 200))
    cluster.restart(pref)
    wait_until(lambda: sorted(cluster.partition(topic, 0, b).isrs) == sorted(part.replicas), "preferred replica back in sync", timeout=60)
    assert cluster.partition(topic, 0, b).leader != pref
    admin = cluster.admin()
    tp = TopicPartition(topic, 0)
    result = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=30)
    assert result == {tp: None}
    wait_until(lambda: cluster.partition(topic, 0).leader == pref, "preferred replica leads", timeout=30)
    again = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=30)
    assert again[tp] is not None and again[tp].code() == 84  # ELECTION_NOT_NEEDED
    third, errors = produce_acked(cluster.bootstrap, topic, 0, 10, "c")
    assert errors == [] and [o for o, _ in third] == list(range(200, 210))
    got = read_all(cluster.bootstrap, topic, 0, 210)
    assert got == dict(first + second + third)


def test_added_node_takes_a_reassigned_replica_under_a_throttle(cluster):
    """kafka-reassign-partitions.sh's sequence: a new node joins, the throttles are set with
    IncrementalAlterConfigs, AlterPartitionReassignments moves a replica onto the new node,
    ListPartitionReassignments shows it moving while the throttle holds it back, and once the
    throttle is lifted the reassignment completes with every acknowledged record on the new
    replica set."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTP

    new = cluster.add()
    assert new == 4
    wait_until(lambda: sorted(cluster.admin().list_topics(timeout=5).brokers) == [1, 2, 3, 4], "4 brokers in Metadata")

    topic = unique("move")
    create(cluster, topic, 1, 2)
    part = cluster.partition(topic, 0)
    keep, drop = part.replicas
    acked, errors = produce_acked(cluster.bootstrap, topic, 0, 1500, "m" * 1000, **{"batch.size": 16384})
    assert errors == [] and [o for o, _ in acked] == list(range(1500))

    admin = cluster.admin()

    def alter(resources):
        # librdkafka sends each BROKER resource to that broker, one per call.
        for r in resources:
            for f in admin.incremental_alter_configs([r]).values():
                f.result(timeout=30)

    rate = "100000"
    brokers = [
        ConfigResource("BROKER", str(b), incremental_configs=[
            ConfigEntry("leader.replication.throttled.rate", rate, incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("follower.replication.throttled.rate", rate, incremental_operation=AlterConfigOpType.SET),
        ])
        for b in (keep, drop, new)
    ]
    throttled_topic = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("leader.replication.throttled.replicas", f"0:{keep},0:{drop}", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("follower.replication.throttled.replicas", f"0:{new}", incremental_operation=AlterConfigOpType.SET),
    ])
    alter(brokers + [throttled_topic])

    kadmin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    try:
        tp = KTP(topic, 0)
        assert kadmin.alter_partition_reassignments({tp: [new, keep]}) == {tp: None}
        ongoing = kadmin.list_partition_reassignments()
        assert ongoing == {tp: {"replicas": [new, keep, drop], "adding_replicas": [new], "removing_replicas": [drop]}}
        # The throttle holds the copy back (1.5 MB at 100 kB/s), on the leader or the new follower.
        wait_until(
            lambda: cluster.counter(keep, "cluster_replication_throttled_total", 'side="leader"')
            + cluster.counter(new, "cluster_replication_throttled_total", 'side="follower"') > 0,
            "the replication throttle to engage",
        )
        assert kadmin.list_partition_reassignments() == ongoing
        # Lift the throttles as --verify does; the move completes.
        clear = [
            ConfigResource("BROKER", str(b), incremental_configs=[
                ConfigEntry("leader.replication.throttled.rate", None, incremental_operation=AlterConfigOpType.DELETE),
                ConfigEntry("follower.replication.throttled.rate", None, incremental_operation=AlterConfigOpType.DELETE),
            ])
            for b in (keep, drop, new)
        ]
        alter(clear)
        wait_until(lambda: kadmin.list_partition_reassignments() == {}, "the reassignment to complete", timeout=60)
    finally:
        kadmin.close()
    done = cluster.partition(topic, 0)
    assert done.replicas == [new, keep]
    assert sorted(done.isrs) == sorted([new, keep])
    assert done.leader == keep
    # The new replica holds everything: with the old leader gone it leads and serves it all.
    cluster.kill(keep)
    b = cluster.other_bootstrap(keep)
    wait_until(lambda: cluster.partition(topic, 0, b).leader == new, "the new replica to lead", timeout=30)
    assert read_all(b, topic, 0, 1500) == dict(acked)


def test_committed_offsets_survive_the_coordinator(cluster):
    """Offsets committed to a group's coordinator are replicated: after SIGKILL of the
    coordinator, another node coordinates the group and the group resumes exactly there."""
    topic = unique("offs")
    create(cluster, topic, 1, 3)
    acked, errors = produce_acked(cluster.bootstrap, topic, 0, 100, "o")
    assert errors == [] and len(acked) == 100
    group = unique("g")
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    seen = []
    deadline = time.time() + 30
    while len(seen) < 40 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.append(m.offset())
    assert seen[:40] == list(range(40))
    c.commit(offsets=[TopicPartition(topic, 0, 40)], asynchronous=False)
    c.close()

    admin = cluster.admin()  # referenced until its futures resolve
    coordinator = admin.describe_consumer_groups([group])[group].result(timeout=30).coordinator.id
    cluster.kill(coordinator)
    b = cluster.other_bootstrap(coordinator)
    wait_until(lambda: coordinator not in cluster.admin(b).list_topics(timeout=5).brokers, "the coordinator fenced", timeout=30)
    wait_until(lambda: cluster.partition(topic, 0, b).leader not in (-1, coordinator), "a live leader", timeout=30)

    c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        committed = wait_until(lambda: c.committed([TopicPartition(topic, 0)], timeout=5), "committed offsets from the new coordinator")
        assert committed[0].offset == 40
        c.assign([TopicPartition(topic, 0, committed[0].offset)])
        first = None
        deadline = time.time() + 30
        while first is None and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                first = (m.offset(), m.value())
        assert first == acked[40]
    finally:
        c.close()
    admin = cluster.admin(b)
    new_coordinator = admin.describe_consumer_groups([group])[group].result(timeout=30).coordinator.id
    assert new_coordinator != coordinator

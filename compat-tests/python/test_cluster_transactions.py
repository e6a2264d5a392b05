"""Transactions in a 3-node cluster (real processes from scripts/cluster, librdkafka and
kafka-python): the coordinator's table is replicated through the metadata quorum, so a
transaction open while its coordinator node is SIGKILLed completes (its producer commits
through the new coordinator) or is aborted by the new coordinator when it times out; it
never hangs the last stable offset."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from helpers import unique, wait_until
from test_cluster import Cluster, create, running_cluster
from test_transactions import read_all, send


@pytest.fixture
def txn_cluster(tmp_path, request):
    yield from running_cluster(
        tmp_path, request, 3, ["transaction.abort.timed.out.transaction.cleanup.interval.ms=200"])


def coordinator_of(bootstrap: str, tid: str):
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return admin.describe_transactions([tid])[tid]
    finally:
        admin.close()


def kill_coordinator(c: Cluster, tid: str) -> str:
    d = coordinator_of(c.bootstrap, tid)
    assert d.state.value == "Ongoing"
    victim = d.coordinator_id
    c.kill(victim)
    b = c.other_bootstrap(victim)
    wait_until(lambda: victim not in c.admin(b).list_topics(timeout=5).brokers, "the coordinator fenced", timeout=30)
    return b


def test_open_transaction_commits_through_the_next_coordinator(txn_cluster):
    c = txn_cluster
    t, tid = unique("ctx"), unique("tid")
    create(c, t, 2, 3)
    p = Producer({"bootstrap.servers": c.bootstrap, "transactional.id": tid, "acks": "all"})
    p.init_transactions(60)
    p.begin_transaction()
    send(p, t, 0, ["a0", "a1", "a2"])
    send(p, t, 1, ["b0"])
    b = kill_coordinator(c, tid)
    # Every partition needs a live leader before its marker can be written.
    for part in (0, 1):
        wait_until(lambda: c.partition(t, part, b).leader >= 0, "a live leader", timeout=30)
    p.commit_transaction(120)
    d = coordinator_of(b, tid)
    assert d.state.value == "CompleteCommit"
    ends, got = read_all(b, t, [0, 1], "read_committed", timeout=60)
    assert ends == {0: 4, 1: 2}
    assert got == {0: [(0, "a0"), (1, "a1"), (2, "a2")], 1: [(0, "b0")]}


def test_abandoned_transaction_is_aborted_by_the_next_coordinator(txn_cluster):
    c = txn_cluster
    t, tid = unique("atx"), unique("tid")
    create(c, t, 1, 3)
    p = Producer({"bootstrap.servers": c.bootstrap, "transactional.id": tid, "acks": "all",
                  "transaction.timeout.ms": 4000})
    p.init_transactions(60)
    p.begin_transaction()
    send(p, t, 0, ["gone0", "gone1"])
    b = kill_coordinator(c, tid)
    # The producer goes silent; the next coordinator times the transaction out and fences it
    # (epoch 0 -> 1: the abort was the coordinator's, not the client's).
    wait_until(lambda: coordinator_of(b, tid).state.value == "CompleteAbort", "the transaction aborted", timeout=60)
    assert coordinator_of(b, tid).producer_epoch == 1
    ends, got = read_all(b, t, [0], "read_committed", timeout=60)
    assert ends == {0: 3} and got == {0: []}
    p.purge()
    # The id is usable again through the new coordinator.
    q = Producer({"bootstrap.servers": b, "transactional.id": tid, "acks": "all"})
    q.init_transactions(60)
    q.begin_transaction()
    send(q, t, 0, ["next"])
    q.commit_transaction(60)
    ends, got = read_all(b, t, [0], "read_committed", timeout=60)
    assert ends == {0: 5} and got == {0: [(3, "next")]}

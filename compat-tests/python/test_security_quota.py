"""Client quotas: set and described with kafka-python's AlterClientQuotas /
DescribeClientQuotas messages, enforced on a real producer and consumer (throttle_time_ms
in the answers, the connection muted meanwhile, accepted bytes within the quota)."""

from __future__ import annotations

import collections
import time

from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP
from kafka.admin import KafkaAdminClient
from kafka.protocol.admin import AlterClientQuotasRequest, DescribeClientQuotasRequest

from helpers import create_topic, unique

RATE = 200_000  # bytes per second
WINDOW_SETS = {"quota.window.num": "3", "quota.window.size.seconds": "1"}


def alter_quota(admin: KafkaAdminClient, entity, key: str, value: float):
    E = AlterClientQuotasRequest.EntryData
    req = AlterClientQuotasRequest(
        entries=[E(entity=[E.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                   ops=[E.OpData(key=key, value=value, remove=False)])],
        validate_only=False,
    )
    resp = admin._manager.run(admin._manager.send, req)
    assert [e.error_code for e in resp.entries] == [0], resp


def describe_quotas(admin: KafkaAdminClient):
    C = DescribeClientQuotasRequest.ComponentData
    req = DescribeClientQuotasRequest(components=[C(entity_type="client-id", match_type=2, match=None)],
                                      strict=False)
    resp = admin._manager.run(admin._manager.send, req)
    assert resp.error_code == 0
    return sorted(
        (tuple((e.entity_type, e.entity_name) for e in entry.entity),
         tuple((v.key, v.value) for v in entry.values))
        for entry in resp.entries
    )


def test_produce_and_fetch_quotas_throttle(server_factory):
    srv = server_factory(sets=WINDOW_SETS)
    admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap)
    alter_quota(admin, [("client-id", "slow-producer")], "producer_byte_rate", RATE)
    alter_quota(admin, [("client-id", "slow-consumer")], "consumer_byte_rate", RATE)
    assert describe_quotas(admin) == [
        ((("client-id", "slow-consumer"),), (("consumer_byte_rate", float(RATE)),)),
        ((("client-id", "slow-producer"),), (("producer_byte_rate", float(RATE)),)),
    ]
    topic = unique("quota")
    create_topic(srv.bootstrap, topic, 1)

    p = KafkaProducer(bootstrap_servers=srv.bootstrap, client_id="slow-producer", linger_ms=5,
                      batch_size=16384, max_in_flight_requests_per_connection=1, acks=1)
    value = b"q" * 1000
    acked = [0]
    pending = collections.deque()
    started = time.monotonic()
    while time.monotonic() - started < 6:
        pending.append(p.send(topic, value=value, partition=0))
        # At most 200 KB outstanding: the producer sends as fast as the broker lets it.
        while len(pending) > 200:
            pending.popleft().get(timeout=30)
            acked[0] += 1
    p.flush(timeout=60)
    acked[0] += len(pending)
    elapsed = time.monotonic() - started
    throttle = p.metrics()["producer-metrics"]["throttle-time-max"]
    p.close()
    accepted = acked[0] * len(value)
    # The quota is measured over at least (samples - 1) windows, so a first burst of up to
    # two seconds' worth passes before throttling starts.
    assert accepted <= RATE * (elapsed + 2) * 1.25, (accepted, elapsed)
    assert accepted >= RATE * 2, accepted
    assert throttle > 0, "the producer never saw throttle_time_ms"

    c = KafkaConsumer(bootstrap_servers=srv.bootstrap, client_id="slow-consumer", group_id=None,
                      enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_bytes=200_000,
                      max_partition_fetch_bytes=200_000)
    c.assign([KTP(topic, 0)])
    c.seek_to_beginning()
    got = 0
    started = time.monotonic()
    while time.monotonic() - started < 4:
        for records in c.poll(timeout_ms=200).values():
            got += sum(len(r.value) for r in records)
    elapsed = time.monotonic() - started
    fetch_throttle = c.metrics()["consumer-metrics"]["throttle-time-max"]
    c.close()
    assert got <= RATE * (elapsed + 2) * 1.25 + 200_000, (got, elapsed)
    assert fetch_throttle > 0, "the consumer never saw throttle_time_ms"
    admin.close()


def test_invalid_quota_entries_are_refused(server_factory):
    srv = server_factory()
    admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap)
    E = AlterClientQuotasRequest.EntryData
    req = AlterClientQuotasRequest(entries=[
        E(entity=[E.EntityData(entity_type="client-id", entity_name="x")],
          ops=[E.OpData(key="not_a_quota", value=1.0, remove=False)]),
        E(entity=[E.EntityData(entity_type="user", entity_name="u")],
          ops=[E.OpData(key="producer_byte_rate", value=-5.0, remove=False)]),
        E(entity=[E.EntityData(entity_type="ip", entity_name="10.0.0.1"),
                  E.EntityData(entity_type="user", entity_name="u")],
          ops=[E.OpData(key="connection_creation_rate", value=5.0, remove=False)]),
    ], validate_only=False)
    resp = admin._manager.run(admin._manager.send, req)
    assert [e.error_code for e in resp.entries] == [42, 42, 42]
    assert [e.error_message for e in resp.entries] == [
        "Invalid configuration key not_a_quota",
        "Quota producer_byte_rate must be greater than 0",
        "Invalid quota entity combination, IP entity should not be used with user/client ID entity.",
    ]
    assert describe_quotas(admin) == []
    admin.close()

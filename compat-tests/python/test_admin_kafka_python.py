"""Admin API through kafka-python's KafkaAdminClient (pure-Python protocol stack)."""

from __future__ import annotations

import os

import kafka.errors as Errors
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import AlterConfigOp, ConfigResource
from kafka.structs import OffsetAndMetadata

from helpers import (
    Msg,
    assert_all_delivered,
    create_topic,
    kp_admin,
    kp_consume,
    kp_produce,
    now_ms,
    unique,
    wait_until,
    watermarks,
)


@pytest.fixture
def admin(server):
    client = kp_admin(server.bootstrap)
    yield client
    client.close()


def partition_count(admin, topic):
    topics = {t["name"]: t for t in admin.describe_topics([topic])}
    t = topics.get(topic)
    if t is None or t["error_code"] != 0:
        return None
    return len(t["partitions"])


def topic_configs(admin, topic, names=None):
    res = admin.describe_configs([ConfigResource("TOPIC", topic, names)], config_filter="all")
    return {k: (v["value"], v["config_source"]) for k, v in res["topic"][topic].items()}


def test_create_and_delete_topics(server, admin):
    topic = unique("kpa-topic")
    res = admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1,
                                       "configs": {"retention.ms": "3600000"}}})
    [t] = res["topics"]
    assert (t["name"], t["error_code"], t["num_partitions"], t["replication_factor"]) == (topic, 0, 3, 1)
    assert t["configs"]["retention.ms"]["value"] == "3600000"
    assert t["configs"]["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    wait_until(lambda: partition_count(admin, topic) == 3, "created topic visible with 3 partitions")
    assert topic in admin.list_topics()

    # validate_only: answered like a real creation, but nothing is created
    vo = unique("kpa-vo")
    [t] = admin.create_topics({vo: {"num_partitions": 2, "replication_factor": 1}}, validate_only=True)["topics"]
    assert (t["name"], t["error_code"], t["num_partitions"]) == (vo, 0, 2)
    assert vo not in admin.list_topics()

    with pytest.raises(Errors.TopicAlreadyExistsError):
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    with pytest.raises(Errors.InvalidPartitionsError):
        admin.create_topics({unique("kpa-zero"): {"num_partitions": 0, "replication_factor": 1}})
    with pytest.raises(Errors.InvalidReplicationFactorError):
        admin.create_topics({unique("kpa-rf"): {"num_partitions": 1, "replication_factor": 2}})
    with pytest.raises(Errors.InvalidConfigurationError):
        admin.create_topics({unique("kpa-cfg"): {"num_partitions": 1, "replication_factor": 1,
                                                  "configs": {"cleanup.policy": "shred"}}})
    with pytest.raises(Errors.InvalidTopicError):
        admin.create_topics({"a" * 250: {"num_partitions": 1, "replication_factor": 1}})
    # per-topic results without raising
    res = admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}}, raise_errors=False)
    assert [(t["name"], t["error_code"]) for t in res["topics"]] == [(topic, 36)]

    res = admin.delete_topics([topic])
    assert [(t["name"], t["error_code"]) for t in res["topics"]] == [(topic, 0)]
    wait_until(lambda: topic not in admin.list_topics(), "deleted topic gone")
    with pytest.raises(Errors.UnknownTopicOrPartitionError):
        admin.delete_topics([topic])


def test_create_partitions(server, admin):
    topic = unique("kpa-parts")
    create_topic(server.bootstrap, topic, 2)
    res = admin.create_partitions({topic: 5}, validate_only=True)
    assert [(r.name, r.error_code) for r in res.results] == [(topic, 0)]
    assert partition_count(admin, topic) == 2
    res = admin.create_partitions({topic: 5})
    assert [(r.name, r.error_code) for r in res.results] == [(topic, 0)]
    wait_until(lambda: partition_count(admin, topic) == 5, "5 partitions")
    with pytest.raises(Errors.InvalidPartitionsError):
        admin.create_partitions({topic: 4})
    with pytest.raises(Errors.UnknownTopicOrPartitionError):
        admin.create_partitions({unique("kpa-parts-missing"): 2})
    d = kp_produce(server.bootstrap, topic, [Msg(4, b"k", b"v")], acks="all")
    assert_all_delivered(d)
    assert (d[0].partition, d[0].offset) == (4, 0)


def test_describe_and_alter_configs(server, admin):
    topic = unique("kpa-cfg")
    create_topic(server.bootstrap, topic, 1, config={"retention.ms": "3600000"})
    cfg = topic_configs(admin, topic)
    assert cfg["retention.ms"] == ("3600000", "DYNAMIC_TOPIC_CONFIG")
    assert cfg["cleanup.policy"] == ("delete", "DEFAULT_CONFIG")
    assert cfg["max.message.bytes"] == ("1048588", "DEFAULT_CONFIG")
    assert cfg["segment.bytes"] == ("1073741824", "DEFAULT_CONFIG")
    # asking for named keys returns exactly those
    assert set(topic_configs(admin, topic, ["retention.ms", "segment.ms"])) == {"retention.ms", "segment.ms"}
    # default filter ("modified") returns only non-default keys
    modified = admin.describe_configs([ConfigResource("TOPIC", topic)])["topic"][topic]
    assert set(modified) == {"retention.ms"}

    # IncrementalAlterConfigs (kafka-python's default when the broker supports it)
    res = admin.alter_configs([ConfigResource("TOPIC", topic, {"segment.ms": "7200000",
                                                               "retention.ms": (AlterConfigOp.DELETE, None)})])
    assert res == {"topic": {topic: "OK"}}
    cfg = topic_configs(admin, topic)
    assert cfg["segment.ms"] == ("7200000", "DYNAMIC_TOPIC_CONFIG")
    assert cfg["retention.ms"] == ("604800000", "DEFAULT_CONFIG")

    # legacy AlterConfigs, forced
    res = admin.alter_configs([ConfigResource("TOPIC", topic, {"retention.bytes": "1048576"})], incremental=False)
    assert res == {"topic": {topic: "OK"}}
    cfg = topic_configs(admin, topic)
    assert cfg["retention.bytes"] == ("1048576", "DYNAMIC_TOPIC_CONFIG")
    assert cfg["segment.ms"] == ("7200000", "DYNAMIC_TOPIC_CONFIG")  # kafka-python re-sends modified keys

    res = admin.alter_configs([ConfigResource("TOPIC", topic, {"segment.ms": "not-a-number"})])
    assert res["topic"][topic].startswith("[Error 40] InvalidConfigurationError")
    assert topic_configs(admin, topic)["segment.ms"] == ("7200000", "DYNAMIC_TOPIC_CONFIG")


def test_broker_configs(server_factory):
    srv = server_factory(sets={"num.partitions": "3", "message.max.bytes": "2097152"})
    admin = kp_admin(srv.bootstrap)
    try:
        res = admin.describe_configs([ConfigResource("BROKER", "1")], config_filter="all")["broker"]["1"]
        assert (res["num.partitions"]["value"], res["num.partitions"]["config_source"]) == ("3", "STATIC_BROKER_CONFIG")
        assert (res["message.max.bytes"]["value"], res["message.max.bytes"]["config_source"]) == \
            ("2097152", "STATIC_BROKER_CONFIG")
        # topics inherit the broker-level message.max.bytes as their max.message.bytes
        topic = unique("kpa-inherit")
        create_topic(srv.bootstrap, topic, 1)
        assert topic_configs(admin, topic)["max.message.bytes"][0] == "2097152"
        # Kafka describes every broker config, including the hour-based retention default
        assert "log.retention.hours" in res, "broker config log.retention.hours not described"
        assert (res["log.retention.hours"]["value"], res["log.retention.hours"]["config_source"]) == \
            ("168", "DEFAULT_CONFIG")
    finally:
        admin.close()


def test_delete_records(server, admin):
    topic = unique("kpa-delrec")
    create_topic(server.bootstrap, topic, 1)
    assert_all_delivered(kp_produce(server.bootstrap, topic, [Msg(0, None, f"v{i}".encode()) for i in range(10)]))
    res = admin.delete_records({TopicPartition(topic, 0): 7})
    assert res[TopicPartition(topic, 0)]["low_watermark"] == 7
    assert res[TopicPartition(topic, 0)]["error_code"] == 0
    assert watermarks(server.bootstrap, topic, [0]) == {0: (7, 10)}
    recs = kp_consume(server.bootstrap, topic, {0: 10})
    assert [(r.offset, r.value) for r in recs] == [(7, b"v7"), (8, b"v8"), (9, b"v9")]
    with pytest.raises(Errors.OffsetOutOfRangeError):
        admin.delete_records({TopicPartition(topic, 0): 11})


def test_describe_cluster(server, admin):
    res = admin.describe_cluster()
    assert res["controller_id"] == 1
    assert res["cluster_id"]
    assert [(b["broker_id"], b["host"], b["port"]) for b in res["brokers"]] == \
        [(1, server.kafka_host, server.kafka_port)]


def test_describe_log_dirs(server, admin):
    topic = unique("kpa-logdirs")
    create_topic(server.bootstrap, topic, 2)
    values = [os.urandom(1000) for _ in range(20)]  # incompressible
    assert_all_delivered(kp_produce(server.bootstrap, topic, [Msg(0, None, v) for v in values]))

    [broker] = admin.describe_log_dirs([topic])
    assert broker["broker"] == 1
    dirs = broker["log_dirs"]
    assert len(dirs) == 1 and dirs[0]["error_code"] == 0
    data_dir = os.path.realpath(server.data_dir)
    assert os.path.realpath(dirs[0]["log_dir"]).startswith(data_dir + os.sep) or \
        os.path.realpath(dirs[0]["log_dir"]) == data_dir
    assert 0 < dirs[0]["usable_bytes"] <= dirs[0]["total_bytes"]
    [t] = [t for t in dirs[0]["topics"] if t["name"] == topic]
    sizes = {p["partition_index"]: p["partition_size"] for p in t["partitions"]}
    assert set(sizes) == {0, 1}
    # 20 KB of payload plus per-record and per-batch overhead, nothing in partition 1
    assert 20 * 1000 <= sizes[0] <= 20 * 1000 + 20 * 100 + 2000
    assert sizes[1] == 0


def test_compressed_batches_are_stored_compressed(server, admin):
    topic = unique("kpa-stored-zstd")
    create_topic(server.bootstrap, topic, 1)
    value = b"0123456789abcdef" * 256  # 4 KiB, highly compressible
    msgs = [Msg(0, None, value) for _ in range(100)]
    assert_all_delivered(kp_produce(server.bootstrap, topic, msgs, compression_type="zstd", linger_ms=100))
    [broker] = admin.describe_log_dirs([topic])
    [t] = [t for t in broker["log_dirs"][0]["topics"] if t["name"] == topic]
    [p] = t["partitions"]
    # 400 KiB of values; Kafka keeps the producer's compressed batches as they are
    assert 0 < p["partition_size"] < 100 * len(value) // 10
    assert [r.value for r in kp_consume(server.bootstrap, topic, {0: 100})] == [value] * 100


def test_groups_admin(server, admin):
    topic, group = unique("kpa-grp"), unique("kpa-g")
    create_topic(server.bootstrap, topic, 2)
    assert_all_delivered(kp_produce(server.bootstrap, topic,
                                    [Msg(p, None, f"v{p}-{i}".encode()) for p in range(2) for i in range(6)]))
    c = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group, client_id="kpa-member",
                      auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        got = []
        wait_until(lambda: got.extend(r for rs in c.poll(200).values() for r in rs) or len(got) >= 12,
                   "12 messages consumed")
        assert len(got) == 12
        c.commit({TopicPartition(topic, 0): OffsetAndMetadata(4, "meta-0", -1),
                  TopicPartition(topic, 1): OffsetAndMetadata(6, "", -1)})

        groups = {g["group_id"]: g for g in admin.list_groups()}
        assert group in groups
        assert (groups[group]["protocol_type"], groups[group]["group_state"]) == ("consumer", "Stable")

        desc = admin.describe_groups([group])[group]
        assert desc["error"] is None
        assert (desc["group_state"], desc["protocol_type"], desc["protocol_data"]) == ("Stable", "consumer", "range")
        [m] = desc["members"]
        assert m["client_id"] == "kpa-member"
        assert m["member_metadata"]["topics"] == [topic]
        assert m["member_assignment"]["assigned_partitions"] == [{"topic": topic, "partitions": [0, 1]}]

        # OffsetDelete of a partition the live consumer group is subscribed to
        assert admin.delete_group_offsets(group, [TopicPartition(topic, 0)]) == \
            {TopicPartition(topic, 0): Errors.GroupSubscribedToTopicError}
        assert admin.delete_groups([group]) == {group: "NonEmptyGroupError"}
    finally:
        c.close()

    wait_until(lambda: admin.describe_groups([group])[group]["group_state"] == "Empty", "group empty after close")
    assert admin.list_group_offsets(group) == {group: {
        TopicPartition(topic, 0): OffsetAndMetadata(4, "meta-0", -1),
        TopicPartition(topic, 1): OffsetAndMetadata(6, "", -1),
    }}
    res = admin.alter_group_offsets(group, {TopicPartition(topic, 0): OffsetAndMetadata(1, "", -1)})
    assert res == {TopicPartition(topic, 0): Errors.NoError}
    assert admin.list_group_offsets({group: [TopicPartition(topic, 0)]})[group][TopicPartition(topic, 0)].offset == 1

    # OffsetDelete on an empty group removes just that partition's offset
    assert admin.delete_group_offsets(group, [TopicPartition(topic, 0)]) == {TopicPartition(topic, 0): Errors.NoError}
    assert admin.list_group_offsets(group) == {group: {TopicPartition(topic, 1): OffsetAndMetadata(6, "", -1)}}

    missing = unique("kpa-missing")
    assert admin.delete_groups([group, missing]) == {group: "OK", missing: "GroupIdNotFoundError"}
    assert group not in {g["group_id"] for g in admin.list_groups()}
    assert admin.describe_groups([group])[group]["group_state"] == "Dead"


def test_list_partition_offsets(server, admin):
    from kafka.admin import OffsetSpec

    topic = unique("kpa-lo")
    create_topic(server.bootstrap, topic, 1)
    t0 = now_ms() - 600_000
    stamps = [t0 + 1000, t0 + 9000, t0 + 4000]
    assert_all_delivered(kp_produce(server.bootstrap, topic,
                                    [Msg(0, None, b"x", (), ts) for ts in stamps]))
    tp = TopicPartition(topic, 0)
    res = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST})
    assert res[tp].offset == 0
    assert admin.list_partition_offsets({tp: OffsetSpec.LATEST})[tp].offset == 3
    mx = admin.list_partition_offsets({tp: OffsetSpec.MAX_TIMESTAMP})[tp]
    assert (mx.offset, mx.timestamp) == (1, t0 + 9000)

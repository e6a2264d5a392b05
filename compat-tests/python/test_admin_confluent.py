"""Admin API through confluent_kafka.admin.AdminClient (librdkafka)."""

from __future__ import annotations

from typing import Dict

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from helpers import (
    Member,
    Msg,
    admin_client,
    assert_all_delivered,
    confluent_consumer,
    consume_confluent,
    create_topic,
    now_ms,
    poll_until,
    produce_confluent,
    unique,
    wait_until,
    watermarks,
)

T = 30  # seconds for admin futures


def error_code(fut) -> int:
    with pytest.raises(KafkaException) as ei:
        fut.result(timeout=T)
    return ei.value.args[0].code()


def source(entry: ConfigEntry) -> ConfigSource:
    return entry.source if isinstance(entry.source, ConfigSource) else ConfigSource(entry.source)


def describe_topic_configs(admin, topic: str) -> Dict[str, ConfigEntry]:
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([res], request_timeout=T)[res].result(timeout=T)


def topic_partitions(admin, topic: str):
    md = admin.list_topics(topic=topic, timeout=10)
    t = md.topics[topic]
    return None if t.error is not None else len(t.partitions)


# ---------------------------------------------------------------------------
# topics
# ---------------------------------------------------------------------------


def test_create_topic_with_configs(server):
    admin = admin_client(server.bootstrap)
    topic = unique("adm-create")
    futs = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                         config={"retention.ms": "3600000", "cleanup.policy": "compact"})],
                               request_timeout=T)
    assert futs[topic].result(timeout=T) is None
    wait_until(lambda: topic_partitions(admin, topic) == 3, "created topic with 3 partitions")
    md = admin.list_topics(topic=topic, timeout=10).topics[topic]
    assert sorted(md.partitions) == [0, 1, 2]
    for p in md.partitions.values():
        assert (p.leader, list(p.replicas), list(p.isrs)) == (1, [1], [1])

    cfg = describe_topic_configs(admin, topic)
    assert (cfg["retention.ms"].value, source(cfg["retention.ms"])) == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert (cfg["cleanup.policy"].value, source(cfg["cleanup.policy"])) == ("compact",
                                                                            ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert cfg["retention.ms"].is_default is False


def test_create_topic_validate_only_creates_nothing(server):
    admin = admin_client(server.bootstrap)
    topic = unique("adm-validate")
    futs = admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], validate_only=True,
                               request_timeout=T)
    assert futs[topic].result(timeout=T) is None
    assert topic not in admin.list_topics(timeout=10).topics
    # a validate-only request still reports errors: an existing topic
    create_topic(server.bootstrap, topic, 1)
    futs = admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], validate_only=True,
                               request_timeout=T)
    assert error_code(futs[topic]) == KafkaError.TOPIC_ALREADY_EXISTS
    assert topic_partitions(admin, topic) == 1


def test_create_topic_errors(server):
    admin = admin_client(server.bootstrap)
    existing = unique("adm-exists")
    create_topic(server.bootstrap, existing, 2)

    futs = admin.create_topics([NewTopic(existing, num_partitions=1, replication_factor=1)], request_timeout=T)
    assert error_code(futs[existing]) == KafkaError.TOPIC_ALREADY_EXISTS
    assert topic_partitions(admin, existing) == 2  # untouched

    rf = unique("adm-rf")
    futs = admin.create_topics([NewTopic(rf, num_partitions=1, replication_factor=3)], request_timeout=T)
    assert error_code(futs[rf]) == KafkaError.INVALID_REPLICATION_FACTOR

    bad_value = unique("adm-badcfg")
    futs = admin.create_topics([NewTopic(bad_value, num_partitions=1, replication_factor=1,
                                         config={"retention.ms": "not-a-number"})], request_timeout=T)
    assert error_code(futs[bad_value]) == KafkaError.INVALID_CONFIG

    unknown_key = unique("adm-unknowncfg")
    futs = admin.create_topics([NewTopic(unknown_key, num_partitions=1, replication_factor=1,
                                         config={"no.such.config": "1"})], request_timeout=T)
    assert error_code(futs[unknown_key]) == KafkaError.INVALID_CONFIG

    bad_name = "bad name!"
    futs = admin.create_topics([NewTopic(bad_name, num_partitions=1, replication_factor=1)], request_timeout=T)
    assert error_code(futs[bad_name]) == KafkaError.TOPIC_EXCEPTION

    names = set(admin.list_topics(timeout=10).topics)
    assert not names & {rf, bad_value, unknown_key, bad_name}


def test_delete_topics(server):
    admin = admin_client(server.bootstrap)
    topic = unique("adm-del")
    create_topic(server.bootstrap, topic, 2)
    assert_all_delivered(produce_confluent(server.bootstrap, topic, [Msg(0, b"k", b"v")]))
    assert admin.delete_topics([topic], request_timeout=T)[topic].result(timeout=T) is None
    wait_until(lambda: topic not in admin.list_topics(timeout=10).topics, "deleted topic gone from metadata")

    missing = unique("adm-missing")
    assert error_code(admin.delete_topics([missing], request_timeout=T)[missing]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    # deleting again is also unknown
    assert error_code(admin.delete_topics([topic], request_timeout=T)[topic]) == KafkaError.UNKNOWN_TOPIC_OR_PART

    # re-creating the name starts from an empty log
    create_topic(server.bootstrap, topic, 1)
    assert watermarks(server.bootstrap, topic, [0]) == {0: (0, 0)}


def test_create_partitions(server):
    admin = admin_client(server.bootstrap)
    topic = unique("adm-parts")
    create_topic(server.bootstrap, topic, 1)

    futs = admin.create_partitions([NewPartitions(topic, 3)], validate_only=True, request_timeout=T)
    assert futs[topic].result(timeout=T) is None
    assert topic_partitions(admin, topic) == 1

    futs = admin.create_partitions([NewPartitions(topic, 3)], request_timeout=T)
    assert futs[topic].result(timeout=T) is None
    wait_until(lambda: topic_partitions(admin, topic) == 3, "topic grown to 3 partitions")
    d = produce_confluent(server.bootstrap, topic, [Msg(2, b"k", b"in-new-partition")])
    assert_all_delivered(d)
    assert (d[0].partition, d[0].offset) == (2, 0)

    # shrinking or keeping the count is INVALID_PARTITIONS
    for count in (2, 3):
        futs = admin.create_partitions([NewPartitions(topic, count)], request_timeout=T)
        assert error_code(futs[topic]) == KafkaError.INVALID_PARTITIONS
    missing = unique("adm-parts-missing")
    futs = admin.create_partitions([NewPartitions(missing, 4)], request_timeout=T)
    assert error_code(futs[missing]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert topic_partitions(admin, topic) == 3


def test_describe_topics(server):
    admin = admin_client(server.bootstrap)
    topic = unique("adm-desc")
    create_topic(server.bootstrap, topic, 3)
    desc = admin.describe_topics(TopicCollection([topic]), request_timeout=T)[topic].result(timeout=T)
    assert desc.name == topic
    assert desc.is_internal is False
    assert str(desc.topic_id) != "AAAAAAAAAAAAAAAAAAAAAA"  # not the zero uuid
    assert [p.id for p in desc.partitions] == [0, 1, 2]
    for p in desc.partitions:
        assert p.leader.id == 1
        assert [n.id for n in p.replicas] == [1]
        assert [n.id for n in p.isr] == [1]


# ---------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------


def test_describe_configs_defaults_and_sources(server_factory):
    srv = server_factory(sets={"num.partitions": "3"})
    admin = admin_client(srv.bootstrap)
    topic = unique("adm-cfg")
    create_topic(srv.bootstrap, topic, 1)

    cfg = describe_topic_configs(admin, topic)
    expected_defaults = {
        "cleanup.policy": "delete",
        "retention.ms": "604800000",
        "retention.bytes": "-1",
        "segment.bytes": "1073741824",
        "max.message.bytes": "1048588",
        "compression.type": "producer",
        "min.insync.replicas": "1",
        "message.timestamp.type": "CreateTime",
    }
    for name, value in expected_defaults.items():
        assert name in cfg, f"topic config {name} not described"
        assert cfg[name].value == value, name
        assert source(cfg[name]) == ConfigSource.DEFAULT_CONFIG, name
        assert cfg[name].is_default is True, name

    broker = ConfigResource(ConfigResource.Type.BROKER, "1")
    bcfg = admin.describe_configs([broker], request_timeout=T)[broker].result(timeout=T)
    assert (bcfg["num.partitions"].value, source(bcfg["num.partitions"])) == ("3", ConfigSource.STATIC_BROKER_CONFIG)
    assert (bcfg["message.max.bytes"].value, source(bcfg["message.max.bytes"])) == ("1048588",
                                                                                  ConfigSource.DEFAULT_CONFIG)
    assert bcfg["auto.create.topics.enable"].value == "true"

    # unknown topic
    res = ConfigResource(ConfigResource.Type.TOPIC, unique("adm-cfg-missing"))
    assert error_code(admin.describe_configs([res], request_timeout=T)[res]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_alter_configs_replaces_whole_set(server):
    admin = admin_client(server.bootstrap)
    topic = unique("adm-alter")
    create_topic(server.bootstrap, topic, 1, config={"retention.ms": "3600000"})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"segment.ms": "7200000"})
    assert admin.alter_configs([res], request_timeout=T)[res].result(timeout=T) is None
    cfg = describe_topic_configs(admin, topic)
    assert (cfg["segment.ms"].value, source(cfg["segment.ms"])) == ("7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    # legacy AlterConfigs resets every config not in the request
    assert (cfg["retention.ms"].value, source(cfg["retention.ms"])) == ("604800000", ConfigSource.DEFAULT_CONFIG)

    # validate_only changes nothing
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"segment.ms": "1000000"})
    assert admin.alter_configs([res], validate_only=True, request_timeout=T)[res].result(timeout=T) is None
    assert describe_topic_configs(admin, topic)["segment.ms"].value == "7200000"

    bad = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"segment.ms": "abc"})
    assert error_code(admin.alter_configs([bad], request_timeout=T)[bad]) == KafkaError.INVALID_CONFIG


def test_incremental_alter_configs(server):
    admin = admin_client(server.bootstrap)
    topic = unique("adm-incr")
    create_topic(server.bootstrap, topic, 1, config={"segment.ms": "7200000", "cleanup.policy": "compact"})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.APPEND),
    ])
    assert admin.incremental_alter_configs([res], request_timeout=T)[res].result(timeout=T) is None
    cfg = describe_topic_configs(admin, topic)
    assert (cfg["retention.ms"].value, source(cfg["retention.ms"])) == ("86400000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert (cfg["segment.ms"].value, source(cfg["segment.ms"])) == ("604800000", ConfigSource.DEFAULT_CONFIG)
    assert (cfg["cleanup.policy"].value, source(cfg["cleanup.policy"])) == ("compact,delete",
                                                                            ConfigSource.DYNAMIC_TOPIC_CONFIG)

    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT),
    ])
    assert admin.incremental_alter_configs([res], request_timeout=T)[res].result(timeout=T) is None
    cfg = describe_topic_configs(admin, topic)
    assert cfg["cleanup.policy"].value == "delete"
    assert cfg["retention.ms"].value == "86400000"  # untouched by the second request

    bad = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    assert error_code(admin.incremental_alter_configs([bad], request_timeout=T)[bad]) == KafkaError.INVALID_CONFIG
    missing = ConfigResource(ConfigResource.Type.TOPIC, unique("adm-incr-missing"), incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    assert error_code(admin.incremental_alter_configs([missing], request_timeout=T)[missing]) == \
        KafkaError.UNKNOWN_TOPIC_OR_PART


# ---------------------------------------------------------------------------
# records and offsets
# ---------------------------------------------------------------------------


def test_delete_records_moves_earliest_offset(server):
    admin = admin_client(server.bootstrap)
    topic = unique("adm-delrec")
    create_topic(server.bootstrap, topic, 2)
    msgs = [Msg(p, f"k{p}-{i}".encode(), f"v{p}-{i}".encode()) for p in range(2) for i in range(10)]
    assert_all_delivered(produce_confluent(server.bootstrap, topic, msgs))

    futs = admin.delete_records([TopicPartition(topic, 0, 4)], request_timeout=T)
    assert futs[TopicPartition(topic, 0, 4)].result(timeout=T).low_watermark == 4
    assert watermarks(server.bootstrap, topic, [0, 1]) == {0: (4, 10), 1: (0, 10)}
    recs = consume_confluent(server.bootstrap, topic, {0: 10})
    assert [(r.offset, r.value) for r in recs] == [(i, f"v0-{i}".encode()) for i in range(4, 10)]

    # earliest via ListOffsets agrees
    res = admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()}, request_timeout=T)
    assert res[TopicPartition(topic, 0)].result(timeout=T).offset == 4

    # -1 (OFFSET_END) deletes everything up to the high watermark
    futs = admin.delete_records([TopicPartition(topic, 1, -1)], request_timeout=T)
    assert futs[TopicPartition(topic, 1, -1)].result(timeout=T).low_watermark == 10
    assert watermarks(server.bootstrap, topic, [1]) == {1: (10, 10)}

    # beyond the high watermark is OFFSET_OUT_OF_RANGE
    futs = admin.delete_records([TopicPartition(topic, 0, 11)], request_timeout=T)
    assert error_code(futs[TopicPartition(topic, 0, 11)]) == KafkaError.OFFSET_OUT_OF_RANGE
    assert watermarks(server.bootstrap, topic, [0]) == {0: (4, 10)}


def test_list_offsets_admin(server):
    admin = admin_client(server.bootstrap)
    topic = unique("adm-lo")
    create_topic(server.bootstrap, topic, 1)
    t0 = now_ms() - 600_000
    stamps = [t0, t0 + 5000, t0 + 3000, t0 + 1000]
    assert_all_delivered(produce_confluent(server.bootstrap, topic,
                                           [Msg(0, b"k", f"v{i}".encode(), (), ts) for i, ts in enumerate(stamps)]))
    tp = TopicPartition(topic, 0)

    def lo(spec):
        return admin.list_offsets({tp: spec}, request_timeout=T)[tp].result(timeout=T)

    assert lo(OffsetSpec.earliest()).offset == 0
    assert lo(OffsetSpec.latest()).offset == 4
    mx = lo(OffsetSpec.max_timestamp())
    assert (mx.offset, mx.timestamp) == (1, t0 + 5000)
    r = lo(OffsetSpec.for_timestamp(t0 + 2000))
    assert (r.offset, r.timestamp) == (1, t0 + 5000)
    r = lo(OffsetSpec.for_timestamp(t0))
    assert (r.offset, r.timestamp) == (0, t0)
    assert lo(OffsetSpec.for_timestamp(t0 + 6000)).offset == -1


# ---------------------------------------------------------------------------
# cluster
# ---------------------------------------------------------------------------


def test_describe_cluster(server):
    admin = admin_client(server.bootstrap)
    res = admin.describe_cluster(request_timeout=T).result(timeout=T)
    assert isinstance(res.cluster_id, str) and res.cluster_id
    assert [(n.id, n.host, n.port) for n in res.nodes] == [(1, server.kafka_host, server.kafka_port)]
    assert res.controller is not None and res.controller.id == 1
    assert admin.list_topics(timeout=10).cluster_id == res.cluster_id


def test_cluster_id_survives_restart(server):
    admin = admin_client(server.bootstrap)
    before = admin.describe_cluster(request_timeout=T).result(timeout=T).cluster_id
    server.restart()
    admin = admin_client(server.bootstrap)
    after = admin.describe_cluster(request_timeout=T).result(timeout=T).cluster_id
    assert before == after


def test_metadata_auto_create(server_factory):
    srv = server_factory(sets={"auto.create.topics.enable": "true", "num.partitions": "3"})
    admin = admin_client(srv.bootstrap)
    topic = unique("auto")
    # a client that does not allow auto-creation only learns the topic is unknown
    reader = confluent_consumer(srv.bootstrap, **{"allow.auto.create.topics": False})
    try:
        t = reader.list_topics(topic=topic, timeout=10).topics[topic]
        assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    finally:
        reader.close()
    assert topic not in admin.list_topics(timeout=10).topics

    # a producer (allow.auto.create.topics=true by default) creates it with num.partitions
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": srv.bootstrap})
    result = {}
    p.produce(topic, key=b"k", value=b"v", partition=2, on_delivery=lambda e, m: result.update(err=e, off=m.offset()))
    assert p.flush(30) == 0
    assert result == {"err": None, "off": 0}
    assert topic_partitions(admin, topic) == 3


def test_metadata_auto_create_disabled(server_factory):
    srv = server_factory(sets={"auto.create.topics.enable": "false"})
    admin = admin_client(srv.bootstrap)
    topic = unique("noauto")
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": srv.bootstrap, "message.timeout.ms": 3000})
    result = {}
    p.produce(topic, value=b"v", on_delivery=lambda e, m: result.update(err=e))
    assert p.flush(30) == 0
    assert result["err"] is not None
    assert result["err"].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                                    KafkaError._MSG_TIMED_OUT)
    md = admin.list_topics(topic=topic, timeout=10).topics[topic]
    assert md.error is not None and md.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert topic not in admin.list_topics(timeout=10).topics


# ---------------------------------------------------------------------------
# consumer groups
# ---------------------------------------------------------------------------


def test_consumer_group_admin(server):
    admin = admin_client(server.bootstrap)
    topic, group = unique("adm-grp"), unique("g-adm")
    create_topic(server.bootstrap, topic, 2)
    assert_all_delivered(produce_confluent(server.bootstrap, topic,
                                           [Msg(p, b"k", f"v{i}".encode()) for p in range(2) for i in range(5)]))
    member = Member(server.bootstrap, group, topic, **{"client.id": "adm-member"})
    try:
        poll_until([member], lambda: len(member.records) == 10, "all 10 messages consumed")
        member.commit({0: 3, 1: 5})

        listing = admin.list_consumer_groups(request_timeout=T).result(timeout=T)
        assert not listing.errors
        mine = [g for g in listing.valid if g.group_id == group]
        assert len(mine) == 1
        assert mine[0].state == ConsumerGroupState.STABLE
        assert mine[0].is_simple_consumer_group is False

        desc = admin.describe_consumer_groups([group], request_timeout=T)[group].result(timeout=T)
        assert desc.group_id == group
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == "range"
        assert desc.coordinator.id == 1
        assert len(desc.members) == 1
        m = desc.members[0]
        assert m.client_id == "adm-member"
        assert m.member_id == member.consumer.memberid()
        assert sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions) == [(topic, 0), (topic, 1)]

        # a group with members can't be deleted
        assert error_code(admin.delete_consumer_groups([group], request_timeout=T)[group]) == KafkaError.NON_EMPTY_GROUP
    finally:
        member.close()

    desc = admin.describe_consumer_groups([group], request_timeout=T)[group].result(timeout=T)
    assert (desc.state, desc.members) == (ConsumerGroupState.EMPTY, [])

    def committed():
        req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0), TopicPartition(topic, 1)])
        res = admin.list_consumer_group_offsets([req], request_timeout=T)[group].result(timeout=T)
        assert res.group_id == group
        return {tp.partition: tp.offset for tp in res.topic_partitions}

    assert committed() == {0: 3, 1: 5}
    # all offsets of the group (no partitions given)
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=T)[group]
    assert sorted((tp.topic, tp.partition, tp.offset) for tp in res.result(timeout=T).topic_partitions) == \
        [(topic, 0, 3), (topic, 1, 5)]

    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1), TopicPartition(topic, 1, 4)])
    res = admin.alter_consumer_group_offsets([req], request_timeout=T)[group].result(timeout=T)
    assert sorted((tp.partition, tp.offset, tp.error) for tp in res.topic_partitions) == [(0, 1, None), (1, 4, None)]
    assert committed() == {0: 1, 1: 4}

    assert admin.delete_consumer_groups([group], request_timeout=T)[group].result(timeout=T) is None
    listing = admin.list_consumer_groups(request_timeout=T).result(timeout=T)
    assert group not in [g.group_id for g in listing.valid]
    desc = admin.describe_consumer_groups([group], request_timeout=T)[group].result(timeout=T)
    assert desc.state == ConsumerGroupState.DEAD
    assert committed() == {0: -1001, 1: -1001}

    missing = unique("g-missing")
    assert error_code(admin.delete_consumer_groups([missing], request_timeout=T)[missing]) == \
        KafkaError.GROUP_ID_NOT_FOUND


def test_list_groups_legacy_api(server):
    admin = admin_client(server.bootstrap)
    topic, group = unique("adm-lg"), unique("g-lg")
    create_topic(server.bootstrap, topic, 1)
    member = Member(server.bootstrap, group, topic)
    try:
        poll_until([member], lambda: member.assignment() == {0}, "member assigned")
        with pytest.warns(DeprecationWarning):
            groups = {g.id: g for g in admin.list_groups(timeout=10)}
        assert group in groups
        g = groups[group]
        assert (g.state, g.protocol_type, g.protocol) == ("Stable", "consumer", "range")
        assert [m.id for m in g.members] == [member.consumer.memberid()]
    finally:
        member.close()

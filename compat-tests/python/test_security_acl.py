"""The authorizer with real clients: ACLs created, described and deleted through the
confluent-kafka and kafka-python admin clients, Kafka's error codes for every denial,
Metadata hiding, SCRAM credentials managed at run time, and everything surviving a
restart."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from helpers import (
    Msg,
    assert_all_delivered,
    confluent_consumer,
    consume_confluent,
    produce_confluent,
    unique,
)
from security_util import scram_args

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}


def sasl(user: str) -> dict:
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user, "sasl.password": USERS[user]}


def kp_sasl(user: str) -> dict:
    return dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                sasl_plain_username=user, sasl_plain_password=USERS[user])


@pytest.fixture
def secured(server_factory):
    return server_factory(
        sets={"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "authorizer.class.name": AUTHORIZER,
              "super.users": "User:admin"},
        args=scram_args(USERS),
    )


def admin_of(srv, user: str = "admin") -> AdminClient:
    return AdminClient({"bootstrap.servers": srv.listener("SASL_PLAINTEXT"), **sasl(user)})


def create(admin: AdminClient, bindings):
    for f in admin.create_acls(bindings, request_timeout=10).values():
        f.result(timeout=10)


def allow(principal: str, rtype, name: str, op, pattern=ResourcePatternType.LITERAL) -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, "*", op, AclPermissionType.ALLOW)


def key(b: AclBinding):
    return (b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type)


def test_acls_create_describe_delete_with_confluent(secured):
    admin = admin_of(secured)
    t = unique("acl")
    bindings = [
        allow("User:alice", ResourceType.TOPIC, t, AclOperation.READ),
        allow("User:alice", ResourceType.TOPIC, "logs-", AclOperation.WRITE, ResourcePatternType.PREFIXED),
        AclBinding(ResourceType.TOPIC, t, ResourcePatternType.LITERAL, "User:bob", "10.0.0.9",
                   AclOperation.ALL, AclPermissionType.DENY),
        allow("User:*", ResourceType.GROUP, "*", AclOperation.READ),
    ]
    create(admin, bindings)
    everything = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                                      AclOperation.ANY, AclPermissionType.ANY)).result(timeout=10)
    assert sorted(map(key, everything)) == sorted(map(key, bindings))
    # MATCH: the bindings that apply to topic "logs-app" (the prefixed one only).
    match = admin.describe_acls(AclBindingFilter(ResourceType.TOPIC, "logs-app", ResourcePatternType.MATCH, None,
                                                 None, AclOperation.ANY, AclPermissionType.ANY)).result(timeout=10)
    assert [key(b) for b in match] == [key(bindings[1])]
    # By principal.
    bob = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:bob", None,
                                               AclOperation.ANY, AclPermissionType.ANY)).result(timeout=10)
    assert [key(b) for b in bob] == [key(bindings[2])]
    # Delete everything on topic t (both literal bindings), nothing else.
    flt = AclBindingFilter(ResourceType.TOPIC, t, ResourcePatternType.LITERAL, None, None, AclOperation.ANY,
                           AclPermissionType.ANY)
    deleted = admin.delete_acls([flt], request_timeout=10)[flt].result(timeout=10)
    assert sorted(map(key, deleted)) == sorted(map(key, [bindings[0], bindings[2]]))
    left = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                                AclOperation.ANY, AclPermissionType.ANY)).result(timeout=10)
    assert sorted(map(key, left)) == sorted(map(key, [bindings[1], bindings[3]]))
    # The ACLs survive a restart.
    secured.restart()
    admin = admin_of(secured)
    again = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                                 AclOperation.ANY, AclPermissionType.ANY)).result(timeout=10)
    assert sorted(map(key, again)) == sorted(map(key, left))


def test_acls_with_kafka_python_admin(secured):
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             KafkaAdminClient, ResourcePattern, ResourcePatternFilter)
    from kafka.admin import ResourceType as KRT

    admin = KafkaAdminClient(bootstrap_servers=secured.listener("SASL_PLAINTEXT"), **kp_sasl("admin"))
    t = unique("kpacl")
    acl = ACL(principal="User:bob", host="*", operation=ACLOperation.WRITE, permission_type=ACLPermissionType.ALLOW,
              resource_pattern=ResourcePattern(KRT.TOPIC, t))
    result = admin.create_acls([acl])
    assert len(result["succeeded"]) == 1 and not result["failed"]
    flt = ACLFilter(principal="User:bob", host="*", operation=ACLOperation.ANY,
                    permission_type=ACLPermissionType.ANY,
                    resource_pattern=ResourcePatternFilter(KRT.TOPIC, t, ACLResourcePatternType.LITERAL))
    acls, err = admin.describe_acls(flt)
    assert err.errno == 0
    assert [(a.principal, a.operation, a.resource_pattern.resource_name) for a in acls] == [
        ("User:bob", ACLOperation.WRITE, t)]
    [(_, deleted, err)] = admin.delete_acls([flt])
    assert err.errno == 0 and len(deleted) == 1
    acls, err = admin.describe_acls(flt)
    assert acls == []
    admin.close()


def test_denials_answer_kafkas_codes(secured):
    admin = admin_of(secured)
    t = unique("guarded")
    admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)])[t].result(timeout=10)
    msgs = [Msg(key=b"k", value=f"v{i}".encode(), partition=0) for i in range(5)]
    assert_all_delivered(produce_confluent(secured.listener("SASL_PLAINTEXT"), t, msgs, conf=sasl("admin")))
    addr = secured.listener("SASL_PLAINTEXT")
    alice = sasl("alice")

    # Produce without WRITE.
    d = produce_confluent(addr, t, msgs[:1], conf={**alice, "message.timeout.ms": 5000, "enable.idempotence": False})
    assert d[0].error is not None and d[0].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Consume without READ on the topic (group READ granted): TOPIC_AUTHORIZATION_FAILED.
    create(admin, [allow("User:alice", ResourceType.GROUP, "*", AclOperation.READ)])
    c = confluent_consumer(addr, **{**alice, "group.id": unique("g")})
    c.subscribe([t])
    err = None
    deadline = time.monotonic() + 20
    while err is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error():
            err = m.error()
    c.close()
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

    # Consume with topic READ but no group READ: GROUP_AUTHORIZATION_FAILED on commit.
    create(admin, [allow("User:alice", ResourceType.TOPIC, t, AclOperation.READ)])
    gone = AclBindingFilter(ResourceType.GROUP, "*", ResourcePatternType.LITERAL, "User:alice", None,
                            AclOperation.ANY, AclPermissionType.ANY)
    admin.delete_acls([gone])[gone].result(timeout=10)
    c = confluent_consumer(addr, **{**alice, "group.id": unique("g")})
    c.subscribe([t])
    err = None
    deadline = time.monotonic() + 20
    while err is None and time.monotonic() < deadline:
        try:
            m = c.poll(0.5)
        except KafkaException as e:
            err = e.args[0]
            break
        if m is not None and m.error():
            err = m.error()
    c.close()
    assert err is not None and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, err

    # Create topic without CREATE.
    alice_admin = admin_of(secured, "alice")
    f = alice_admin.create_topics([NewTopic(unique("nope"), num_partitions=1, replication_factor=1)])
    with pytest.raises(KafkaException) as e:
        list(f.values())[0].result(timeout=10)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Describe configs without DESCRIBE_CONFIGS.
    res = ConfigResource(ConfigResource.Type.TOPIC, t)
    with pytest.raises(KafkaException) as e:
        alice_admin.describe_configs([res])[res].result(timeout=10)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Delete records without DELETE.
    from confluent_kafka import TopicPartition as TP
    futs = alice_admin.delete_records([TP(t, 0, 2)])
    with pytest.raises(KafkaException) as e:
        list(futs.values())[0].result(timeout=10)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Nothing was changed by the refused requests: the topic still holds its five records.
    got = consume_confluent(addr, t, {0: 5}, conf=sasl("admin"))
    assert [r.value for r in got] == [m.value for m in msgs]


def test_metadata_shows_only_describable_topics(secured):
    admin = admin_of(secured)
    visible, prefixed, hidden = unique("visible"), unique("team-a-"), unique("hidden")
    for t in (visible, prefixed, hidden):
        admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)])[t].result(timeout=10)
    create(admin, [
        allow("User:bob", ResourceType.TOPIC, visible, AclOperation.DESCRIBE),
        allow("User:bob", ResourceType.TOPIC, "team-a-", AclOperation.WRITE, ResourcePatternType.PREFIXED),
    ])
    bob = admin_of(secured, "bob")
    md = bob.list_topics(timeout=10)
    assert sorted(md.topics) == sorted([visible, prefixed])
    # Asked by name, a hidden topic answers TOPIC_AUTHORIZATION_FAILED, not "unknown".
    md = bob.list_topics(topic=hidden, timeout=10)
    assert md.topics[hidden].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The same for a topic that does not exist at all.
    ghost = unique("ghost")
    md = bob.list_topics(topic=ghost, timeout=10)
    assert md.topics[ghost].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # A DENY beats the prefixed ALLOW.
    create(admin, [AclBinding(ResourceType.TOPIC, prefixed, ResourcePatternType.LITERAL, "User:bob", "*",
                              AclOperation.DESCRIBE, AclPermissionType.DENY)])
    md = bob.list_topics(timeout=10)
    assert sorted(md.topics) == [visible]


def test_scram_credentials_managed_at_run_time(secured):
    admin = admin_of(secured)
    addr = secured.listener("SASL_PLAINTEXT")
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192)
    futs = admin.alter_user_scram_credentials([UserScramCredentialUpsertion("carol", info, b"carol-secret")])
    for f in futs.values():
        f.result(timeout=10)
    desc = admin.describe_user_scram_credentials(["carol"])
    carol = desc["carol"].result(timeout=10)
    assert [(i.mechanism, i.iterations) for i in carol.scram_credential_infos] == [
        (ScramMechanism.SCRAM_SHA_256, 8192)]
    # carol authenticates with SCRAM-SHA-256 (she has no ACLs, but Metadata answers).
    conf = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": "carol", "sasl.password": "carol-secret"}
    assert AdminClient({"bootstrap.servers": addr, **conf}).list_topics(timeout=10).topics == {}
    # Deleted: she can no longer log in.
    futs = admin.alter_user_scram_credentials([UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256)])
    for f in futs.values():
        f.result(timeout=10)
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": addr, **conf}).list_topics(timeout=5)
    # Non-super users may not manage credentials.
    alice_admin = admin_of(secured, "alice")
    futs = alice_admin.alter_user_scram_credentials([UserScramCredentialUpsertion("mallory", info, b"x")])
    with pytest.raises(KafkaException) as e:
        for f in futs.values():
            f.result(timeout=10)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # The stored credentials never contain the password.
    text = (secured.data_dir / "meta" / "security.json").read_text()
    assert "carol-secret" not in text and "alice-secret" not in text and "admin-secret" not in text


def test_authorizer_disabled_answers_security_disabled(server_factory):
    from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             KafkaAdminClient, ResourcePatternFilter)
    from kafka.admin import ResourceType as KRT
    from kafka.errors import SecurityDisabledError

    srv = server_factory()
    admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap)
    flt = ACLFilter(principal=None, host="*", operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
                    resource_pattern=ResourcePatternFilter(KRT.ANY, None, ACLResourcePatternType.ANY))
    with pytest.raises(SecurityDisabledError):
        admin.describe_acls(flt)
    admin.close()

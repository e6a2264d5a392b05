"""Raw-socket abuse and protocol edge cases. After each abuse the server must
still answer real clients."""

from __future__ import annotations

import os
import struct
import time

import pytest

import kafka_wire as w
from helpers import admin_client, consume_confluent, create_topic, kp_admin, now_ms, unique, watermarks

# Every API the gateway is specified to implement (Kafka API keys).
REQUIRED_APIS = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit", 9: "OffsetFetch",
    10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
    15: "DescribeGroups", 16: "ListGroups", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
    21: "DeleteRecords", 22: "InitProducerId", 32: "DescribeConfigs", 33: "AlterConfigs",
    35: "DescribeLogDirs", 37: "CreatePartitions", 42: "DeleteGroups", 44: "IncrementalAlterConfigs",
    47: "OffsetDelete", 60: "DescribeCluster",
}


def assert_clients_still_served(server, topic: str) -> None:
    """Both a librdkafka and a kafka-python client get Metadata with the topic."""
    md = admin_client(server.bootstrap).list_topics(timeout=10)
    assert topic in md.topics and len(md.topics[topic].partitions) == 1
    kp = kp_admin(server.bootstrap)
    try:
        assert topic in kp.list_topics()
    finally:
        kp.close()


@pytest.fixture
def topic(server):
    name = unique("raw")
    create_topic(server.bootstrap, name, 1)
    return name


def connect(server):
    return w.connect(server.kafka_host, server.kafka_port)


def test_api_versions_v0_advertises_required_apis(server):
    with connect(server) as s:
        body = w.roundtrip(s, w.api_versions_v0_request(7), 7)
    resp = w.parse_api_versions_v0(body)
    assert resp.error_code == 0
    ranges = {k: (lo, hi) for k, lo, hi in resp.apis}
    assert len(ranges) == len(resp.apis), "duplicate API keys advertised"
    missing = {k: n for k, n in REQUIRED_APIS.items() if k not in ranges}
    assert not missing, f"not advertised: {missing}"
    for k, (lo, hi) in ranges.items():
        assert 0 <= lo <= hi, f"api {k}: bad range {lo}..{hi}"
    assert ranges[18][0] == 0 and ranges[18][1] >= 3


def test_api_versions_v3_flexible(server):
    with connect(server) as s:
        body = w.roundtrip(s, w.api_versions_v3_request(9), 9)
    # v3 response header is v0 (no tagged fields, KIP-511); body is flexible
    r = w.Reader(body)
    assert r.i16() == 0
    n = r.take(1)[0] - 1  # compact array length (< 127 entries)
    keys = set()
    for _ in range(n):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        assert 0 <= lo <= hi
        assert r.take(1) == b"\x00"  # no tagged fields per entry
        keys.add(k)
    assert set(REQUIRED_APIS) <= keys


def test_garbage_bytes_close_connection(server, topic):
    with connect(server) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")  # 'GET ' = a 1.2 GB length prefix
        w.expect_closed(s)
    with connect(server) as s:
        s.sendall(os.urandom(3))  # less than a length prefix, then the client goes away
    with connect(server) as s:
        # a well-framed request whose header is cut short
        s.sendall(w.frame(b"\x00\x12\x00"))
        w.expect_closed(s)
    assert_clients_still_served(server, topic)


@pytest.mark.parametrize("length", [0x7FFFFFFF, -1, -2147483648], ids=["max-int", "minus-one", "min-int"])
def test_absurd_length_prefix_closes_connection(server, topic, length):
    with connect(server) as s:
        s.sendall(struct.pack(">i", length) + b"\x00\x12\x00\x00\x00\x00\x00\x01")
        w.expect_closed(s)
    assert_clients_still_served(server, topic)


def test_unknown_api_key_closes_connection(server, topic):
    with connect(server) as s:
        s.sendall(w.request(9999, 0, 1, b""))
        w.expect_closed(s)
    with connect(server) as s:
        s.sendall(w.request(-1, 0, 1, b""))
        w.expect_closed(s)
    assert_clients_still_served(server, topic)


def test_api_versions_unsupported_version_gets_v0_error(server, topic):
    with connect(server) as s:
        body = w.roundtrip(s, w.api_versions_v3_request(0x1234, version=127), 0x1234)
        resp = w.parse_api_versions_v0(body)  # v0 layout, nothing after the array
        assert resp.error_code == 35, f"error {resp.error_code}, expected UNSUPPORTED_VERSION (35)"
        own = [(lo, hi) for k, lo, hi in resp.apis if k == 18]
        assert len(own) == 1 and own[0][0] == 0 and own[0][1] >= 3, resp.apis
        # KIP-511: the client retries on the same connection with a supported version
        body = w.roundtrip(s, w.api_versions_v0_request(0x1235), 0x1235)
        retry = w.parse_api_versions_v0(body)
        assert retry.error_code == 0
        assert (18, 0, own[0][1]) in retry.apis
    assert_clients_still_served(server, topic)


def test_metadata_unsupported_version_closes_connection(server, topic):
    with connect(server) as s:
        s.sendall(w.request(w.API_METADATA, 99, 5, w.i32(-1)))
        w.expect_closed(s)
    assert_clients_still_served(server, topic)


def test_truncated_body_closes_connection(server, topic):
    with connect(server) as s:
        # Metadata v1 claiming a million topic names but carrying none
        s.sendall(w.request(w.API_METADATA, 1, 6, w.i32(1_000_000)))
        w.expect_closed(s)
    assert_clients_still_served(server, topic)


def test_pipelined_requests_answered_in_order(server, topic):
    with connect(server) as s:
        s.sendall(w.api_versions_v0_request(101) + w.metadata_v1_request(102, [topic])
                  + w.api_versions_v0_request(103) + w.metadata_v1_request(104))
        order = []
        for _ in range(4):
            corr, body = w.recv_frame(s)
            order.append(corr)
            if corr == 102:
                brokers, controller, topics = w.parse_metadata_v1(body)
                assert brokers == [(1, server.kafka_host, server.kafka_port, None)]
                assert controller == 1
                assert topics == {topic: (0, [(0, 0, 1, [1], [1])])}
        assert order == [101, 102, 103, 104]


def test_request_split_into_single_bytes(server, topic):
    req = w.metadata_v1_request(77, [topic])
    with connect(server) as s:
        for i in range(len(req)):
            s.sendall(req[i:i + 1])
        corr, body = w.recv_frame(s)
        assert corr == 77
        assert w.parse_metadata_v1(body)[2][topic][0] == 0


def test_idempotent_sequences_raw(server, topic):
    """Duplicate batches are acknowledged with their original offset and not
    appended twice; a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER."""
    ts = now_ms() - 1000
    with connect(server) as s:
        err, pid, epoch = w.parse_init_producer_id_v0(w.roundtrip(s, w.init_producer_id_v0_request(1), 1))
        assert err == 0 and pid >= 0 and epoch >= 0

        def produce(corr, seq, records, **kw):
            batch = w.record_batch(records, ts, pid, epoch, seq, **kw)
            return w.parse_produce_v3(w.roundtrip(s, w.produce_v3_request(corr, topic, 0, batch), corr))

        first = [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
        assert produce(2, 0, first) == [(topic, 0, 0, 0)]
        assert produce(3, 0, first) == [(topic, 0, 0, 0)], "retried batch must get its original offset"
        assert produce(4, 3, [(b"d", b"4")]) == [(topic, 0, 0, 3)]
        [(_, _, gap_err, _)] = produce(5, 10, [(b"x", b"gap")])
        assert gap_err == 45, f"sequence gap answered with {gap_err}, expected OUT_OF_ORDER_SEQUENCE_NUMBER (45)"
        # latest offset via ListOffsets v1
        lo = w.parse_list_offsets_v1(w.roundtrip(s, w.list_offsets_v1_request(6, topic, 0, -1), 6))
        assert [(p, e, off) for _, p, e, _, off in lo] == [(0, 0, 4)]
    recs = consume_confluent(server.bootstrap, topic, {0: 4})
    assert [(r.offset, r.key, r.value) for r in recs] == [(0, b"a", b"1"), (1, b"b", b"2"), (2, b"c", b"3"),
                                                          (3, b"d", b"4")]
    assert watermarks(server.bootstrap, topic, [0]) == {0: (0, 4)}


def test_corrupt_crc_rejected(server, topic):
    with connect(server) as s:
        batch = w.record_batch([(b"k", b"v")], now_ms(), corrupt_crc=True)
        [(_, _, err, _)] = w.parse_produce_v3(w.roundtrip(s, w.produce_v3_request(1, topic, 0, batch), 1))
        assert err == 2, f"corrupt batch answered with {err}, expected CORRUPT_MESSAGE (2)"
        good = w.record_batch([(b"k", b"v")], now_ms())
        assert w.parse_produce_v3(w.roundtrip(s, w.produce_v3_request(2, topic, 0, good), 2)) == [(topic, 0, 0, 0)]
    assert watermarks(server.bootstrap, topic, [0]) == {0: (0, 1)}


def test_many_connections_opened_and_dropped(server, topic):
    deadline = time.monotonic() + 60
    for i in range(200):
        assert time.monotonic() < deadline
        s = connect(server)
        if i % 2:
            s.sendall(w.api_versions_v0_request(i)[:7])  # half a request, then drop
        s.close()
    assert_clients_still_served(server, topic)


def test_fetch_long_poll_returns_when_data_arrives(server, topic):
    """A Fetch with min_bytes=1 on an empty partition waits, and answers with
    the record once one is appended (well before its 60 s max wait)."""
    with connect(server) as fetcher, connect(server) as producer:
        fetcher.settimeout(30)
        fetcher.sendall(w.fetch_v4_request(1, topic, 0, 0, max_wait_ms=60_000))
        batch = w.record_batch([(b"wake", b"up")], now_ms())
        assert w.parse_produce_v3(w.roundtrip(producer, w.produce_v3_request(2, topic, 0, batch), 2)) == \
            [(topic, 0, 0, 0)]
        corr, body = w.recv_frame(fetcher)  # socket timeout 30 s < max wait 60 s
        assert corr == 1
        [(name, p, err, hw, records)] = w.parse_fetch_v4(body)
        assert (name, p, err, hw) == (topic, 0, 0, 1)
        assert w.decode_batches(records) == [(0, b"wake", b"up")]


def test_fetch_out_of_range_offset(server, topic):
    with connect(server) as s:
        batch = w.record_batch([(b"k", b"v")], now_ms())
        assert w.parse_produce_v3(w.roundtrip(s, w.produce_v3_request(1, topic, 0, batch), 1)) == [(topic, 0, 0, 0)]
        [(_, _, err, hw, records)] = w.parse_fetch_v4(w.roundtrip(s, w.fetch_v4_request(2, topic, 0, 5, 100), 2))
        assert (err, hw, records) == (1, 1, b""), "fetch beyond the log end must be OFFSET_OUT_OF_RANGE (1)"
        [(_, _, err, hw, records)] = w.parse_fetch_v4(w.roundtrip(s, w.fetch_v4_request(3, topic, 0, 0, 100), 3))
        assert (err, hw) == (0, 1)
        assert w.decode_batches(records) == [(0, b"k", b"v")]
        [(_, _, err, _, _)] = w.parse_fetch_v4(w.roundtrip(s, w.fetch_v4_request(4, unique("nope"), 0, 0, 100), 4))
        assert err == 3, "fetch from an unknown topic must be UNKNOWN_TOPIC_OR_PARTITION (3)"


def test_forged_record_count_with_valid_crc_is_refused_and_the_server_stays_up(server):
    """A batch whose header claims 2^31-1 records (last offset delta to match, CRC recomputed,
    as anyone can) but carries one is refused with INVALID_RECORD, as Kafka's validator does:
    accepted, it moved the log end by 2^31 offsets, and decoding it reserved memory for the
    claimed count (found by scripts/fuzz kafka_records). Other batches still go through."""
    import struct

    import crc32c

    good = w.record_batch([(b"k", b"v")], now_ms())
    b = bytearray(good)
    # Offsets in a v2 batch: CRC at 17 (over 21..), last offset delta at 23, record count at 57.
    b[23:27] = struct.pack(">i", 0x7FFFFFFE)
    b[57:61] = struct.pack(">i", 0x7FFFFFFF)
    b[17:21] = struct.pack(">I", crc32c.crc32c(bytes(b[21:])))
    for config in ({}, {"cleanup.policy": "compact"}):
        topic = unique("forged")
        create_topic(server.bootstrap, topic, 1, config=config)
        with connect(server) as s:
            [(_, _, err, _)] = w.parse_produce_v3(w.roundtrip(s, w.produce_v3_request(1, topic, 0, bytes(b)), 1))
            assert err == 87, f"forged batch answered with {err}, expected INVALID_RECORD (87)"
            assert w.parse_produce_v3(w.roundtrip(s, w.produce_v3_request(2, topic, 0, good), 2)) == [(topic, 0, 0, 0)]
        assert watermarks(server.bootstrap, topic, [0]) == {0: (0, 1)}

"""Minimal hand-written Kafka wire encoding for raw-socket tests.

Only what the tests need: request headers v1/v2, ApiVersions v0/v3, Metadata
v1, InitProducerId v0, Produce v3, ListOffsets v1, and RecordBatch v2 with
CRC-32C. Independent of every client library on purpose."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import crc32c

API_PRODUCE = 0
API_LIST_OFFSETS = 2
API_METADATA = 3
API_API_VERSIONS = 18
API_INIT_PRODUCER_ID = 22


# -- primitives --------------------------------------------------------------

def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def string(s: Optional[str]) -> bytes:
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(v: int) -> bytes:
    return uvarint((v << 1) ^ (v >> 63))


def compact_string(s: str) -> bytes:
    b = s.encode()
    return uvarint(len(b) + 1) + b


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def request(api_key: int, version: int, corr: int, body: bytes, flexible: bool = False,
            client_id: Optional[str] = "compat-raw") -> bytes:
    header = i16(api_key) + i16(version) + i32(corr) + string(client_id)
    if flexible:
        header += uvarint(0)  # no tagged fields
    return frame(header + body)


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        assert self.pos + n <= len(self.data), f"response truncated: need {n} bytes at {self.pos} of {len(self.data)}"
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def string(self) -> Optional[str]:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def at_end(self) -> bool:
        return self.pos == len(self.data)


# -- socket helpers ------------------------------------------------------------

def connect(host: str, port: int, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def _recv_exact(sock: socket.socket, n: int) -> Optional[bytes]:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> Tuple[int, bytes]:
    """Read one response frame; returns (correlation_id, rest). Fails on close."""
    head = _recv_exact(sock, 4)
    assert head is not None, "server closed the connection instead of answering"
    (size,) = struct.unpack(">i", head)
    assert 4 <= size <= 100 * 1024 * 1024, f"bad response size {size}"
    payload = _recv_exact(sock, size)
    assert payload is not None, "server closed the connection mid-response"
    (corr,) = struct.unpack(">i", payload[:4])
    return corr, payload[4:]


def expect_closed(sock: socket.socket, timeout: float = 10.0) -> None:
    """The server must close the connection (EOF or reset) without sending bytes."""
    sock.settimeout(timeout)
    received = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        except socket.timeout:
            raise AssertionError(f"server neither answered nor closed the connection within {timeout}s")
        if not chunk:
            break
        received += chunk
        assert time.monotonic() < deadline, "server kept sending instead of closing"
    assert not received, f"server answered {bytes(received[:64])!r} instead of closing the connection"


# -- ApiVersions -----------------------------------------------------------------

@dataclass
class ApiVersionsV0:
    error_code: int
    apis: List[Tuple[int, int, int]]


def api_versions_v0_request(corr: int) -> bytes:
    return request(API_API_VERSIONS, 0, corr, b"")


def api_versions_v3_request(corr: int, version: int = 3) -> bytes:
    body = compact_string("compat-raw") + compact_string("1.0") + uvarint(0)
    return request(API_API_VERSIONS, version, corr, body, flexible=True)


def parse_api_versions_v0(body: bytes) -> ApiVersionsV0:
    r = Reader(body)
    err = r.i16()
    n = r.i32()
    apis = [(r.i16(), r.i16(), r.i16()) for _ in range(n)]
    assert r.at_end(), f"{len(body) - r.pos} trailing bytes after a v0 ApiVersions body"
    return ApiVersionsV0(err, apis)


# -- Metadata v1 ---------------------------------------------------------------------

def metadata_v1_request(corr: int, topics: Optional[Sequence[str]] = None) -> bytes:
    if topics is None:
        body = i32(-1)
    else:
        body = i32(len(topics)) + b"".join(string(t) for t in topics)
    return request(API_METADATA, 1, corr, body)


def parse_metadata_v1(body: bytes):
    r = Reader(body)
    brokers = []
    for _ in range(r.i32()):
        brokers.append((r.i32(), r.string(), r.i32(), r.string()))
    controller = r.i32()
    topics = {}
    for _ in range(r.i32()):
        err = r.i16()
        name = r.string()
        r.i8()  # is_internal
        parts = []
        for _ in range(r.i32()):
            perr, idx, leader = r.i16(), r.i32(), r.i32()
            replicas = [r.i32() for _ in range(r.i32())]
            isr = [r.i32() for _ in range(r.i32())]
            parts.append((idx, perr, leader, replicas, isr))
        topics[name] = (err, sorted(parts))
    assert r.at_end()
    return brokers, controller, topics


# -- InitProducerId v0 -------------------------------------------------------------------

def init_producer_id_v0_request(corr: int) -> bytes:
    return request(API_INIT_PRODUCER_ID, 0, corr, string(None) + i32(60000))


def parse_init_producer_id_v0(body: bytes) -> Tuple[int, int, int]:
    r = Reader(body)
    r.i32()  # throttle
    err, pid, epoch = r.i16(), r.i64(), r.i16()
    assert r.at_end()
    return err, pid, epoch


# -- RecordBatch v2 ----------------------------------------------------------------------

def record_batch(records: Sequence[Tuple[Optional[bytes], Optional[bytes]]], base_ts: int,
                 producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1,
                 corrupt_crc: bool = False) -> bytes:
    recs = b""
    for delta, (key, value) in enumerate(records):
        body = i8(0) + varint(delta) + varint(delta)  # attributes, timestamp delta, offset delta
        body += varint(-1) if key is None else varint(len(key)) + key
        body += varint(-1) if value is None else varint(len(value)) + value
        body += varint(0)  # headers
        recs += varint(len(body)) + body
    after_crc = (
        i16(0)                       # attributes: no compression, CreateTime
        + i32(len(records) - 1)      # last offset delta
        + i64(base_ts)               # base timestamp
        + i64(base_ts + len(records) - 1)  # max timestamp
        + i64(producer_id) + i16(producer_epoch) + i32(base_sequence)
        + i32(len(records)) + recs
    )
    crc = crc32c.crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    after_length = i32(-1) + i8(2) + struct.pack(">I", crc) + after_crc  # leader epoch, magic, crc
    return i64(0) + i32(len(after_length)) + after_length


# -- Produce v3 ----------------------------------------------------------------------------

def produce_v3_request(corr: int, topic: str, partition: int, batch: bytes, acks: int = -1) -> bytes:
    return request(API_PRODUCE, 3, corr, _produce_body(topic, [(partition, batch)], acks))


def _produce_body(topic: str, batches: Sequence[Tuple[int, bytes]], acks: int) -> bytes:
    """Produce v3-v8 body: one topic, one batch per listed partition."""
    body = string(None) + i16(acks) + i32(30000) + i32(1) + string(topic) + i32(len(batches))
    for partition, batch in batches:
        body += i32(partition) + i32(len(batch)) + batch
    return body


def parse_produce_v3(body: bytes) -> List[Tuple[str, int, int, int]]:
    """[(topic, partition, error_code, base_offset)]"""
    r = Reader(body)
    out = []
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p, err, base = r.i32(), r.i16(), r.i64()
            r.i64()  # log append time
            out.append((name, p, err, base))
    r.i32()  # throttle
    assert r.at_end()
    return out


# -- Produce v8 (KIP-467 record errors) -----------------------------------------------------------

def produce_v8_request(corr: int, topic: str, batches: Sequence[Tuple[int, bytes]], acks: int = -1) -> bytes:
    """One topic, one batch per listed partition."""
    return request(API_PRODUCE, 8, corr, _produce_body(topic, batches, acks))


def parse_produce_v8(body: bytes):
    """[(topic, partition, error_code, base_offset, [(batch_index, message)], error_message)]"""
    r = Reader(body)
    out = []
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p, err, base = r.i32(), r.i16(), r.i64()
            r.i64()  # log append time
            r.i64()  # log start offset
            record_errors = [(r.i32(), r.string()) for _ in range(r.i32())]
            out.append((name, p, err, base, record_errors, r.string()))
    r.i32()  # throttle
    assert r.at_end()
    return out


# -- ListOffsets v1 ----------------------------------------------------------------------------

def list_offsets_v1_request(corr: int, topic: str, partition: int, timestamp: int) -> bytes:
    body = i32(-1) + i32(1) + string(topic) + i32(1) + i32(partition) + i64(timestamp)
    return request(API_LIST_OFFSETS, 1, corr, body)


def parse_list_offsets_v1(body: bytes) -> List[Tuple[str, int, int, int, int]]:
    r = Reader(body)
    out = []
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            out.append((name, r.i32(), r.i16(), r.i64(), r.i64()))  # partition, error, timestamp, offset
    assert r.at_end()
    return out


def roundtrip(sock: socket.socket, req: bytes, corr: int) -> bytes:
    sock.sendall(req)
    got, body = recv_frame(sock)
    assert got == corr, f"correlation id {got} != {corr}"
    return body


# -- Fetch v4 ----------------------------------------------------------------------------------

API_FETCH = 1


def fetch_v4_request(corr: int, topic: str, partition: int, offset: int, max_wait_ms: int,
                     min_bytes: int = 1, max_bytes: int = 1 << 20) -> bytes:
    body = i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes) + i8(0)
    body += i32(1) + string(topic) + i32(1) + i32(partition) + i64(offset) + i32(max_bytes)
    return request(API_FETCH, 4, corr, body)


def parse_fetch_v4(body: bytes):
    """[(topic, partition, error_code, high_watermark, records_bytes)]"""
    r = Reader(body)
    r.i32()  # throttle
    out = []
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p, err, hw, _lso = r.i32(), r.i16(), r.i64(), r.i64()
            n_aborted = r.i32()
            for _ in range(max(n_aborted, 0)):
                r.i64(), r.i64()
            size = r.i32()
            records = b"" if size < 0 else r.take(size)
            out.append((name, p, err, hw, records))
    assert r.at_end()
    return out


def _read_varint(data: bytes, pos: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos


def decode_batches(data: bytes) -> List[Tuple[int, Optional[bytes], Optional[bytes]]]:
    """Uncompressed v2 batches -> [(offset, key, value)]; a trailing partial batch is ignored."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        base_offset, length = struct.unpack(">qi", data[pos:pos + 12])
        end = pos + 12 + length
        if end > len(data):
            break
        attrs = struct.unpack(">h", data[pos + 21:pos + 23])[0]
        assert attrs & 0x07 == 0, "compressed batch in decode_batches"
        count = struct.unpack(">i", data[pos + 57:pos + 61])[0]
        rp = pos + 61
        for _ in range(count):
            _len, rp = _read_varint(data, rp)
            rp += 1  # attributes
            _ts, rp = _read_varint(data, rp)
            delta, rp = _read_varint(data, rp)
            klen, rp = _read_varint(data, rp)
            key = None if klen < 0 else data[rp:rp + klen]
            rp += max(klen, 0)
            vlen, rp = _read_varint(data, rp)
            value = None if vlen < 0 else data[rp:rp + vlen]
            rp += max(vlen, 0)
            nh, rp = _read_varint(data, rp)
            for _ in range(nh):
                hk, rp = _read_varint(data, rp)
                rp += hk
                hv, rp = _read_varint(data, rp)
                rp += max(hv, 0)
            out.append((base_offset + delta, key, value))
        pos = end
    return out

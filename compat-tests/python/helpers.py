"""Shared helpers for the compatibility suite: deadlines, topic admin, and
exact produce/consume loops for confluent-kafka and kafka-python."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

DEFAULT_DEADLINE_S = 30.0

Header = Tuple[str, Optional[bytes]]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(pred: Callable[[], Any], desc: str, timeout: float = DEFAULT_DEADLINE_S, interval: float = 0.05):
    """Poll `pred` until it returns a truthy value; fail with `desc` at the deadline.

    Exceptions raised by `pred` are remembered and shown if the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    last_val: Any = None
    while True:
        try:
            last_val = pred()
            if last_val:
                return last_val
        except Exception as exc:  # noqa: BLE001 - reported at the deadline
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f"; last exception: {last_exc!r}" if last_exc else f"; last value: {last_val!r}"
            raise AssertionError(f"timed out after {timeout}s waiting for: {desc}{detail}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rec:
    """A consumed record, normalized across clients."""

    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: Tuple[Header, ...] = ()
    timestamp: Optional[int] = None
    ts_type: Optional[str] = None  # "create" | "append" | None


@dataclass(frozen=True)
class Msg:
    """A record to produce (and the expectation for consuming it back)."""

    partition: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: Tuple[Header, ...] = ()
    timestamp: Optional[int] = None


@dataclass
class Delivery:
    msg: Msg
    partition: int
    offset: int
    error: Optional[KafkaError]


def rec_from_confluent(m) -> Rec:
    ts_type, ts = m.timestamp()
    kind = {TIMESTAMP_CREATE_TIME: "create", TIMESTAMP_LOG_APPEND_TIME: "append"}.get(ts_type)
    headers = tuple((k, v) for k, v in (m.headers() or []))
    return Rec(m.partition(), m.offset(), m.key(), m.value(), headers, ts if kind else None, kind)


def rec_from_kafka_python(r) -> Rec:
    kind = {0: "create", 1: "append"}.get(r.timestamp_type)
    headers = tuple((k, v) for k, v in (r.headers or []))
    return Rec(r.partition, r.offset, r.key, r.value, headers, r.timestamp if kind else None, kind)


def by_partition(recs: Iterable[Rec]) -> Dict[int, List[Rec]]:
    out: Dict[int, List[Rec]] = {}
    for r in recs:
        out.setdefault(r.partition, []).append(r)
    return out


def assert_records_match(consumed: Sequence[Rec], deliveries: Sequence[Delivery], check_timestamp: bool = True) -> None:
    """Every delivered message is consumed exactly once at its delivered offset,
    with identical key, value, headers and CreateTime timestamp, and per-partition
    offsets are exactly the delivered ones in order."""
    expected = sorted(deliveries, key=lambda d: (d.partition, d.offset))
    got = sorted(consumed, key=lambda r: (r.partition, r.offset))
    assert [(r.partition, r.offset) for r in got] == [(d.partition, d.offset) for d in expected], (
        "consumed (partition, offset) set differs from delivered"
    )
    for d, r in zip(expected, got):
        m = d.msg
        assert (r.key, r.value) == (m.key, m.value), f"p{r.partition}@{r.offset}: key/value mismatch"
        assert r.headers == tuple(m.headers), f"p{r.partition}@{r.offset}: headers {r.headers!r} != {m.headers!r}"
        if check_timestamp and m.timestamp is not None:
            assert (r.ts_type, r.timestamp) == ("create", m.timestamp), f"p{r.partition}@{r.offset}: timestamp"


# ---------------------------------------------------------------------------
# confluent-kafka
# ---------------------------------------------------------------------------


def admin_client(bootstrap: str, **conf) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **conf})


def wait_topic_ready(bootstrap: str, topic: str, partitions: int, timeout: float = DEFAULT_DEADLINE_S) -> None:
    """Metadata shows the topic with exactly `partitions` partitions, each led by a broker."""
    admin = admin_client(bootstrap)

    def ready():
        md = admin.list_topics(topic=topic, timeout=5)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return False
        return len(t.partitions) == partitions and all(p.leader >= 0 for p in t.partitions.values())

    wait_until(ready, f"topic {topic} with {partitions} partitions in metadata", timeout)


def create_topic(bootstrap: str, topic: str, partitions: int = 1, config: Optional[Dict[str, str]] = None) -> None:
    admin = admin_client(bootstrap)
    futs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
                               request_timeout=30)
    futs[topic].result(timeout=30)
    wait_topic_ready(bootstrap, topic, partitions)


def produce_confluent(bootstrap: str, topic: str, msgs: Sequence[Msg], conf: Optional[Dict[str, Any]] = None,
                      flush_timeout: float = 60.0) -> List[Delivery]:
    """Produce all messages; return one Delivery per message, in produce order.
    Fails if any delivery report is missing after the flush deadline."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **(conf or {})})
    deliveries: List[Optional[Delivery]] = [None] * len(msgs)

    def make_cb(i: int, m: Msg):
        def cb(err, msg):
            deliveries[i] = Delivery(m, msg.partition(), msg.offset(), err)
        return cb

    for i, m in enumerate(msgs):
        kwargs: Dict[str, Any] = dict(value=m.value, key=m.key, partition=m.partition, on_delivery=make_cb(i, m))
        if m.headers:
            kwargs["headers"] = list(m.headers)
        if m.timestamp is not None:
            kwargs["timestamp"] = m.timestamp
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(flush_timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {flush_timeout}s flush"
    missing = [i for i, d in enumerate(deliveries) if d is None]
    assert not missing, f"no delivery report for messages {missing[:10]}"
    return deliveries  # type: ignore[return-value]


def assert_all_delivered(deliveries: Sequence[Delivery]) -> None:
    errors = [(i, d.error) for i, d in enumerate(deliveries) if d.error is not None]
    assert not errors, f"delivery errors: {errors[:5]}"


def assert_offsets_in_produce_order(deliveries: Sequence[Delivery], start: int = 0) -> None:
    """Per partition, delivered offsets are start, start+1, ... in produce order."""
    per: Dict[int, List[int]] = {}
    for d in deliveries:
        per.setdefault(d.partition, []).append(d.offset)
    for p, offs in per.items():
        assert offs == list(range(start, start + len(offs))), f"partition {p}: delivered offsets {offs[:20]}..."


def confluent_consumer(bootstrap: str, **conf) -> Consumer:
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": unique("compat-reader"),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    }
    base.update(conf)
    return Consumer(base)


def consume_confluent(bootstrap: str, topic: str, ends: Dict[int, int], starts: Optional[Dict[int, int]] = None,
                      timeout: float = DEFAULT_DEADLINE_S, conf: Optional[Dict[str, Any]] = None) -> List[Rec]:
    """Read partitions from `starts` (default: beginning) until each partition's
    next offset reaches `ends[p]`. Returns records in arrival order."""
    c = confluent_consumer(bootstrap, **(conf or {}))
    try:
        tps = [TopicPartition(topic, p, (starts or {}).get(p, OFFSET_BEGINNING)) for p in sorted(ends)]
        c.assign(tps)
        nxt: Dict[int, int] = {p: -1 for p in ends}
        out: List[Rec] = []
        deadline = time.monotonic() + timeout

        def done() -> bool:
            return all(nxt[p] >= ends[p] or (ends[p] == 0) for p in ends)

        while not done():
            assert time.monotonic() < deadline, (
                f"timed out consuming {topic}: next offsets {nxt}, wanted {ends}, got {len(out)} records"
            )
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            out.append(rec_from_confluent(m))
            nxt[m.partition()] = m.offset() + 1
        return out
    finally:
        c.close()


def watermarks(bootstrap: str, topic: str, partitions: Iterable[int]) -> Dict[int, Tuple[int, int]]:
    c = confluent_consumer(bootstrap)
    try:
        return {p: tuple(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False))
                for p in partitions}
    finally:
        c.close()


def ends_from_deliveries(deliveries: Sequence[Delivery], partitions: Iterable[int]) -> Dict[int, int]:
    ends = {p: 0 for p in partitions}
    for d in deliveries:
        ends[d.partition] = max(ends[d.partition], d.offset + 1)
    return ends


# ---------------------------------------------------------------------------
# consumer group members (confluent-kafka)
# ---------------------------------------------------------------------------

GROUP_DEADLINE_S = 60.0


class Member:
    """A subscribed consumer that records rebalance callbacks and messages."""

    def __init__(self, bootstrap: str, group: str, topic: str, **conf):
        base = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
        }
        base.update(conf)
        self.topic = topic
        self.consumer = Consumer(base)
        self.events: List[Tuple[str, Set[int]]] = []
        self.records: List[Rec] = []
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)

    def _on_assign(self, consumer, partitions):
        self.events.append(("assign", {tp.partition for tp in partitions}))

    def _on_revoke(self, consumer, partitions):
        self.events.append(("revoke", {tp.partition for tp in partitions}))

    def _on_lost(self, consumer, partitions):
        self.events.append(("lost", {tp.partition for tp in partitions}))

    def nonempty_events(self):
        return [e for e in self.events if e[1]]

    def assignment(self) -> Set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def poll_once(self, timeout: float = 0.05) -> None:
        m = self.consumer.poll(timeout)
        if m is None:
            return
        if m.error():
            raise KafkaException(m.error())
        self.records.append(rec_from_confluent(m))

    def commit(self, offsets: Dict[int, int]) -> None:
        res = self.consumer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()],
                                   asynchronous=False)
        assert {(tp.partition, tp.offset) for tp in res} == set(offsets.items())
        assert all(tp.error is None for tp in res), res

    def committed(self, partitions) -> Dict[int, int]:
        res = self.consumer.committed([TopicPartition(self.topic, p) for p in partitions], timeout=10)
        assert all(tp.error is None for tp in res), res
        return {tp.partition: tp.offset for tp in res}

    def positions(self, partitions) -> Dict[int, int]:
        return {tp.partition: tp.offset
                for tp in self.consumer.position([TopicPartition(self.topic, p) for p in partitions])}

    def close(self) -> None:
        self.consumer.close()


def poll_until(members: List[Member], cond, desc: str, timeout: float = GROUP_DEADLINE_S):
    deadline = time.monotonic() + timeout
    while True:
        for m in members:
            m.poll_once()
        if cond():
            return
        if time.monotonic() > deadline:
            state = {i: (sorted(m.assignment()), m.events, len(m.records)) for i, m in enumerate(members)}
            raise AssertionError(f"timed out after {timeout}s waiting for {desc}; members: {state}")


# ---------------------------------------------------------------------------
# kafka-python
# ---------------------------------------------------------------------------


def kp_consume(bootstrap: str, topic: str, ends: Dict[int, int], timeout: float = DEFAULT_DEADLINE_S,
               **conf) -> List[Rec]:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                      group_id=None, **conf)
    try:
        tps = [KTP(topic, p) for p in sorted(ends)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out: List[Rec] = []
        nxt = {p: -1 for p in ends}
        deadline = time.monotonic() + timeout
        while not all(nxt[p] >= ends[p] or ends[p] == 0 for p in ends):
            assert time.monotonic() < deadline, (
                f"timed out consuming {topic} with kafka-python: next {nxt}, wanted {ends}"
            )
            batch = c.poll(timeout_ms=200)
            for _tp, records in batch.items():
                for r in records:
                    out.append(rec_from_kafka_python(r))
                    nxt[r.partition] = r.offset + 1
        return out
    finally:
        c.close()


def kp_produce(bootstrap: str, topic: str, msgs: Sequence[Msg], **conf) -> List[Delivery]:
    """Produce with kafka-python; returns deliveries in produce order."""
    from kafka import KafkaProducer

    p = KafkaProducer(**{"bootstrap_servers": bootstrap, "linger_ms": 5, **conf})
    try:
        futs = []
        for m in msgs:
            futs.append(p.send(topic, value=m.value, key=m.key, partition=m.partition,
                               headers=list(m.headers) if m.headers else None, timestamp_ms=m.timestamp))
        p.flush(timeout=60)
        out = []
        for m, f in zip(msgs, futs):
            try:
                md = f.get(timeout=30)
                out.append(Delivery(m, md.partition, md.offset, None))
            except Exception as exc:  # noqa: BLE001 - collected and asserted by callers
                out.append(Delivery(m, m.partition, -1, exc))  # type: ignore[arg-type]
        return out
    finally:
        p.close(timeout=10)


def kp_admin(bootstrap: str, **conf):
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, **conf)


# ---------------------------------------------------------------------------
# kcat (librdkafka 2.0.2 CLI from Debian)
# ---------------------------------------------------------------------------

KCAT = shutil.which("kcat") or "kcat"


def run_kcat(args, stdin: bytes = b"", timeout: float = 60.0) -> subprocess.CompletedProcess:
    proc = subprocess.run([KCAT, *args], input=stdin, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"kcat {' '.join(args)} exited {proc.returncode}\nstderr: {proc.stderr.decode(errors='replace')}"
    )
    return proc


def kcat_consume(bootstrap: str, topic: str, fmt: str):
    proc = run_kcat(["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt])
    return proc.stdout.decode("utf-8")


# ---------------------------------------------------------------------------
# test data
# ---------------------------------------------------------------------------


def sample_messages(partitions: int, per_partition: int, base_ts: int, with_headers: bool = True,
                    value_size: int = 0) -> List[Msg]:
    """Deterministic messages, interleaved across partitions."""
    msgs = []
    for i in range(per_partition):
        for p in range(partitions):
            key = f"key-{p}-{i}".encode()
            body = f"value-{p}-{i}-".encode()
            if value_size:
                body = (body * (value_size // len(body) + 1))[:value_size]
            headers: Tuple[Header, ...] = ()
            if with_headers and i % 3 != 2:
                headers = (("seq", str(i).encode()), ("part", str(p).encode()))
            msgs.append(Msg(p, key, body, headers, base_ts + i * 10 + p))
    return msgs

"""Prometheus metrics endpoint: per-topic message counters move by exactly N.

Metric names are pinned to docs/metrics.md (kafka_messages_in_total{topic}).
"""

from __future__ import annotations

import re
import urllib.request
from typing import Dict, List, Tuple

from helpers import (
    Msg,
    assert_all_delivered,
    consume_confluent,
    create_topic,
    kp_produce,
    produce_confluent,
    unique,
    wait_until,
)

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\d+)?$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(server) -> Tuple[str, str]:
    with urllib.request.urlopen(server.metrics_url, timeout=10) as resp:
        assert resp.status == 200
        return resp.headers.get("Content-Type", ""), resp.read().decode("utf-8")


def parse(text: str) -> List[Tuple[str, Dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not Prometheus text exposition: {line!r}"
        labels = dict(LABEL_RE.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def topic_value(server, name: str, topic: str) -> float:
    _, text = scrape(server)
    return sum(v for n, labels, v in parse(text) if n == name and labels.get("topic") == topic)


def test_metrics_is_prometheus_text(server):
    topic = unique("metrics-text")
    create_topic(server.bootstrap, topic, 1)
    assert_all_delivered(produce_confluent(server.bootstrap, topic, [Msg(0, None, b"x")]))
    wait_until(lambda: topic_value(server, "kafka_messages_in_total", topic) == 1, "traffic recorded", timeout=10)
    ctype, text = scrape(server)
    assert ctype.startswith("text/plain"), ctype
    samples = parse(text)
    assert samples, "empty metrics page"
    # every sample's family has a TYPE line
    typed = set(re.findall(r"^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$", text, re.M))
    families = {n for n, _ in typed}
    for n, _, _ in samples:
        base = re.sub(r"_(bucket|sum|count)$", "", n)
        assert n in families or base in families, f"sample {n} has no # TYPE line"


def test_messages_in_counts_exactly(server):
    topic = unique("metrics")
    other = unique("metrics-other")
    create_topic(server.bootstrap, topic, 2)
    create_topic(server.bootstrap, other, 1)
    name = "kafka_messages_in_total"
    before = topic_value(server, name, topic)
    before_other = topic_value(server, name, other)

    n1 = 37
    assert_all_delivered(produce_confluent(server.bootstrap, topic,
                                           [Msg(i % 2, None, f"m{i}".encode()) for i in range(n1)]))
    wait_until(lambda: topic_value(server, name, topic) == before + n1, f"{name}{{topic={topic}}} += {n1}", timeout=10)

    # batches from another client, compressed, count record by record
    n2 = 25
    assert_all_delivered(kp_produce(server.bootstrap, topic, [Msg(0, None, f"z{i}".encode()) for i in range(n2)],
                                    compression_type="gzip", linger_ms=50))
    wait_until(lambda: topic_value(server, name, topic) == before + n1 + n2, f"{name} += {n2} more", timeout=10)
    assert topic_value(server, name, other) == before_other  # other topics untouched

    # consuming does not move messages-in, and messages-out grows by what was served
    out_before = topic_value(server, "kafka_messages_out_total", topic)
    consume_confluent(server.bootstrap, topic, {0: 19 + n2, 1: 18})
    wait_until(lambda: topic_value(server, "kafka_messages_out_total", topic) >= out_before + n1 + n2,
               "kafka_messages_out_total grew by at least the records read", timeout=10)
    assert topic_value(server, name, topic) == before + n1 + n2

"""Failover time of a Kafka partition leader: SIGKILL the leader of a replicated topic under an
idempotent acks=all producer (confluent-kafka/librdkafka) and measure, per kill, the time from
the kill to the first acknowledgement of a record sent after it to a partition the dead node
led. The node is restarted and back in every ISR before the next kill. At the end every
acknowledged record is read back (missing ones are reported as lost).

Run through scripts/failover (which uses the project's venv):
    scripts/failover [--kills 20] [--nodes 3] [--set key=value ...]
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPIC = "failover"
PARTITIONS = 6


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def controller(work, node):
    """The controller id as node `node` sees it (its metrics), or None."""
    import urllib.request
    ports = dict(kv.split("=", 1) for kv in open(os.path.join(work, f"node-{node}.ports")).read().split())
    try:
        body = urllib.request.urlopen(f"http://{ports['metrics']}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith("cluster_controller_id "):
            return int(float(line.split()[1]))
    return None


def leaders(admin):
    md = admin.list_topics(TOPIC, timeout=10)
    t = md.topics.get(TOPIC)
    if t is None or t.error is not None:
        return {}
    return {p.id: (p.leader, sorted(p.isrs)) for p in t.partitions.values()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--rate", type=int, default=2000, help="records per second")
    ap.add_argument("--keep", action="store_true", help="keep the cluster's directory")
    ap.add_argument("--debug", help="librdkafka debug contexts for the producer (to stderr)")
    ap.add_argument("--set", action="append", default=[], help="extra node config key=value")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="failover-")
    sets = []
    # The product's defaults, not scripts/cluster's shorter test timings.
    for kv in ["broker.heartbeat.interval.ms=500", "broker.session.timeout.ms=9000"] + a.set:
        sets += ["--set", kv]
    sh(os.path.join(ROOT, "scripts/cluster"), "up", str(a.nodes), work, *sets)
    try:
        run(a, work)
    finally:
        subprocess.run([os.path.join(ROOT, "scripts/cluster"), "down", work],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if a.keep:
            print(f"logs kept in {work}")
        else:
            subprocess.run(["rm", "-rf", work])


def run(a, work):
    bootstrap = open(os.path.join(work, "bootstrap")).read().strip()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(TOPIC, PARTITIONS, min(3, a.nodes))]).values():
        f.result()
    deadline = time.time() + 30
    while len(leaders(admin)) < PARTITIONS and time.time() < deadline:
        time.sleep(0.1)

    lock = threading.Lock()
    acked = {}  # seq -> (partition, offset)
    first_ack_after = {}  # partition -> ack time of the first record sent after the kill
    state = {"kill_time": None, "watch": set(), "errors": 0}

    def on_delivery(err, msg, seq, sent):
        now = time.monotonic()
        if err is not None:
            with lock:
                state["errors"] += 1
            return
        with lock:
            acked[seq] = (msg.partition(), msg.offset())
            k = state["kill_time"]
            p = msg.partition()
            if k is not None and sent > k and p in state["watch"] and p not in first_ack_after:
                first_ack_after[p] = now

    prod = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 0,
        "message.timeout.ms": 120000,
        **({"debug": a.debug} if a.debug else {}),
    })
    stop = threading.Event()

    def produce():
        seq = 0
        interval = 1.0 / a.rate
        nxt = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now < nxt:
                prod.poll(nxt - now)
                continue
            nxt += interval
            prod.produce(TOPIC, value=str(seq).encode(), partition=seq % PARTITIONS,
                         on_delivery=lambda e, m, s=seq, t=now: on_delivery_wrap(e, m, s, t))
            seq += 1
            prod.poll(0)
        prod.flush(120)
        state["sent"] = seq

    def on_delivery_wrap(err, msg, seq, sent):
        on_delivery(err, msg, seq, sent)

    t = threading.Thread(target=produce)
    t.start()
    time.sleep(2)
    times = []
    try:
        for k in range(a.kills):
            lead = leaders(admin)
            victim = lead[0][0]
            watch = {p for p, (l, _) in lead.items() if l == victim}
            pid = int(open(os.path.join(work, f"node-{victim}.pid")).read())
            was_controller = controller(work, victim) == victim
            with lock:
                first_ack_after.clear()
                state["watch"] = watch
                state["kill_time"] = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            wall = time.strftime("%H:%M:%S", time.gmtime()) + f"{time.time() % 1:.3f}"[1:]
            kill_time = state["kill_time"]
            deadline = kill_time + 60
            while time.monotonic() < deadline:
                with lock:
                    if first_ack_after:
                        break
                time.sleep(0.005)
            with lock:
                got = min(first_ack_after.values()) if first_ack_after else None
                state["kill_time"] = None
            took = (got - kill_time) if got is not None else float("inf")
            times.append(took)
            role = " (controller)" if was_controller else ""
            print(f"kill {k + 1}: node {victim}{role} (led {sorted(watch)}): "
                  f"first acknowledgement after {took:.3f} s (killed at {wall} UTC)", flush=True)
            sh("sh", os.path.join(work, f"node-{victim}.cmd"))
            # Back in every ISR before the next kill.
            deadline = time.time() + 60
            while time.time() < deadline:
                if all(len(isr) == min(3, a.nodes) for _, isr in leaders(admin).values()):
                    break
                time.sleep(0.2)
            time.sleep(1)
    finally:
        stop.set()
        t.join()

    # Everything acknowledged is there.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "failover-check",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    ends = {}
    for p in range(PARTITIONS):
        _, hi = c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
        ends[p] = hi
    c.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    seen = {}
    remaining = sum(ends.values())
    deadline = time.time() + 120
    while remaining > 0 and time.time() < deadline:
        for m in c.consume(1000, 1.0):
            if m.error():
                continue
            seen.setdefault(int(m.value()), []).append((m.partition(), m.offset()))
            remaining -= 1
    c.close()
    lost = [s for s in acked if s not in seen]
    dups = [s for s, v in seen.items() if len(v) > 1]
    finite = [x for x in times if x != float("inf")]
    print(f"kills: {len(times)}; failover median {statistics.median(times):.3f} s, "
          f"worst {max(times):.3f} s, best {min(finite) if finite else float('nan'):.3f} s")
    print(f"records sent {state.get('sent')}, acknowledged {len(acked)}, "
          f"delivery errors {state['errors']}, lost {len(lost)}, duplicated {len(dups)}")
    return 0 if not lost and not dups else 1


if __name__ == "__main__":
    sys.exit(main())

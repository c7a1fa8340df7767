"""Commit to MQTT subscriber (issue 26): a detector commits rows one by one at a steady
rate; `manage.py publish_mqtt` publishes them to Debian's mosquitto; a paho subscriber on
`<prefix>/violations/#` notes when each arrives. The latency of a row is from its commit
returning to the detector to its message reaching the subscriber (one machine, one clock).

    python bench/mqtt.py [--database-url URL] [--rate 100] [--seconds 30]

Prints one JSON line (and appends it to bench/results.jsonl with --record).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mqtt_peers import Mosquitto, Subscriber  # noqa: E402

PREFIX = "bench"


def fresh_database(url: str, env: dict[str, str]) -> None:
    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )


def detector(url: str, rate: float, seconds: float) -> dict[int, float]:
    """Commits rate*seconds rows, one transaction each, on schedule; row id -> commit time."""
    committed: dict[int, float] = {}
    count = int(rate * seconds)
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.monotonic()
        for n in range(count):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            row = conn.execute(
                "INSERT INTO violation_ppedetections"
                " (camera_id, violation_date, violation_time, violation_image)"
                " VALUES (%s, CURRENT_DATE, LOCALTIME(0), '/bench/x.jpg') RETURNING id",
                [n % 16],
            ).fetchone()
            assert row is not None
            committed[int(row[0])] = time.time()
    return committed


class NotifyFloor:
    """A bare LISTEN beside the publisher: when each row's NOTIFY reaches a process of this
    machine (no log read, no broker). The floor of the latency under the machine's load."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.arrived: dict[int, float] = {}
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("LISTEN realtime_changed_v1")
            self.ready.set()
            while not self.stopping.is_set():
                for notify in conn.notifies(timeout=0.5):
                    data = json.loads(notify.payload).get("data") or {}
                    self.arrived.setdefault(int(data.get("id", 0)), time.time())


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/realtime_bench_mqtt"
    )
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    broker = Mosquitto(workdir).start()
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "DJANGO_SECRET_KEY": "bench-secret-key-0123456789abcdefghijkl",
        "REALTIME_ENV_FILE": "",
        "REALTIME_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}/{PREFIX}",
        "PYTHONUNBUFFERED": "1",
    }
    fresh_database(args.database_url, env)
    subscriber = Subscriber(broker.port, f"{PREFIX}/#", client_id="bench").start()
    log = (workdir / "publish_mqtt.log").open("wb")
    publisher = subprocess.Popen(
        [sys.executable, "manage.py", "publish_mqtt"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        subscriber.wait_for(lambda got: any(m.topic.endswith("/available") for m in got))
        cpu_at_start = process_cpu_seconds(publisher.pid)
        floor = NotifyFloor(args.database_url)
        floor.thread.start()
        floor.ready.wait(10)
        committed = detector(args.database_url, args.rate, args.seconds)
        subscriber.wait_for(
            lambda got: (
                len({m.json()["data"]["id"] for m in got if "/violations/" in m.topic})
                >= len(committed)
            ),
            timeout=30,
        )
        cpu_seconds = process_cpu_seconds(publisher.pid) - cpu_at_start
    finally:
        floor.stopping.set()
        publisher.terminate()
        publisher.wait(10)
        subscriber.stop()
        broker.stop()
    arrived: dict[int, float] = {}
    for message in subscriber.messages:
        if "/violations/" in message.topic:
            arrived.setdefault(message.json()["data"]["id"], message.at)
    latencies = [(arrived[i] - committed[i]) * 1000 for i in committed if i in arrived]
    notified = [(floor.arrived[i] - committed[i]) * 1000 for i in committed if i in floor.arrived]
    result = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "scenario": "mqtt",
        "target": "p99 <= 50 ms",
        "rate": args.rate,
        "seconds": args.seconds,
        "events": len(committed),
        "delivered": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
        # The same rows' NOTIFY to a bare LISTEN on this machine, for comparison.
        "notify_p50_ms": round(statistics.median(notified), 2),
        "notify_p99_ms": round(percentile(notified, 99), 2),
        # The publisher's CPU while the rows were written and received, in % of one core.
        "publisher_cpu_pct": round(100 * cpu_seconds / args.seconds, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(result))
    if args.record:
        with (ROOT / "bench" / "results.jsonl").open("a") as out:
            out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

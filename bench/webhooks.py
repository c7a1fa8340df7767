"""Benchmark (#26): from a violation's COMMIT to its webhook delivery at the receiver.

In a database of its own (made and migrated here), one `manage.py notify` (the sender of
alerts and webhooks) delivers to a real HTTP receiver in this process (tests/alerting.py),
every signature checked with the Standard Webhooks library; a writer INSERTs `--rate`
violations a second with plain SQL, each its own transaction, noting its COMMIT's time.
A delivery is matched to its violation by the `violation_image` it carries; the latency is
the receiver's clock minus the COMMIT's (one machine, one clock). One JSON line goes to
--out, and a line to the terminal.

    python bench/webhooks.py --help
    python bench/webhooks.py                     # 100 violations/s for 30 s
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from run import ensure_database  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def write_violations(url: str, run: str, rate: float, duration: float) -> dict[str, float]:
    committed: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        start, n = time.monotonic(), 0
        while time.monotonic() - start < duration:
            image = f"/bench/{run}/{n}.jpg"
            conn.execute(
                "INSERT INTO violation_ppedetections"
                " (camera_id, violation_date, violation_time, violation_image)"
                " VALUES (%s, CURRENT_DATE, LOCALTIME(0), %s)",
                [1 + n % 10, image],
            )
            committed[image] = time.time()
            n += 1
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
    return committed


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/realtime_bench_hooks"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="violations per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of violations")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.jsonl")
    args = parser.parse_args()

    ensure_database(args.database_url)
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": args.database_url,
        "DJANGO_SECRET_KEY": "bench-secret-key-0123456789abcdefghijkl",
        "REALTIME_ENV_FILE": "",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )
    os.environ.update(env)
    import django

    django.setup()
    from standardwebhooks import Webhook as Verifier

    from realtime.models import Webhook
    from tests.alerting import HTTPReceiver
    from tests.helpers import Process

    with psycopg.connect(args.database_url, autocommit=True) as pg:
        pg.execute("TRUNCATE realtime_webhook, realtime_alert_progress CASCADE")
    http = HTTPReceiver().up()
    Webhook.objects.create(url=http.http_url, secret=SECRET)
    logs = ROOT / "bench" / "logs"
    logs.mkdir(exist_ok=True)
    worker = Process(
        [sys.executable, "manage.py", "notify"], {**os.environ, **env}, logs / "hooks-notify.log"
    ).start()
    try:
        worker.wait_for_log("alerts worker started")
        time.sleep(2)  # its place in the log taken
        run = f"hooks-{int(time.time())}"
        cpu_before = psutil.Process(worker.pid).cpu_times()
        committed = write_violations(args.database_url, run, args.rate, args.duration)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = {p.body["data"]["data"]["violation_image"] for p in http.received()}
            if set(committed) <= seen:
                break
            time.sleep(0.2)
        time.sleep(2)
        cpu_after = psutil.Process(worker.pid).cpu_times()
    finally:
        worker.stop()
        http.down()
    verifier = Verifier(SECRET)
    latencies: dict[str, float] = {}
    ids: list[str] = []
    for post in http.received():
        headers = {k.lower(): v for k, v in post.headers.items()}
        verifier.verify(post.raw, headers)
        image = post.body["data"]["data"]["violation_image"]
        ids.append(headers["webhook-id"])
        if image in committed and image not in latencies:
            latencies[image] = (post.at - committed[image]) * 1000
    worker_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    row = {
        "scenario": f"webhooks-rate{args.rate:g}",
        "expected": len(committed),
        "delivered": len(latencies),
        "twice": len(ids) - len(set(ids)),
        "p50_ms": round(statistics.median(latencies.values()), 1),
        "p99_ms": round(percentile(list(latencies.values()), 0.99), 1),
        "max_ms": round(max(latencies.values()), 1),
        "worker_cpu_pct": round(100 * worker_cpu / args.duration, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(row))
    with args.out.open("a") as out:
        out.write(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **row}) + "\n")


if __name__ == "__main__":
    main()

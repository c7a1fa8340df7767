"""Benchmark (#25): from a violation's COMMIT to its alert handed to the SMTP server or the
HTTP receiver.

In a database of its own (made and migrated here), with the real processes (Daphne,
`listen_notify` in Redis mode, one `manage.py notify`), a real SMTP server (aiosmtpd) and
a real HTTP receiver (Apprise's json:// posts), both from tests/alerting.py and run in
this process: 10 rules (e-mail and json:// contacts; by kind, by site, by camera), and a
writer that INSERTs 10 violations a second with plain SQL, each its own transaction,
noting its COMMIT's time. Each violation has its own `violation_image`, which the message
names: a message is matched to its violation by it, and the latency is the receiver's
clock minus the COMMIT's (one machine, one clock).

Two modes: `each` (a message per rule and violation) and `consolidate` (every rule with
consolidate_seconds, default 5: a message per rule and window, measured from the COMMIT of
the window's first violation, so the window itself is part of the figure). One JSON line
per mode goes to --out, and a table to the terminal.

    python bench/alerts.py --help
    python bench/alerts.py                          # both modes, 60 s each, about 3 minutes
    python bench/alerts.py --mode each --duration 20
    python bench/alerts.py --mode each --profile /tmp/prof   # py-spy on the worker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts_measure import analyse, print_table, received  # noqa: E402
from alerts_plant import (  # noqa: E402
    KINDS,
    expected_pairs,
    make_plant,
    reset,
    violation_of,
)
from run import busy_share, cpu_seconds, ensure_database  # noqa: E402


def django_env(args: argparse.Namespace) -> dict[str, str]:
    """This process's settings (the rules are written with the ORM), as the stack's."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "DJANGO_SECRET_KEY": "bench-secret-key-0123456789abcdefghijkl",
        "REALTIME_ENV_FILE": "",  # production's settings, not the checkout's .env (make run's)
    }


def write_violations(url: str, run: str, rate: float, duration: float) -> dict[str, float]:
    """INSERTs at `rate` for `duration` seconds, each committed on its own; the client's
    time after each COMMIT, by image."""
    committed: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < duration:
            kind, camera = violation_of(n)
            image = f"/bench/{run}/{n}.jpg"
            conn.execute(
                f"INSERT INTO {KINDS[kind]}"  # a table of KINDS, not input
                " (camera_id, violation_date, violation_time, violation_image)"
                " VALUES (%s, CURRENT_DATE, LOCALTIME(0), %s)",
                [camera, image],
            )
            committed[image] = time.time()
            n += 1
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
    return committed


def wait_for_all(smtp: Any, http: Any, run: str, wanted: int, settle: float) -> None:
    """Until the (rule, violation) pairs counted reach `wanted`, or nothing new came for
    `settle` seconds; then a little longer, for a message sent twice."""
    last, seen = time.monotonic(), -1
    while time.monotonic() - last < settle:
        got = sum(r.count for r in received(smtp, http, run))
        if got >= wanted:
            break
        if got != seen:
            last, seen = time.monotonic(), got
        time.sleep(0.2)
    time.sleep(2.0)


# --- the stack and a mode ------------------------------------------------------------------


class AlertsStack:
    """Daphne and listen_notify (tests.helpers.Stack, Redis mode) and one notify worker."""

    def __init__(self, args: argparse.Namespace, logs: Path, smtp_port: int) -> None:
        from tests.helpers import Process, Stack

        self.stack = Stack.start(
            "redis",
            args.database_url,
            args.redis_url,
            logs,
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(smtp_port),
            DEFAULT_FROM_EMAIL="alerts@plant.test",
        )
        # The messages' links lead to this stack's server.
        worker_env = {**self.stack.env, "REALTIME_PUBLIC_URL": self.stack.http}
        self.worker = Process(
            [sys.executable, "manage.py", "notify"], worker_env, logs / "alerts-notify.log"
        ).start()
        self.worker.wait_for_log("alerts worker started")

    def roles(self) -> dict[str, list[psutil.Process]]:
        return {
            "worker": [psutil.Process(self.worker.pid)],
            "server": [psutil.Process(self.stack.server.pid)],
            "listener": [psutil.Process(p.pid) for p in self.stack.listeners],
        }

    def stop(self) -> None:
        self.worker.stop()
        self.stack.stop()


def wait_for_place(url: str) -> None:
    """The worker has taken its place in the log: a violation from now on is decided."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(200):
            if conn.execute("SELECT 1 FROM realtime_alert_progress").fetchone():
                return
            time.sleep(0.05)
    raise SystemExit("the worker took no place in the log")


def warm_up(args: argparse.Namespace, smtp: Any, http: Any) -> None:
    """One violation whose messages go both ways, waited for: a long-running worker's
    first message (imports, Apprise's plugins) is not what this measures."""
    wanted = len(expected_pairs(write_violations(args.database_url, "warm-up", 1, 0.5)))
    deadline = time.monotonic() + 30
    while len(smtp.received()) + len(http.received()) < wanted:
        if time.monotonic() > deadline:
            raise SystemExit("the warm-up's messages did not come")
        time.sleep(0.1)


def run_mode(mode: str, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    from django.db import connection

    from realtime.alerts.models import Rule
    from tests.alerting import HTTPReceiver, SMTPServer

    window = args.window if mode == "consolidate" else 0
    with psycopg.connect(args.database_url, autocommit=True) as pg:
        reset(pg)
    smtp = SMTPServer().start()
    http = HTTPReceiver().up()
    make_plant(http.port, 0)
    connection.close()
    stack = AlertsStack(args, logs, smtp.port)
    try:
        wait_for_place(args.database_url)
        warm_up(args, smtp, http)
        if window:
            # After the warm-up, so that its violation is in no window; the worker reads
            # the rules again within 2 s (realtime.alerts.rules.RELOAD_SECONDS).
            Rule.objects.update(consolidate_seconds=window)
            connection.close()
            time.sleep(3)
        run = f"{mode}-{int(time.time())}"
        profiler = profile(args, stack, run)
        roles = stack.roles()
        cpu_before = {role: cpu_seconds(ps) for role, ps in roles.items()}
        machine_before, wall_before = psutil.cpu_times(), time.monotonic()
        committed = write_violations(args.database_url, run, args.rate, args.duration)
        wanted = len(expected_pairs(committed))
        wait_for_all(smtp, http, run, wanted, args.settle + window)
        wall = time.monotonic() - wall_before
        cpu = {
            r: round(100 * (cpu_seconds(ps) - cpu_before[r]) / wall, 1) for r, ps in roles.items()
        }
        busy = round(100 * busy_share(machine_before, psutil.cpu_times()), 1)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
    finally:
        stack.stop()
        http.down()
        smtp.stop()
    got = received(smtp, http, run)
    row = analyse(committed, got, args.database_url, run, window)
    if args.dump:
        dump_timeline(args.dump / f"alerts-{run}.tsv", committed, got)
    row["notes"].update(cpu_pct=cpu, machine_busy_pct=busy, load_average=os.getloadavg()[0])
    if args.profile:
        row["notes"]["py_spy"] = True  # on the worker: slower than without
    if args.rate != 10:
        row["scenario"] += f"-rate{args.rate:g}"
    row["notes"].update(rate_per_s=args.rate, duration_s=args.duration)
    return row


def dump_timeline(path: Path, committed: dict[str, float], got: list[Any]) -> None:
    """Each message: seconds since the first COMMIT, its latency in ms, its rule."""
    path.parent.mkdir(parents=True, exist_ok=True)
    start = min(committed.values())
    with path.open("w") as out:
        for r in sorted(got, key=lambda r: committed[r.images[0]]):
            at = committed[r.images[0]]
            out.write(f"{at - start:.3f}\t{(r.at - at) * 1000:.1f}\t{r.rule}\n")


def profile(args: argparse.Namespace, stack: AlertsStack, run: str) -> Any:
    if not args.profile:
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            *(
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(stack.worker.pid),
            ),
            *("--format", "raw", "--rate", "100", "--nonblocking", "--idle"),
            *("--output", str(args.profile / f"alerts-{run}.txt")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/realtime_bench_alerts"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--mode", action="append", choices=["each", "consolidate"])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of violations")
    parser.add_argument("--rate", type=float, default=10.0, help="violations per second")
    parser.add_argument("--window", type=int, default=5, help="consolidate_seconds (consolidate)")
    parser.add_argument(
        "--settle", type=float, default=20.0, help="give up after this long with nothing new"
    )
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy on the worker")
    parser.add_argument("--dump", type=Path, metavar="DIR", help="each message's latency, TSV")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.jsonl")
    args = parser.parse_args()

    ensure_database(args.database_url)
    env = django_env(args)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )
    os.environ.update(env)
    import django

    django.setup()
    logs = ROOT / "bench" / "logs"
    logs.mkdir(exist_ok=True)
    machine = {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    rows = []
    for mode in args.mode or ["each", "consolidate"]:
        row = {**run_mode(mode, args, logs), "machine": machine}
        print(json.dumps(row), flush=True)
        rows.append(row)
    with args.out.open("a") as out:
        for row in rows:
            out.write(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **row}) + "\n")
    print_table(rows)


if __name__ == "__main__":
    main()

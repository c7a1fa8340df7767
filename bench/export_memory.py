"""Benchmark: the server's memory while it streams /history/export.csv.

Creates a scratch database, migrates it, adds a fourth kind whose table has columns of
its own (temperature, zone, tags), fills the four kinds' tables with --rows rows in all
(plain SQL, INSERT ... SELECT generate_series: cameras 1-40, two years of dates, times
with fractions of seconds, half of the rows acknowledged), runs `manage.py
create_indexes`, starts a real Daphne (production settings, no listener) and downloads
the whole export with a bearer token, sampling the Daphne process's RSS (psutil) every
--interval seconds:

    fast   the client reads as fast as it can
    slow   the client reads --slow-rate bytes a second (the server waits for it: Twisted
           would otherwise keep what the socket does not take)

It checks the download: one header, --rows lines that the csv module parses. One JSON
line per phase goes to --out and a table to the terminal. The database is dropped at the
end unless --keep.

    python bench/export_memory.py --help
    python bench/export_memory.py                       # 100,000 rows, about a minute
    python bench/export_memory.py --rows 1000000 --phases fast
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
APP = "config.asgi:application"
SECRET_KEY = "bench-export-secret-key-0123456789abcdef"
FIRE = """
CREATE TABLE violation_firedetections (
    id bigserial PRIMARY KEY, camera_id int, violation_date date, violation_time time,
    violation_image text, temperature real, zone text, tags text[]
)
"""
TABLES = (
    "violation_humandetections",
    "violation_lotodetections",
    "violation_ppedetections",
    "violation_firedetections",
)


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REALTIME_"))}
    env.pop("REDIS_URL", None)
    env.update(
        DATABASE_URL=url,
        DJANGO_SECRET_KEY=SECRET_KEY,
        DJANGO_DEBUG="0",
        DJANGO_SECURE_COOKIES="0",
        DJANGO_TIME_ZONE="UTC",
        REALTIME_EMBEDDED_LISTENER="0",
        REALTIME_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        REALTIME_ENV_FILE="",  # production's settings, not the checkout's .env (make run's)
    )
    return env


def manage(env: dict[str, str], *argv: str) -> str:
    out = subprocess.run(
        [PYTHON, "manage.py", *argv], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout


def recreate(url: str, drop_only: bool = False) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def seed(url: str, rows: int) -> dict[str, Any]:
    started = time.monotonic()
    per_table = rows // len(TABLES)
    with psycopg.connect(url, autocommit=True) as conn:
        # Bulk seeding: the product's triggers would log every row (a superuser's switch).
        conn.execute("SET session_replication_role = replica")
        for n, table in enumerate(TABLES):
            count = per_table + (rows % len(TABLES) if n == 0 else 0)
            extra = ", temperature, zone, tags" if table.endswith("fire") else ""
            values = (
                ", 20 + mod(i, 800) / 10.0, 'hall ' || mod(i, 9),"
                " ARRAY['smoke', 'zone-' || mod(i, 3)]"
                if extra
                else ""
            )
            conn.execute(
                f"INSERT INTO {table} (camera_id, violation_date, violation_time,"
                f" violation_image{extra})"
                " SELECT 1 + mod(i, 40), DATE '2024-01-01' + (i::bigint * 730 / %(count)s)::int,"
                " TIME '00:00' + mod(i * 86400.0 * 730 / %(count)s, 86400) * interval '1 s',"
                f" '/media/cam' || (1 + mod(i, 40)) || '/' || i || '.jpg'{values}"
                " FROM generate_series(1, %(count)s) i",
                {"count": count},
            )
            conn.execute(
                "INSERT INTO realtime_acknowledgement"
                " (table_name, violation_id, acknowledged_by, acknowledged_at)"
                " SELECT %s, id, 'operator' || mod(id, 7), now()"
                f" FROM {table} WHERE mod(id, 2) = 0",
                [table],
            )
        conn.execute("SET session_replication_role = origin")
        for table in (*TABLES, "realtime_acknowledgement"):
            conn.execute(f"VACUUM ANALYZE {table}")
        size = conn.execute(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(t::regclass)))"
            " FROM unnest(%s::text[]) t",
            [list(TABLES)],
        ).fetchone()
    return {"rows": rows, "tables_size": size[0] if size else "", "seconds": _since(started)}


class Sampler(threading.Thread):
    """The RSS of one process, every `interval` seconds, until stopped."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.process, self.interval = psutil.Process(pid), interval
        self.samples: list[int] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append(self.process.memory_info().rss)
            time.sleep(self.interval)

    def stop(self) -> list[int]:
        self.stopped.set()
        self.join()
        return self.samples


def download(base: str, token: str, rate: float | None) -> tuple[bytes, float]:
    """The whole export, read as fast as possible or at `rate` bytes a second."""
    body = io.BytesIO()
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(60, read=120)
    with httpx.stream("GET", f"{base}/history/export.csv", headers=headers, timeout=timeout) as r:
        r.raise_for_status()
        for chunk in r.iter_raw(65536):
            body.write(chunk)
            if rate:
                time.sleep(len(chunk) / rate)
    return body.getvalue(), time.monotonic() - started


def check(body: bytes, rows: int) -> int:
    reader = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    header = next(reader)
    assert header[:3] == ["kind", "table", "id"] and header[-3:] == ["temperature", "zone", "tags"]
    lines = sum(1 for _ in reader)
    assert lines == rows, f"{lines} lines for {rows} rows"
    return lines


def measure(
    base: str, token: str, pid: int, args: argparse.Namespace, phase: str
) -> dict[str, Any]:
    # The code paths of an export loaded first (an empty one), then the baseline.
    httpx.get(
        f"{base}/history/export.csv?camera=99999", headers={"Authorization": f"Bearer {token}"}
    )
    baseline = psutil.Process(pid).memory_info().rss
    sampler = Sampler(pid, args.interval)
    sampler.start()
    body, seconds = download(base, token, args.slow_rate if phase == "slow" else None)
    samples = sampler.stop()
    after = psutil.Process(pid).memory_info().rss
    lines = check(body, args.rows)
    mib = 1024 * 1024
    return {
        "bench": "export_memory",
        "phase": phase,
        "rows": lines,
        "bytes": len(body),
        "seconds": round(seconds, 2),
        "rows_per_s": round(lines / seconds),
        "rss_baseline_mib": round(baseline / mib, 1),
        "rss_median_mib": round(statistics.median(samples) / mib, 1),
        "rss_peak_mib": round(max(samples) / mib, 1),
        "rss_after_mib": round(after / mib, 1),
        "rss_growth_mib": round((max(samples) - baseline) / mib, 1),
        "samples": len(samples),
    }


# The history's reads on the same tables (server time over loopback, median of --reads).
HISTORY_READS = {
    "history": "/history/",
    "history-month": "/history/?from=2025-01-01&to=2025-01-31",
    "history-month-camera": "/history/?from=2025-01-01&to=2025-01-31&camera=7",
    "history-unacknowledged": "/history/?acknowledged=0",
    "history-year-by-month": "/history/?from=2024-01-01&to=2025-12-31",
    "trend": "/trend/",
}


def time_reads(base: str, token: str, repeats: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    timings: dict[str, Any] = {"bench": "export_memory", "phase": "history-reads"}
    with httpx.Client(headers=headers, timeout=60) as client:
        for name, path in HISTORY_READS.items():
            assert client.get(base + path).status_code == 200, path
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                client.get(base + path).raise_for_status()
                times.append(time.perf_counter() - started)
            timings[f"{name}_median_ms"] = round(statistics.median(times) * 1000, 1)
            timings[f"{name}_max_ms"] = round(max(times) * 1000, 1)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--phases", default="fast,slow", help="fast, slow, both or none ('')")
    parser.add_argument(
        "--slow-rate", type=float, default=2_000_000, help="bytes/s of the slow phase"
    )
    parser.add_argument("--reads", type=int, default=5, help="requests per history read; 0: none")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between RSS samples")
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_export"
    )
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument(
        "--max-buffer",
        type=int,
        default=None,
        help="REALTIME_CLIENT_MAX_BUFFER for the server (a control: 10000000000 lets Twisted"
        " keep whatever a slow client has not read)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.jsonl"))
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    env = env_for(args.database_url)
    if args.max_buffer is not None:
        env["REALTIME_CLIENT_MAX_BUFFER"] = str(args.max_buffer)
    recreate(args.database_url)
    try:
        manage(env, "migrate", "--noinput")
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(FIRE)
        manage(env, "add_kind", "fire", "violation_firedetections", "--label", "Fire")
        seeded = seed(args.database_url, args.rows)
        print(f"seeded: {seeded}", flush=True)
        manage(env, "create_indexes")
        manage(
            env, "createsuperuser", "--noinput", "--username", "bench", "--email", "b@example.com"
        )
        token = manage(env, "issue_token", "bench").strip().splitlines()[-1]
        results = run_server(env, args, token, seeded)
    finally:
        if not args.keep:
            recreate(args.database_url, drop_only=True)
    with open(args.out, "a") as out:
        for result in results:
            out.write(json.dumps(result) + "\n")
    print_table(results)


def run_server(
    env: dict[str, str], args: argparse.Namespace, token: str, seeded: dict[str, Any]
) -> list[dict[str, Any]]:
    logs = ROOT / "bench" / "logs"
    logs.mkdir(exist_ok=True)
    with (logs / "export-daphne.log").open("ab") as log:
        server = subprocess.Popen(
            [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(args.port), APP],
            cwd=ROOT, env=env, stdout=log, stderr=log,
        )  # fmt: skip
    base = f"http://127.0.0.1:{args.port}"
    try:
        _wait_for(base)
        context = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "code": _git("rev-parse", "--short", "HEAD"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(),
            "seed": seeded,
            "max_buffer": args.max_buffer,
        }
        results = [
            {**measure(base, token, server.pid, args, phase), **context}
            for phase in args.phases.split(",")
            if phase
        ]
        if args.reads:
            results.append({**time_reads(base, token, args.reads), **context})
        return results
    finally:
        server.terminate()
        server.wait(10)


def _wait_for(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("Daphne did not start; see bench/logs/export-daphne.log")


def _git(*argv: str) -> str:
    return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _since(started: float) -> float:
    return round(time.monotonic() - started, 1)


def print_table(results: list[dict[str, Any]]) -> None:
    columns = ["phase", "rows", "bytes", "seconds", "rows_per_s", "rss_baseline_mib",
               "rss_median_mib", "rss_peak_mib", "rss_growth_mib", "rss_after_mib"]  # fmt: skip
    print(" | ".join(columns))
    for result in results:
        if result["phase"] == "history-reads":
            print({k: v for k, v in result.items() if k.endswith("_ms")})
        else:
            print(" | ".join(str(result[c]) for c in columns))


if __name__ == "__main__":
    main()

"""What "shelved" costs the listener: its read of the log with and without the shelf rule.

The listener reads each batch of changes with one query (realtime.pipeline.event_log);
since #15 that
query asks sql/008's rule (realtime_shelves_covering) of every change. This times the query over
10,000 logged INSERTs, in a database of its own, as it was before (no shelf column), and
with it: no shelf at all, shelves of other cameras, and shelves of the rows' own cameras.

    python bench/shelves_cost.py [--database-url URL] [--rows 10000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/realtime_bench_shelves"
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    base, _, name = args.database_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "DJANGO_SECRET_KEY": "bench-secret-key-0123456789abcdefghijkl",
        "REALTIME_ENV_FILE": "",  # production's settings, not the checkout's .env (make run's)
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from realtime.pipeline import event_log
    from realtime.violations import queries

    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO violation_ppedetections"
            " (camera_id, violation_date, violation_time, violation_image)"
            " SELECT n %% 16, CURRENT_DATE, LOCALTIME, '/bench/' || n || '.jpg'"
            " FROM generate_series(1, %s) AS n",
            [args.rows],
        )
        # One statement: its changes are packed into log rows (sql/005); read them one row
        # each, as single INSERTs log them, for the per-change cost.
        conn.execute("TRUNCATE realtime_event")
        conn.execute(
            "INSERT INTO realtime_event (table_name, op, data)"
            " SELECT 'violation_ppedetections', 'INSERT', row_to_json(t)"
            " FROM violation_ppedetections t ORDER BY id"
        )
        [(first,)] = conn.execute("SELECT min(id) - 1 FROM realtime_event").fetchall()
        with_shelf = event_log.AFTER_SQL
        without = with_shelf.replace(event_log.SHELF_COLUMN, "").replace(
            event_log.SHELF_LATERAL, ""
        )
        assert without != with_shelf

        def timed(query: str) -> float:
            samples = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                rows = conn.execute(query, [first, args.rows, None, None]).fetchall()
                samples.append(time.perf_counter() - started)
                assert len(rows) == args.rows
            return statistics.median(samples) * 1000

        results = {"before #15 (no shelf column)": timed(without)}
        results["no shelf"] = timed(with_shelf)
        conn.execute(
            "INSERT INTO realtime_shelf (camera_id, shelved_by, shelved_at, until, time_zone,"
            " reason, ended_by) SELECT 100 + n, 'bench', now() - interval '1 hour',"
            " now() + interval '1 hour', 'UTC', '', '' FROM generate_series(1, 10) AS n"
        )
        results["10 shelves of other cameras"] = timed(with_shelf)
        conn.execute(
            "INSERT INTO realtime_shelf (camera_id, shelved_by, shelved_at, until, time_zone,"
            " reason, ended_by) SELECT n, 'bench', now() - interval '1 hour',"
            " now() + interval '1 hour', 'UTC', '', '' FROM generate_series(0, 7) AS n"
        )
        [(shelved,)] = conn.execute(
            "SELECT count(*) FROM violation_ppedetections t WHERE " + queries.SHELVED
        ).fetchall()
        results[f"shelves of half the rows' cameras ({shelved} shelved)"] = timed(with_shelf)
    print(f"The listener's read of {args.rows} logged INSERTs (median of {args.repeats}):")
    for label, ms in results.items():
        per = ms * 1000 / args.rows
        print(f"  {label:<45} {ms:8.1f} ms  {per:6.2f} µs per change")


if __name__ == "__main__":
    main()

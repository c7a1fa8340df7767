"""Benchmark: pruning sent webhook deliveries (REALTIME_WEBHOOK_DELIVERIES_KEPT).

In a database of its own (made and migrated here): `--rows` deliveries of one
subscription, sent over the last 30 days (payloads of about 300 bytes, as a change's
JSON), and 10,000 owed ones. Then the worker's pruning, as `manage.py notify` calls it
(realtime.webhooks.outbox.prune_sent, one batch a round) until nothing is left: each
batch's time (how long it holds up the alerts' round), rows a second, and a round with
nothing to prune. One JSON line goes to --out, and a line to the terminal.

    python bench/prune_deliveries.py --help
    python bench/prune_deliveries.py               # 2,000,000 deliveries
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

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from run import ensure_database  # noqa: E402

FILL_SQL = """
INSERT INTO realtime_webhook_delivery
    (webhook_id, event_id, event_type, table_name, violation_id, payload, status, attempts,
     last_error, created_at, sent_at)
SELECT %(hook)s, n, 'violation.insert', 'violation_ppedetections', n,
       repeat('x', 300), 'sent', 1, '',
       now() - (n::float / %(rows)s) * interval '30 days',
       now() - (n::float / %(rows)s) * interval '30 days'
FROM generate_series(1, %(rows)s) AS n
"""

OWED_SQL = """
INSERT INTO realtime_webhook_delivery
    (webhook_id, event_id, event_type, table_name, violation_id, payload, status, attempts,
     last_error, created_at)
SELECT %(hook)s, %(rows)s + n, 'violation.insert', 'violation_ppedetections', n,
       repeat('x', 300), 'pending', 3, 'HTTP 503', now() - interval '20 days'
FROM generate_series(1, 10000) AS n
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/realtime_bench_prune"
    )
    parser.add_argument("--rows", type=int, default=2_000_000, help="sent deliveries")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.jsonl")
    args = parser.parse_args()

    ensure_database(args.database_url)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=args.database_url,
        DJANGO_SECRET_KEY="bench-secret-key-0123456789abcdefghijkl",
        REALTIME_ENV_FILE="",
        REALTIME_WEBHOOK_DELIVERIES_KEPT="7d",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, check=True
    )
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE realtime_webhook_delivery, realtime_webhook CASCADE")
        row = conn.execute(
            "INSERT INTO realtime_webhook (url, secret, kinds, enabled, disabled_reason,"
            " created_at) VALUES ('http://127.0.0.1:9/hook', 'whsec_x', '{}', true, '', now())"
            " RETURNING id"
        ).fetchone()
        assert row is not None
        params = {"hook": row[0], "rows": args.rows}
        started = time.monotonic()
        conn.execute(FILL_SQL, params)
        conn.execute(OWED_SQL, params)
        conn.execute("ANALYZE realtime_webhook_delivery")
        fill_s = time.monotonic() - started
        old = conn.execute(
            "SELECT count(*) FROM realtime_webhook_delivery"
            " WHERE status = 'sent' AND sent_at < now() - interval '7 days'"
        ).fetchone()
        table_mb = conn.execute(
            "SELECT pg_total_relation_size('realtime_webhook_delivery') / 1048576.0"
        ).fetchone()

    import django

    django.setup()
    from realtime.webhooks.outbox import PRUNE_BATCH, prune_sent

    batches: list[float] = []
    pruned = 0
    started = time.monotonic()
    while True:
        t0 = time.monotonic()
        n = prune_sent()
        batches.append(time.monotonic() - t0)
        pruned += n
        if n < PRUNE_BATCH:
            break
    total_s = time.monotonic() - started
    t0 = time.monotonic()
    prune_sent()
    idle_ms = (time.monotonic() - t0) * 1000

    with psycopg.connect(args.database_url, autocommit=True) as conn:
        left = conn.execute(
            "SELECT status, count(*) FROM realtime_webhook_delivery GROUP BY status ORDER BY 1"
        ).fetchall()

    result = {
        "bench": "prune_deliveries",
        "rows": args.rows,
        "old_sent": old[0] if old else None,
        "table_mb": round(float(table_mb[0]), 1) if table_mb else None,
        "fill_s": round(fill_s, 1),
        "pruned": pruned,
        "left": {status: count for status, count in left},
        "batches": len(batches),
        "batch_p50_ms": round(statistics.median(batches) * 1000, 1),
        "batch_max_ms": round(max(batches) * 1000, 1),
        "rows_per_s": round(pruned / total_s),
        "nothing_to_prune_ms": round(idle_ms, 1),
        "machine": platform.node(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with args.out.open("a") as out:
        out.write(json.dumps(result) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

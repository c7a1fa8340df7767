"""What a trigger costs the detector, taken apart: the floors under the cost targets.

bench/run.py measures the shipped trigger (realtime_notify_v4) against an unwatched copy
of the table. This script measures, the same way (the same single-row INSERTs and the
same 10,000-row statement, from one Python connection in autocommit), a series of
triggers that each do part of that work, so the cost of each part can be read off:

    empty-statement   a statement trigger with transition tables that does nothing
    empty-row         a row trigger that does nothing
    notify-only       the NOTIFYs (per row up to 100 rows, one notice above), no log
    collect-only      copies the changed rows into an array, writes nothing
    serialize-only    turns the changed rows into JSON text, writes nothing
    log-only          v2's log INSERT, no NOTIFY
    v1                the first trigger, per row (sql/002)
    v2                the previous statement trigger (sql/004): a log row per change
    v3                the previous trigger (sql/005): v2, except that a statement of more
                      than 100 rows is logged in one row per 10,000 changes
    v4                the shipped trigger (sql/007): v3 written with helper functions

Each trigger is attached to its own copy of violation_humandetections; log-only writes
to a copy of realtime_event, so the product's own log only gets the rows of v1 to v4. Every
round times the unwatched copy right before each watched one; the report gives
the median of those paired ratios and the ratio of the best times (bench/run.py's
measure). One JSON line per trigger and measure goes to --out.

    python bench/trigger_cost.py
    python bench/trigger_cost.py --rounds 11 --variant v3 --variant v4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg
from run import ROOT, cost_measures, ensure_database, manage, stack_env

SOURCE = "violation_humandetections"
UNWATCHED = "bench_cost_unwatched"

# Every partial trigger has the attributes of the shipped ones (sql/005, sql/007) ...
ATTRIBUTES = """
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
"""
# ... and all but the empty ones its per-call work before the rows are touched.
DECLARATIONS = """
DECLARE
    written_at  float8 := extract(epoch FROM clock_timestamp());
    notify      boolean := realtime_notify_has_room();
    row_count   bigint;
    logged      record;
"""

BODIES = {
    "empty-statement": "    RETURN NULL;\n",
    "empty-row": "    RETURN NULL;\n",
    "collect-only": """
    PERFORM array_agg(r) FROM changed_rows r;
    RETURN NULL;
""",
    "serialize-only": """
    PERFORM json_agg(row_to_json(r)) FROM changed_rows r;
    RETURN NULL;
""",
    # The shipped trigger's NOTIFYs (sql/007's helpers), nothing appended anywhere.
    "notify-only": """
    SELECT count(*) INTO row_count FROM changed_rows;
    IF row_count = 0 OR NOT notify THEN
        RETURN NULL;
    END IF;
    IF row_count <= 100 THEN
        FOR logged IN SELECT row_to_json(r) AS data FROM changed_rows r LOOP
            PERFORM realtime_notify_change(0, TG_TABLE_NAME, TG_OP, logged.data, written_at);
        END LOOP;
        RETURN NULL;
    END IF;
    PERFORM realtime_notify_statement(TG_TABLE_NAME, TG_OP, 0, 0, row_count, written_at);
    RETURN NULL;
""",
    "log-only": """
    INSERT INTO bench_cost_log (table_name, op, data)
    SELECT TG_TABLE_NAME, TG_OP, row_to_json(r) FROM changed_rows r;
    RETURN NULL;
""",
}
VARIANTS = [
    "empty-statement",
    "empty-row",
    "notify-only",
    "collect-only",
    "serialize-only",
    "log-only",
    "v1",
    "v2",
    "v3",
    "v4",
]


def table_of(variant: str) -> str:
    return "bench_cost_" + variant.replace("-", "_")


def attach_statement_triggers(conn: psycopg.Connection[Any], table: str, function: str) -> None:
    """Three triggers, as realtime_watch_v2() attaches them."""
    for op, transition in [("insert", "NEW"), ("update", "NEW"), ("delete", "OLD")]:
        conn.execute(
            f"CREATE TRIGGER bench_cost_{op} AFTER {op.upper()} ON {table}"
            f" REFERENCING {transition} TABLE AS changed_rows"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )


def set_up(conn: psycopg.Connection[Any], variants: list[str]) -> None:
    tear_down(conn)
    conn.execute(f"CREATE TABLE {UNWATCHED} (LIKE {SOURCE} INCLUDING ALL)")
    conn.execute("CREATE TABLE bench_cost_log (LIKE realtime_event INCLUDING ALL)")
    for variant in variants:
        table = table_of(variant)
        conn.execute(f"CREATE TABLE {table} (LIKE {SOURCE} INCLUDING ALL)")
        if variant in ("v1", "v2", "v3", "v4"):
            conn.execute(f"SELECT realtime_watch_{variant}(%s)", [table])
        else:
            function = table + "_fn"
            declarations = "" if variant.startswith("empty") else DECLARATIONS
            conn.execute(
                f"CREATE FUNCTION {function}() RETURNS trigger {ATTRIBUTES}{declarations}"
                f"BEGIN\n{BODIES[variant]}END;\n$$"
            )
            if variant == "empty-row":
                conn.execute(
                    f"CREATE TRIGGER bench_cost_row AFTER INSERT OR UPDATE OR DELETE ON {table}"
                    f" FOR EACH ROW EXECUTE FUNCTION {function}()"
                )
            else:
                attach_statement_triggers(conn, table, function)


def tear_down(conn: psycopg.Connection[Any]) -> None:
    for variant in VARIANTS:
        conn.execute(f"DROP TABLE IF EXISTS {table_of(variant)}")
        conn.execute(f"DROP FUNCTION IF EXISTS {table_of(variant)}_fn()")
    conn.execute(f"DROP TABLE IF EXISTS {UNWATCHED}, bench_cost_log")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/realtime_bench"
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--singles", type=int, default=2000, help="single-row INSERTs per round")
    parser.add_argument("--rows", type=int, default=10_000, help="rows of the one statement")
    parser.add_argument(
        "--variant", action="append", choices=VARIANTS, help="only these (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.jsonl")
    args = parser.parse_args()
    variants = args.variant or VARIANTS

    ensure_database(args.database_url)
    env = stack_env(argparse.Namespace(database_url=args.database_url, redis_url=""))
    manage(env, "migrate", "--noinput", "-v0")
    timings: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        set_up(conn, variants)
        try:
            for _ in range(args.rounds):
                for name, fn in cost_measures(conn, args.singles, args.rows).items():
                    measure = f"{args.rows}-row-statement" if name == "statement" else name
                    for variant in variants:
                        # The unwatched copy right before each watched one: a pair
                        # shares the machine's state of the moment.
                        unwatched = fn(UNWATCHED)
                        watched = fn(table_of(variant))
                        timings.setdefault((variant, measure), []).append((watched, unwatched))
                tables = [UNWATCHED, *(table_of(v) for v in variants)]
                conn.execute(f"TRUNCATE {', '.join(tables)}, bench_cost_log")
        finally:
            tear_down(conn)

    at = time.strftime("%Y-%m-%dT%H:%M:%S")
    rows: list[dict[str, Any]] = []
    for (variant, measure), pairs in timings.items():
        best_watched = min(w for w, _ in pairs)
        best_unwatched = min(u for _, u in pairs)
        rows.append(
            {
                "scenario": f"trigger-cost/{variant}/{measure}",
                "rounds": len(pairs),
                "median_pair_ratio": round(statistics.median(w / u for w, u in pairs), 2),
                "best_ratio": round(best_watched / best_unwatched, 2),
                "watched_s": round(best_watched, 4),
                "unwatched_s": round(best_unwatched, 4),
            }
        )
    with args.out.open("a") as out:
        for row in rows:
            out.write(json.dumps({"at": at, **row}) + "\n")
    print(f"{'trigger':<18}{'measure':<24}{'median of pairs':>16}{'best/best':>11}")
    for row in sorted(rows, key=lambda r: (r["scenario"].split("/")[2], r["scenario"])):
        _, variant, measure = row["scenario"].split("/")
        print(f"{variant:<18}{measure:<24}{row['median_pair_ratio']:>15}x{row['best_ratio']:>10}x")


if __name__ == "__main__":
    main()

"""Benchmark: a crowd of SSE connects to one Daphne process (issue #27).

Starts the stack as bench/run.py does (one Daphne, `listen_notify`, Redis), writes a few
rows, then opens --connects SSE streams at --rate a second with one token (a superuser's),
one in three fresh and two resuming with Last-Event-ID from before the rows (the JSON and
the rows route in turn), and keeps them open to the end. Reports how many got their
`stream-open` and what the others got, the time from the request to `stream-open`
(p50/p99/max), the server's CPU, RSS and threads, and the client's CPU. One JSON line per
run goes to --out.

    python bench/connects.py --connects 8000 --rate 250
    python bench/connects.py --connects 4000 --rate 250 --pool-size 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import socket
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, Stack, ensure_database, manage, percentile, reset_log

ROUTES = (
    ("/events/violations/", False),
    ("/events/violations/", True),
    ("/events/violations/rows/", True),
)


async def connect(
    port: int, path: str, token: str, last_event_id: int | None, opened: list[float]
) -> tuple[str, asyncio.StreamWriter | None]:
    start = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        return type(exc).__name__, None
    resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token}\r\n{resume}\r\n".encode()
    )
    status = await reader.readline()
    if b" 200 " not in status:
        writer.close()
        return status.decode(errors="replace").strip() or "closed", None
    while line := await reader.readline():
        if line.rstrip(b"\r\n") == b"event: stream-open":
            opened.append(time.monotonic() - start)
            return "open", writer
    writer.close()
    return "closed before stream-open", None


async def crowd(args: argparse.Namespace, token: str, resume_from: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    opened: list[float] = []
    attempts = []
    start = loop.time()
    for n in range(args.connects):
        path, resumes = ROUTES[n % len(ROUTES)]
        attempt = connect(args.port, path, token, resume_from if resumes else None, opened)
        attempts.append(asyncio.ensure_future(asyncio.wait_for(attempt, args.patience)))
        await asyncio.sleep(max(0.0, start + (n + 1) / args.rate - loop.time()))
    results = await asyncio.gather(*attempts, return_exceptions=True)
    took = loop.time() - start
    outcomes = Counter(type(r).__name__ if isinstance(r, BaseException) else r[0] for r in results)
    for result in results:
        if not isinstance(result, BaseException) and result[1] is not None:
            result[1].close()
    return {
        "outcomes": dict(outcomes),
        "all_open_after_s": round(took, 1),
        "open_p50_ms": round(percentile(opened, 50) * 1000, 1) if opened else None,
        "open_p99_ms": round(percentile(opened, 99) * 1000, 1) if opened else None,
        "open_max_ms": round(max(opened) * 1000, 1) if opened else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/realtime_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--connects", type=int, default=8000)
    parser.add_argument("--rate", type=float, default=250.0, help="connects a second")
    parser.add_argument("--pool-size", type=int, default=10, help="REALTIME_DB_POOL_SIZE")
    parser.add_argument(
        "--backlog",
        type=int,
        default=socket.SOMAXCONN,
        help="Daphne's listen backlog (default: deploy/'s, supervisord's SOMAXCONN; 0: the 50"
        " of Daphne's -b/-p)",
    )
    parser.add_argument("--rows", type=int, default=50, help="rows each resuming stream replays")
    parser.add_argument(
        "--patience", type=float, default=60.0, help="seconds a client waits for stream-open"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.jsonl")
    args = parser.parse_args()
    args.server = "daphne"

    # A socket per client, here and in Daphne (which inherits the limit).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * args.connects + 1000), hard))
    ensure_database(args.database_url)
    stack = Stack(args, ROOT / "bench" / "logs")
    stack.env["REALTIME_DB_POOL_SIZE"] = str(args.pool_size)
    if args.backlog:
        stack.env["BENCH_BACKLOG"] = str(args.backlog)
    (ROOT / "bench" / "logs").mkdir(exist_ok=True)
    manage(stack.env, "migrate", "--noinput", "-v0")
    user = f"bench-{uuid.uuid4().hex[:8]}"
    manage(stack.env, "shell", "-c", _SUPERUSER.format(user=user))
    token = manage(stack.env, "issue_token", user).strip().splitlines()[-1]
    reset_log(args.database_url)
    with psycopg.connect(args.database_url, autocommit=True) as pg:
        newest = pg.execute("SELECT coalesce(max(id), 0) FROM realtime_event").fetchone()
        resume_from = int(newest[0]) if newest else 0
        for n in range(args.rows):
            pg.execute(
                "INSERT INTO violation_humandetections (camera_id, violation_date,"
                " violation_time, violation_image) VALUES (1, CURRENT_DATE, LOCALTIME(0), %s)",
                [f"/media/bench-connects-{n}.jpg"],
            )
    server_log = stack.logs / "daphne.log"
    log_start = server_log.stat().st_size if server_log.exists() else 0
    try:
        stack.start()
        server = stack.server
        server.cpu_percent()
        client = psutil.Process()
        client_cpu = sum(client.cpu_times()[:2])
        started = time.monotonic()
        result = asyncio.run(crowd(args, token, resume_from))
        elapsed = time.monotonic() - started
        result.update(
            server_cpu_pct=round(server.cpu_percent(), 1),
            server_rss_mb=round(server.memory_info().rss / 2**20, 1),
            server_threads=server.num_threads(),
            client_cpu_pct=round(100 * (sum(client.cpu_times()[:2]) - client_cpu) / elapsed, 1),
        )
    finally:
        stack.stop()
    log = server_log.read_bytes()[log_start:].decode(errors="replace")
    row = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "scenario": f"connects{args.connects}@{args.rate:g}-pool{args.pool_size}"
        f"-backlog{args.backlog or 50}",
        "connects": args.connects,
        "rate": args.rate,
        "pool_size": args.pool_size,
        "backlog": args.backlog or 50,
        **result,
        "pool_timeouts_logged": log.count("PoolTimeout:"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
    }
    print(json.dumps(row), flush=True)
    with args.out.open("a") as out:
        out.write(json.dumps(row) + "\n")


_SUPERUSER = (
    "from django.contrib.auth import get_user_model;"
    " get_user_model().objects.create_superuser('{user}', password=None)"
)


if __name__ == "__main__":
    main()

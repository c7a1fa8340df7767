"""What one Daphne process spends to fan a row out, per connected client.

bench/run.py's stack (one Daphne, `listen_notify` in Redis mode, a database of its own),
with N SSE or N WebSocket clients connected (in worker processes), all of them idle
first and then getting rows at a low rate. Daphne's CPU seconds (user + system) are read
over an idle window, the rows' window, and a second idle window of the same length; the
rows' cost is the rows' window minus the mean of the two idle ones (the heartbeats, the
listener's heartbeats on the bus, the process's own timers), divided by rows x clients.
The marginal cost per client, from the slope between two client counts, leaves out what
a row costs once per process (the bus, the bridge, the encoding).

Streams' heartbeats are set an hour apart (REALTIME_HEARTBEAT_SECONDS): a stream that
gets a row every half second would never send one, an idle stream would, and the
subtraction would take them off the rows. Latency is commit to client, as bench/run.py.

    python bench/fanout_cost.py --help
    python bench/fanout_cost.py --kind sse --clients 1000 --clients 2000
    python bench/fanout_cost.py --kind ws --clients 1000 --repeat 3 --profile /tmp/prof

One JSON line per run goes to --out (scenario "fanout-cost"), and a table to the terminal.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import queue
import signal
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from run import (
    BIN,
    PYTHON,
    ROOT,
    Stack,
    busy_share,
    client_worker,
    cpu_seconds,
    ensure_database,
    insert_at_rate,
    manage,
    no_sites,
    percentile,
    reset_log,
    stack_env,
)


def superuser_token(env: dict[str, str]) -> str:
    subprocess.run(
        [PYTHON, "manage.py", "createsuperuser", "--noinput"],
        cwd=ROOT,
        env={
            **env,
            "DJANGO_SUPERUSER_USERNAME": "bench",
            "DJANGO_SUPERUSER_EMAIL": "b@example.com",
            "DJANGO_SUPERUSER_PASSWORD": uuid.uuid4().hex,
        },
        capture_output=True,
    )
    return manage(env, "issue_token", "bench").strip().splitlines()[-1]


def server_seconds(stack: Stack) -> float:
    times = stack.server.cpu_times()
    return float(times.user + times.system)


def measure(
    stack: Stack, args: argparse.Namespace, kind: str, clients: int, token: str
) -> dict[str, Any]:
    run = f"fanout-{kind}{clients}-{uuid.uuid4().hex[:8]}"
    workers = max(1, min(args.workers, clients))
    ctx = mp.get_context("spawn")
    connected, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = []
    for i in range(workers):
        count = clients // workers + (1 if i < clients % workers else 0)
        spec = {
            "ws": count if kind == "ws" else 0,
            "sse": count if kind == "sse" else 0,
            "port": stack.port,
            "tokens": [token] * count,
            "run": run,
            "connect_gap": workers / args.connect_rate,
        }
        p = ctx.Process(target=client_worker, args=(spec, connected, stop, results, i))
        p.start()
        procs.append(p)
    failures = sum(connected.get(timeout=300)[1] for _ in procs)
    time.sleep(args.warmup)  # the connects' work (log reads, threads) done
    window = args.seconds + args.settle
    client_ps = [psutil.Process(p.pid) for p in procs]

    idle_before = server_seconds(stack)
    time.sleep(window)
    idle_after = server_seconds(stack)

    profiler = None
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        profiler = subprocess.Popen(
            [
                *(str(BIN / "py-spy"), "record", "--pid", str(stack.server.pid)),
                *("--format", "raw", "--rate", "200", "--nonblocking"),
                *("--output", str(args.profile / f"{run}.txt")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # py-spy attached
    machine_before = psutil.cpu_times()
    clients_before = cpu_seconds(client_ps)
    rows_before = server_seconds(stack)
    committed = insert_at_rate(args.database_url, run, args.rate, args.seconds)
    time.sleep(args.settle)
    rows_after = server_seconds(stack)
    clients_after = cpu_seconds(client_ps)
    machine_after = psutil.cpu_times()
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)

    idle2_before = server_seconds(stack)
    time.sleep(window)
    idle2_after = server_seconds(stack)
    rss = stack.server.memory_info().rss

    stop.set()
    per_client: list[dict[str, float]] = []
    try:
        for _ in procs:
            per_client.extend(results.get(timeout=120)[1])
    except queue.Empty:
        alive = [p.is_alive() for p in procs]
        for p in procs:
            p.terminate()
        raise SystemExit(f"client workers did not report (alive: {alive})") from None
    for p in procs:
        p.join(30)
    latencies = [
        (got[image] - committed[image]) * 1000
        for got in per_client
        for image in got
        if image in committed
    ]
    idle = ((idle_after - idle_before) + (idle2_after - idle2_before)) / 2
    busy = rows_after - rows_before
    rows = len(committed)
    connected_clients = clients - failures
    per_row = (busy - idle) / rows if rows else float("nan")
    return {
        "scenario": "fanout-cost",
        "kind": kind,
        "clients": connected_clients,
        "connect_failures": failures,
        "rows": rows,
        "rate": args.rate,
        "window_s": window,
        "delivered": len(latencies),
        "expected": rows * connected_clients,
        "server_cpu_rows_s": round(busy, 3),
        "server_cpu_idle_s": round(idle, 3),
        "server_cpu_idle_windows_s": [
            round(idle_after - idle_before, 3),
            round(idle2_after - idle2_before, 3),
        ],
        "ms_per_row": round(per_row * 1000, 3),
        "us_per_client_row": round(per_row * 1e6 / max(1, connected_clients), 2),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies, default=float("nan")), 2),
        "server_rss_mb": round(rss / 2**20, 1),
        "clients_cpu_pct": round(100 * (clients_after - clients_before) / window, 1),
        "machine_busy_pct": round(100 * busy_share(machine_before, machine_after), 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def slopes(rows: list[dict[str, Any]]) -> dict[str, float]:
    """µs per added client per row, by kind: from the median ms/row at its two extreme
    client counts."""
    out = {}
    for kind in sorted({row["kind"] for row in rows}):
        by_count: dict[int, list[float]] = {}
        for row in rows:
            if row["kind"] == kind:
                by_count.setdefault(row["clients"], []).append(row["ms_per_row"])
        if len(by_count) < 2:
            continue
        low, high = min(by_count), max(by_count)
        rise = statistics.median(by_count[high]) - statistics.median(by_count[low])
        out[kind] = round(rise * 1000 / (high - low), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/realtime_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--kind", action="append", choices=["sse", "ws"], help="default: both")
    parser.add_argument(
        "--clients", action="append", type=int, help="client counts (default: 1000 and 2000)"
    )
    parser.add_argument("--rate", type=float, default=2.0, help="rows per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of rows")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds for the last rows")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after connecting")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case")
    parser.add_argument("--connect-rate", type=float, default=250.0)
    parser.add_argument("--workers", type=int, default=3, help="client processes")
    parser.add_argument("--label", default="", help="a word for the code measured")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="py-spy on Daphne during the rows"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.jsonl")
    args = parser.parse_args()
    args.server = "daphne"

    ensure_database(args.database_url)
    env = stack_env(args)
    manage(env, "migrate", "--noinput", "-v0")
    token = superuser_token(env)
    no_sites(env)
    logs = ROOT / "bench" / "logs"
    logs.mkdir(exist_ok=True)
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }
    rows: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        for kind in args.kind or ["sse", "ws"]:
            for clients in args.clients or [1000, 2000]:
                reset_log(args.database_url)
                stack = Stack(args, logs)
                stack.env["REALTIME_HEARTBEAT_SECONDS"] = "3600"
                stack.start()
                try:
                    row = measure(stack, args, kind, clients, token)
                finally:
                    stack.stop()
                row = {"label": args.label, **row, "machine": machine}
                rows.append(row)
                print(json.dumps(row), flush=True)
                with args.out.open("a") as out:
                    at = time.strftime("%Y-%m-%dT%H:%M:%S")
                    out.write(json.dumps({"at": at, **row}) + "\n")
    print_table(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    print()
    print(
        f"{'kind':<5}{'clients':>8}{'rows':>6}{'ms/row':>9}{'µs/client/row':>15}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'delivered':>12}{'idle s':>8}{'clients %':>10}"
    )
    for row in rows:
        print(
            f"{row['kind']:<5}{row['clients']:>8}{row['rows']:>6}{row['ms_per_row']:>9}"
            f"{row['us_per_client_row']:>15}{row['p50_ms']:>9}{row['p99_ms']:>9}"
            f"{row['delivered']:>6}/{row['expected']:<6}{row['server_cpu_idle_s']:>7}"
            f"{row['clients_cpu_pct']:>10}"
        )
    for kind, slope in slopes(rows).items():
        print(f"{kind}: {slope} µs per added client per row (slope between client counts)")


if __name__ == "__main__":
    main()

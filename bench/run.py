"""Benchmark: the stack as production runs it, clients, rows, latency and cost.

Starts Daphne (one process) and `listen_notify` in Redis mode against a database of its
own, connects WebSocket and/or SSE clients (in worker processes), INSERTs rows with plain
SQL at a rate or as one statement, and reports per scenario: delivered/expected,
commit-to-client latency percentiles, deliveries per second, server RSS and CPU, memory
per idle connection; plus the detector's cost of the trigger. One JSON line per scenario
goes to --out, and a table to the terminal.

    python bench/run.py --help
    python bench/run.py                      # every target scenario (docs/performance.md)
    python bench/run.py --scenario ws100 --duration 10
    python bench/run.py --scenario ws100 --sites 10   # clients spread over 10 sites (#16)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
import websockets

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent


@dataclass
class Scenario:
    name: str
    ws: int = 0
    sse: int = 0
    rate: float = 0.0  # rows per second for `duration` seconds
    burst: int = 0  # or one INSERT statement of this many rows
    target: str = ""


SCENARIOS = {
    "ws100": Scenario("ws100", ws=100, rate=100, target="100% delivered, p99 <= 50 ms"),
    "sse100": Scenario("sse100", sse=100, rate=100, target="100% delivered, p99 <= 50 ms"),
    "mixed2000": Scenario(
        "mixed2000", ws=1000, sse=1000, rate=10, target="100% delivered, p99 <= 250 ms"
    ),
    "rate1000": Scenario("rate1000", ws=10, rate=1000, target="100% delivered, p99 <= 100 ms"),
    "burst10k": Scenario(
        "burst10k", ws=10, burst=10_000, target="100% delivered, last row <= 3 s after commit"
    ),
}


@dataclass
class Result:
    scenario: str
    target: str
    clients: int
    events: int
    delivered: int
    expected: int
    delivered_pct: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    deliveries_per_s: float
    server_rss_mb: float
    server_cpu_pct: float
    connect_failures: int = 0
    notes: dict[str, Any] = field(default_factory=dict)


# --- the stack ----------------------------------------------------------------------------


def ensure_database(url: str) -> None:
    params = psycopg.conninfo.conninfo_to_dict(url)
    name = params["dbname"]
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def stack_env(args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REALTIME_"))}
    env.update(
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        DJANGO_SECRET_KEY="bench-secret-key-0123456789abcdefghijkl",
        DJANGO_SECURE_COOKIES="0",
        REALTIME_LOG_LEVEL="WARNING",
        # Every client of a scenario uses one token: one user holding thousands of streams.
        REALTIME_MAX_STREAMS_PER_USER="100000",
        PYTHONUNBUFFERED="1",
        REALTIME_ENV_FILE="",  # production's settings, not the checkout's .env (make run's)
    )
    return env


def reset_log(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE realtime_event, realtime_listener_state")
        conn.execute(
            "TRUNCATE violation_humandetections, violation_lotodetections, violation_ppedetections"
        )


def manage(env: dict[str, str], *argv: str) -> str:
    out = subprocess.run(
        [PYTHON, "manage.py", *argv], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout


class Stack:
    def __init__(self, args: argparse.Namespace, logs: Path) -> None:
        self.env = stack_env(args)
        self.port = args.port
        self.server_name = args.server
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        if self.server_name == "uvicorn":
            server = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(self.port)]
            server += ["--no-access-log"]
        elif self.env.get("BENCH_BACKLOG"):
            # The listen backlog deploy/'s socket has (supervisord's: SOMAXCONN), not the 50
            # Daphne's -b/-p give (a crowd of connects overflows that).
            endpoint = (
                f"tcp:port={self.port}:interface=127.0.0.1:backlog={self.env['BENCH_BACKLOG']}"
            )
            server = [str(BIN / "daphne"), "-e", endpoint]
        else:
            server = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port)]
        if self.env.get("BENCH_SERVER_ARGS"):
            server += self.env["BENCH_SERVER_ARGS"].split()
        server.append("config.asgi:application")
        self.procs.append(self._spawn(server, "daphne.log"))
        self.procs.append(self._spawn([PYTHON, "manage.py", "listen_notify"], "listener.log"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                import httpx

                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except Exception:
                time.sleep(0.2)
        raise SystemExit("server did not start; see " + str(self.logs))

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        handle = (self.logs / log).open("ab")
        return subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=handle, stderr=handle)

    @property
    def server(self) -> psutil.Process:
        return psutil.Process(self.procs[0].pid)

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


# --- clients (in worker processes) ----------------------------------------------------------


async def ws_client(url: str, run: str, received: dict[str, float], ready: asyncio.Event) -> None:
    async with websockets.connect(url, max_size=None, open_timeout=60) as ws:
        ready.set()
        async for text in ws:
            now = time.time()
            image = json.loads(text)["data"].get("violation_image") or ""
            if run in image:
                received[image] = now


async def sse_client(
    host: str, port: int, token: str, run: str, received: dict[str, float], ready: asyncio.Event
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (
            f"GET /events/violations/ HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise ConnectionError(status.decode(errors="replace").strip())
    ready.set()
    event = b"message"  # only changes count, not the heartbeats (named events)
    while line := await reader.readline():
        if line.startswith(b"event: "):
            event = line[7:].strip()
        elif line.strip() == b"":
            event = b"message"
        elif line.startswith(b"data: {") and event == b"message":
            now = time.time()
            image = json.loads(line[6:])["data"].get("violation_image") or ""
            if run in image:
                received[image] = now
    writer.close()


def client_worker(
    spec: dict[str, Any], connected: Any, stop: Any, results: Any, index: int
) -> None:
    asyncio.run(_client_worker(spec, connected, stop, results, index))


async def _client_worker(
    spec: dict[str, Any], connected: Any, stop: Any, results: Any, index: int
) -> None:
    per_client: list[dict[str, float]] = []
    tasks = []
    failures = 0
    readies = []
    for kind, count in (("ws", spec["ws"]), ("sse", spec["sse"])):
        for _ in range(count):
            received: dict[str, float] = {}
            ready = asyncio.Event()
            per_client.append(received)
            readies.append(ready)
            token = spec["tokens"][len(per_client) - 1]
            if kind == "ws":
                url = f"ws://127.0.0.1:{spec['port']}/ws/violations/?token={token}"
                coro = ws_client(url, spec["run"], received, ready)
            else:
                coro = sse_client("127.0.0.1", spec["port"], token, spec["run"], received, ready)
            tasks.append(asyncio.create_task(coro))
            await asyncio.sleep(spec["connect_gap"])  # handshakes paced, not a herd
    deadline = time.monotonic() + 120
    # Polls: a client is ready or has failed (its task is done), whichever comes first.
    while time.monotonic() < deadline and not all(  # noqa: ASYNC110
        r.is_set() or t.done() for r, t in zip(readies, tasks, strict=True)
    ):
        await asyncio.sleep(0.05)
    failures = sum(1 for r in readies if not r.is_set())
    connected.put((index, failures))
    while not stop.is_set():  # noqa: ASYNC110 (a multiprocessing Event, not an asyncio one)
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    results.put((index, per_client, failures))


# --- writers --------------------------------------------------------------------------------


def insert_at_rate(url: str, run: str, rate: float, duration: float) -> dict[str, float]:
    committed: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < duration:
            image = f"/bench/{run}/{n}.jpg"
            conn.execute(
                "INSERT INTO violation_humandetections"
                " (camera_id, violation_date, violation_time, violation_image)"
                " VALUES (%s, CURRENT_DATE, LOCALTIME(0), %s)",
                [n % 16, image],
            )
            committed[image] = time.time()
            n += 1
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
    return committed


def insert_burst(url: str, run: str, rows: int) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO violation_ppedetections"
            " (camera_id, violation_date, violation_time, violation_image)"
            " SELECT n %% 50, CURRENT_DATE, LOCALTIME(0), '/bench/' || %s || '/' || n || '.jpg'"
            " FROM generate_series(1, %s) AS n",
            [run, rows],
        )
        at = time.time()
    return {f"/bench/{run}/{n}.jpg": at for n in range(1, rows + 1)}


# --- sites (#16): rows' cameras are n % 16; camera c belongs to site c % sites ----------


def camera_of_image(image: str) -> int:
    return int(image.rsplit("/", 1)[1].split(".")[0]) % 16


def site_of(camera: int, sites: int) -> int:
    return camera % sites


def site_tokens(env: dict[str, str], sites: int, cover_all: bool) -> list[str]:
    """One user per site, given that site only, and a token of each. `cover_all`: every
    site has every camera the rows use (and one of its own, so the scopes differ): each
    client gets every row, as unscoped, through `sites` stream names."""
    cameras = (
        "list(range(16)) + [100 + k]"
        if cover_all
        else f"[c for c in range(16) if c % {sites} == k]"
    )
    script = (
        "from django.contrib.auth import get_user_model\n"
        "from realtime.models import Site\n"
        "Site.objects.all().delete()\n"
        f"for k in range({sites}):\n"
        "    user, _ = get_user_model().objects.get_or_create(username=f'bench-{k}')\n"
        f"    cameras = {cameras}\n"
        "    Site.objects.create(name=f'bench-{k}', cameras=cameras).users.add(user)\n"
    )
    manage(env, "shell", "-c", script)
    return [manage(env, "issue_token", f"bench-{k}").strip().splitlines()[-1] for k in range(sites)]


def no_sites(env: dict[str, str]) -> None:
    manage(env, "shell", "-c", "from realtime.models import Site; Site.objects.all().delete()")


# --- one scenario ---------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def run_scenario(sc: Scenario, stack: Stack, args: argparse.Namespace, tokens: list[str]) -> Result:
    """`tokens`: one (a superuser's), or one per site; clients take them in turn."""
    run = f"{sc.name}-{uuid.uuid4().hex[:8]}"
    workers = max(1, min(args.workers, sc.ws + sc.sse))
    ctx = mp.get_context("spawn")
    connected, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = []
    client_sites: list[int] = []  # each client's site (its token), in the order of results
    for i in range(workers):
        ws = sc.ws // workers + (1 if i < sc.ws % workers else 0)
        sse = sc.sse // workers + (1 if i < sc.sse % workers else 0)
        sites = [(len(client_sites) + n) % len(tokens) for n in range(ws + sse)]
        client_sites.extend(sites)
        spec = {
            "ws": ws,
            "sse": sse,
            "port": stack.port,
            "tokens": [tokens[site] for site in sites],
            "run": run,
            "connect_gap": workers / args.connect_rate,
        }
        p = ctx.Process(target=client_worker, args=(spec, connected, stop, results, i))
        p.start()
        procs.append(p)
    failures = sum(connected.get(timeout=180)[1] for _ in procs)
    server = stack.server
    time.sleep(1.0)
    roles = {
        "server": [server],
        "listener": [psutil.Process(stack.procs[1].pid)],
        "clients": [psutil.Process(p.pid) for p in procs],
    }
    profilers = []
    if args.profile:
        # py-spy on the server and the listener while rows are written: where the CPU goes.
        args.profile.mkdir(parents=True, exist_ok=True)
        for role in ("server", "listener"):
            output = args.profile / f"{run}-{role}.txt"
            profilers.append(
                subprocess.Popen(
                    [
                        *(str(BIN / "py-spy"), "record", "--pid", str(roles[role][0].pid)),
                        *("--format", "raw", "--rate", "100", "--nonblocking"),
                        *("--output", str(output)),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    cpu_before, wall_before = server.cpu_times(), time.monotonic()
    roles_before = {role: cpu_seconds(ps) for role, ps in roles.items()}
    machine_before = psutil.cpu_times()
    if sc.burst:
        committed = insert_burst(args.database_url, run, sc.burst)
    else:
        committed = insert_at_rate(args.database_url, run, sc.rate, args.duration)
    # Let the last rows arrive.
    time.sleep(args.settle)
    cpu_after, wall_after = server.cpu_times(), time.monotonic()
    roles_after = {role: cpu_seconds(ps) for role, ps in roles.items()}
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)
    machine_after = psutil.cpu_times()
    rss = server.memory_info().rss
    stop.set()
    by_worker: dict[int, list[dict[str, float]]] = {}
    for _ in procs:
        index, clients, _ = results.get(timeout=120)
        by_worker[index] = clients
    per_client = [client for index in sorted(by_worker) for client in by_worker[index]]
    for p in procs:
        p.join(30)
    latencies = [
        (got[image] - committed[image]) * 1000
        for got in per_client
        for image in got
        if image in committed
    ]
    if len(tokens) == 1 or args.sites_cover_all:
        expected = len(committed) * len(per_client)
    else:
        # A row of camera c reaches the clients of the site of c (site_of), only.
        sites_of = [sum(1 for s in client_sites if s == site) for site in range(len(tokens))]
        expected = sum(
            sites_of[site_of(camera_of_image(image), len(tokens))] for image in committed
        )
        stray = sum(
            1
            for got, site in zip(per_client, client_sites, strict=True)
            for image in got
            if image in committed and site_of(camera_of_image(image), len(tokens)) != site
        )
        if stray:
            raise SystemExit(f"{stray} deliveries to clients of another site")
    if os.environ.get("BENCH_DUMP"):
        t0 = min(committed.values())
        with open(os.environ["BENCH_DUMP"] + f"-{sc.name}.tsv", "w") as dump:
            for image, at in committed.items():
                lat = [(got[image] - at) * 1000 for got in per_client if image in got]
                if lat:
                    dump.write(f"{at - t0:.3f}\t{max(lat):.1f}\t{min(lat):.1f}\n")
    delivered = len(latencies)
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    wall = wall_after - wall_before
    notes: dict[str, Any] = {
        # Where the 2 cores went: each role's CPU in % of one core, and the machine's
        # busy share (100 % = both cores), to tell a slow server from starved clients.
        "cpu_pct": {
            role: round(100 * (roles_after[role] - roles_before[role]) / wall, 1) for role in roles
        },
        "machine_busy_pct": round(100 * busy_share(machine_before, machine_after), 1),
    }
    if sc.burst:
        last = max((max(got.values()) for got in per_client if got), default=float("nan"))
        notes["last_row_after_commit_s"] = round(last - max(committed.values()), 3)
    return Result(
        scenario=sc.name
        if len(tokens) == 1
        else f"{sc.name}-sites{len(tokens)}{'-all' if args.sites_cover_all else ''}",
        target=sc.target,
        clients=len(per_client),
        events=len(committed),
        delivered=delivered,
        expected=expected,
        delivered_pct=round(100 * delivered / expected, 3) if expected else 0.0,
        p50_ms=round(percentile(latencies, 50), 2),
        p95_ms=round(percentile(latencies, 95), 2),
        p99_ms=round(percentile(latencies, 99), 2),
        max_ms=round(max(latencies, default=float("nan")), 2),
        deliveries_per_s=round(delivered / max(wall - args.settle, 0.001), 1),
        server_rss_mb=round(rss / 2**20, 1),
        server_cpu_pct=round(100 * cpu / wall, 1),
        connect_failures=failures,
        notes=notes,
    )


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def busy_share(before: Any, after: Any) -> float:
    idle = (after.idle + after.iowait) - (before.idle + before.iowait)
    total = sum(after) - sum(before)
    return 1 - idle / total if total else 0.0


def idle_memory(stack: Stack, args: argparse.Namespace, token: str, count: int) -> dict[str, Any]:
    """RSS growth of the server per idle connection: half WebSocket, then half SSE."""
    server = stack.server
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    procs, growth, failed = [], {}, {}
    rss = server.memory_info().rss
    before = rss
    for kind in ("ws", "sse"):
        connected, results = ctx.Queue(), ctx.Queue()
        spec: dict[str, Any] = {"ws": 0, "sse": 0, kind: count // 2}
        spec.update(port=stack.port, token=token, run="idle", connect_gap=1 / args.connect_rate)
        p = ctx.Process(target=client_worker, args=(spec, connected, stop, results, 0))
        p.start()
        procs.append((p, results))
        failed[kind] = connected.get(timeout=180)[1]
        time.sleep(2)
        now = server.memory_info().rss
        growth[kind], rss = now - rss, now
    stop.set()
    for p, results in procs:
        results.get(timeout=60)
        p.join(30)
    failures = sum(failed.values())

    def per_connection(grown: int, kind_failures: int) -> float:
        # Per connection that is open (failed handshakes hold nothing).
        return round(grown / 1024 / max(1, count // 2 - kind_failures), 1)

    return {
        "scenario": "idle-memory",
        "target": "<= 64 KB per SSE or WebSocket connection",
        "connections": count,
        "connect_failures": failures,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(rss / 2**20, 1),
        "kb_per_connection": round((rss - before) / 1024 / max(1, count - failures), 1),
        "kb_per_websocket": per_connection(growth["ws"], failed["ws"]),
        "kb_per_sse": per_connection(growth["sse"], failed["sse"]),
    }


def cost_measures(
    conn: psycopg.Connection[Any], singles: int, rows: int
) -> dict[str, Callable[[str], float]]:
    """The writer's time for `singles` single-row INSERTs, and for one INSERT of `rows`."""

    def single_rows(table: str) -> float:
        start = time.perf_counter()
        for n in range(singles):
            conn.execute(
                f"INSERT INTO {table} (camera_id, violation_date, violation_time,"
                " violation_image) VALUES (%s, CURRENT_DATE, LOCALTIME(0), %s)",
                [n % 16, f"/bench/cost/{n}.jpg"],
            )
        return time.perf_counter() - start

    def statement(table: str) -> float:
        start = time.perf_counter()
        conn.execute(
            f"INSERT INTO {table} (camera_id, violation_date, violation_time, violation_image)"
            " SELECT n %% 50, CURRENT_DATE, LOCALTIME(0), '/bench/cost/' || n || '.jpg'"
            " FROM generate_series(1, %s) AS n",
            [rows],
        )
        return time.perf_counter() - start

    return {"single-rows": single_rows, "statement": statement}


def detector_cost(url: str, singles: int, burst: int) -> list[dict[str, Any]]:
    """The trigger's cost to the writer: watched table against an unwatched copy."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_unwatched")
        conn.execute("CREATE TABLE bench_unwatched (LIKE violation_humandetections INCLUDING ALL)")
        measure = cost_measures(conn, singles, burst)

        out = []
        for name, fn, target in [
            ("detector-single-rows", measure["single-rows"], "<= 1.15x slower"),
            ("detector-10k-statement", measure["statement"], "<= 2.5x slower"),
        ]:
            # Alternate, best of three, so neither side gets the warm cache alone.
            watched, unwatched = [], []
            for _ in range(3):
                unwatched.append(fn("bench_unwatched"))
                watched.append(fn("violation_humandetections"))
            out.append(
                {
                    "scenario": name,
                    "target": target,
                    "watched_s": round(min(watched), 4),
                    "unwatched_s": round(min(unwatched), 4),
                    "ratio": round(min(watched) / min(unwatched), 2),
                }
            )
        conn.execute("DROP TABLE bench_unwatched")
        return out


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/realtime_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, "idle", "cost"],
        help="run only these (repeatable); default: all",
    )
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds of rows per rate scenario"
    )
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds to wait for the last rows"
    )
    parser.add_argument(
        "--server", choices=["daphne", "uvicorn"], default="daphne", help="the ASGI server"
    )
    parser.add_argument(
        "--connect-rate",
        type=float,
        default=250.0,
        help="new client connections per second, all workers together",
    )
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument(
        "--sites",
        type=int,
        default=0,
        help="spread the clients over this many sites, a user each (0: one superuser)",
    )
    parser.add_argument(
        "--sites-cover-all",
        action="store_true",
        help="with --sites: every site has every camera the rows use (each client gets all)",
    )
    parser.add_argument("--idle-connections", type=int, default=1000)
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record the server with py-spy while rows are written (folded stacks in DIR)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.jsonl")
    args = parser.parse_args()

    if args.server == "uvicorn" and not (BIN / "uvicorn").exists():
        # Not in requirements-dev.txt: it brings click, and with click importable autobahn
        # (Daphne's WebSocket library) formats a coloured debug string for every frame it
        # sends, log level or not, which a production install (requirements.txt) does not.
        parser.error("uvicorn is not installed: pip install 'uvicorn[standard]==0.54.0'")
    chosen = args.scenario or [*SCENARIOS, "idle", "cost"]
    ensure_database(args.database_url)
    env = stack_env(args)
    manage(env, "migrate", "--noinput", "-v0")
    user = "bench"
    subprocess.run(
        [PYTHON, "manage.py", "createsuperuser", "--noinput"],
        cwd=ROOT,
        env={
            **env,
            "DJANGO_SUPERUSER_USERNAME": user,
            "DJANGO_SUPERUSER_EMAIL": "b@example.com",
            "DJANGO_SUPERUSER_PASSWORD": uuid.uuid4().hex,
        },
        capture_output=True,
    )
    token = manage(env, "issue_token", user).strip().splitlines()[-1]
    tokens = site_tokens(env, args.sites, args.sites_cover_all) if args.sites else [token]
    if not args.sites:
        no_sites(env)
    logs = ROOT / "bench" / "logs"
    logs.mkdir(exist_ok=True)
    machine = {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    rows: list[dict[str, Any]] = []
    for name in chosen:
        if name == "cost":
            continue
        # A fresh server per scenario, and a log with nothing to catch up: one
        # scenario's backlog must not weigh on the next.
        reset_log(args.database_url)
        stack = Stack(args, logs)
        stack.start()
        try:
            if name in SCENARIOS:
                row = asdict(run_scenario(SCENARIOS[name], stack, args, tokens))
            else:
                row = idle_memory(stack, args, token, args.idle_connections)
        finally:
            stack.stop()
        rows.append({**row, "machine": machine})
        print(json.dumps(row), flush=True)
    if "cost" in chosen:
        for row in detector_cost(args.database_url, singles=2000, burst=10_000):
            rows.append({**row, "machine": machine})
            print(json.dumps(row), flush=True)
    with args.out.open("a") as out:
        for row in rows:
            out.write(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **row}) + "\n")
    print_table(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    print()
    print(f"{'scenario':<24}{'target':<44}{'measured'}")
    for row in rows:
        if "delivered_pct" in row:
            measured = (
                f"{row['delivered_pct']}% of {row['expected']} delivered, p50 {row['p50_ms']} ms,"
                f" p99 {row['p99_ms']} ms, max {row['max_ms']} ms, {row['deliveries_per_s']}/s,"
                f" RSS {row['server_rss_mb']} MB, CPU {row['server_cpu_pct']}%"
            )
            if row["connect_failures"]:
                measured += f", {row['connect_failures']} clients failed to connect"
            if row["notes"]:
                measured += f", {row['notes']}"
        elif "kb_per_connection" in row:
            measured = (
                f"{row['kb_per_connection']} KB per connection ({row['connections']} connections:"
                f" {row['kb_per_websocket']} KB per WebSocket, {row['kb_per_sse']} KB per SSE)"
            )
        else:
            measured = (
                f"{row['ratio']}x ({row['watched_s']} s watched, {row['unwatched_s']} s unwatched)"
            )
        print(f"{row['scenario']:<24}{row['target']:<44}{measured}")


if __name__ == "__main__":
    main()

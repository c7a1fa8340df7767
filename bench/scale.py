"""Benchmark: the production recipe (deploy/run.sh: supervisord, its Daphne processes, and
Pushpin in front for SSE) under thousands of clients, as issue #27 measures it.

Each instance is one `deploy/run.sh` (a "machine"): DAPHNE_PROCESSES Daphnes sharing a
socket, two listeners, and (SUPERVISE_PUSHPIN) its own Pushpin. Clients run in worker
processes (asyncio, raw sockets): SSE through Pushpin (or straight to Daphne), WebSocket
straight to Daphne, each resuming with its last event id whenever its connection ends, as
an EventSource and the page's WebSocket client do. A row a second is INSERTed with plain
SQL; latency is receive time minus the inserting connection's COMMIT.

Scenarios (one JSON line each to --out, a table to the terminal):
  ramp     SSE clients through Pushpin ramped in steps (--steps), plus --ws WebSockets
  single   one Daphne process, no Pushpin: --sse SSE connects at --connect-rate
  storm    the clients of `ramp`'s last step, then Pushpin killed and restarted, then
           every Daphne killed (supervisord restarts them): time back, lost, repeated
  two      two instances sharing Redis and PostgreSQL, clients split over both; one
           instance killed mid-run, its clients reconnect to the other
  connects what one stream opened through Pushpin costs Django: --sse connects resuming
           from an id, --concurrency at a time, one Daphne; its CPU per connect, and the
           answers that were not a stream (Pushpin's 502 when zurl's queue is full)

    python bench/scale.py --scenario ramp --steps 1000,2000,5000,10000 --ws 1000
    python bench/scale.py --scenario single --sse 8000 --connect-rate 250
    python bench/scale.py --scenario connects --sse 2000 --concurrency 150
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ensure_database, insert_at_rate, manage, percentile, reset_log, stack_env

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-pushpin-key-0123456789abcdefghij"
RETRY = (1.0, 3.0)  # seconds before a WebSocket client reconnects: uniform in this range
# An SSE client waits as a browser's EventSource and the page's htmx-ext-sse do: after a cut
# or a failed connection, the reconnection time the stream set (`retry:`; 3 s until one
# did); after an answer that is not a stream (a 502), htmx-ext-sse's backoff, 0.5 s doubled
# on each such answer up to 64 s.
EVENTSOURCE_RETRY = 3.0


class NotAStream(ConnectionError):
    """An answer other than 200: an EventSource fails, and htmx-ext-sse makes a new one."""


# --- the recipe -------------------------------------------------------------------------------


class Instance:
    """One deploy/run.sh: a machine of the recipe."""

    def __init__(self, index: int, base_env: dict[str, str], args: argparse.Namespace) -> None:
        self.index = index
        self.daphne_port = 8300 + 10 * index
        self.pushpin_port = 7300 + 10 * index
        self.offset = 21000 + 100 * index  # Pushpin's 5560-5563 + this
        self.run_dir = args.logs / f"instance{index}"
        self.env = {
            **base_env,
            "REALTIME_BIND": f"127.0.0.1:{self.daphne_port}",
            "DAPHNE_PROCESSES": str(args.daphnes),
            "REALTIME_RUN_DIR": str(self.run_dir),
            "SUPERVISE_PUSHPIN": "true" if args.pushpin else "false",
            "PUSHPIN_PORT": f"127.0.0.1:{self.pushpin_port}",
            "PUSHPIN_PORT_OFFSET": str(self.offset),
            "PUSHPIN_KEY": KEY,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def publish_url(self) -> str:
        return f"http://127.0.0.1:{5561 + self.offset}?iss=pushpin&key={KEY}"

    def start(self, grip_urls: list[str]) -> None:
        if grip_urls:
            self.env["GRIP_URL"] = " ".join(grip_urls)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = (self.run_dir.parent / f"instance{self.index}.out").open("ab")
        self.proc = subprocess.Popen(
            ["bash", str(ROOT / "deploy" / "run.sh")],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )

    def wait_ready(self, token: str, pushpin: bool, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        port = self.pushpin_port if pushpin else self.daphne_port
        url = f"http://127.0.0.1:{port}/events/violations/"
        while True:
            try:
                with httpx.stream(
                    "GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=2
                ) as response:
                    if response.status_code == 200:
                        return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"instance {self.index} did not start; see {self.run_dir}")
            time.sleep(0.3)

    def processes(self) -> dict[str, list[psutil.Process]]:
        """Every process of the instance by role (supervisord's children and Pushpin's)."""
        assert self.proc is not None
        roles: dict[str, list[psutil.Process]] = defaultdict(list)
        try:
            top = psutil.Process(self.proc.pid)
            everything = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return roles
        for p in everything:
            try:
                cmd = " ".join(p.cmdline())
            except psutil.Error:
                continue
            if "daphne" in cmd:
                roles["daphne"].append(p)
            elif "listen_notify" in cmd:
                roles["listener"].append(p)
            elif "supervisord" in cmd:
                roles["supervisord"].append(p)
            elif any(n in cmd for n in ("pushpin", "condure", "zurl")):
                name = Path(p.cmdline()[0]).name
                roles[name].append(p)
            else:
                roles["other"].append(p)
        return roles

    def kill(self, role: str) -> None:
        """SIGKILL a role's processes; supervisord restarts them (autorestart)."""
        victims = []
        for name, procs in self.processes().items():
            if (role == "pushpin" and name in ("pushpin", "condure", "zurl")) or name == role:
                victims.extend(procs)
            if role == "pushpin" and name.startswith("pushpin"):
                victims.extend(procs)
        for p in set(victims):
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass

    def recovers(self) -> int:
        """Pushpin's `recover` requests its Daphnes have answered so far (their logs)."""
        return sum(
            path.read_text(errors="replace").count("recover=true")
            for path in self.run_dir.glob("daphne*-stdout*.log")
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Sampler(threading.Thread):
    """CPU (% of one core) and RSS of every process by role, once a second."""

    def __init__(self, sources: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.sources = sources  # role -> callable returning processes
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self.rss: dict[str, float] = defaultdict(float)
        self.running = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        last: dict[int, float] = {}
        while not self.done.is_set():
            t0 = time.monotonic()
            if self.running.is_set():
                for role, source in self.sources.items():
                    total, rss = 0.0, 0.0
                    for p in source():
                        try:
                            t = p.cpu_times()
                            now = t.user + t.system
                            total += now - last.get(p.pid, now)
                            last[p.pid] = now
                            rss += p.memory_info().rss
                        except psutil.Error:
                            continue
                    self.cpu[role].append(total)
                    self.rss[role] = max(self.rss[role], rss)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))

    def report(self) -> dict[str, Any]:
        return {
            role: {
                "cpu_pct": round(100 * sum(v[1:]) / max(1, len(v) - 1), 1),
                "rss_mb": round(self.rss[role] / 2**20, 1),
            }
            for role, v in self.cpu.items()
        }


# --- clients (in worker processes) ------------------------------------------------------------


class Client:
    def __init__(self) -> None:
        self.last_id: str | None = None
        self.received: dict[str, float] = {}
        self.repeated = 0
        self.connects: list[float] = []  # when each connection was accepted
        self.failures: list[tuple[float, str]] = []  # a connect that did not open: when, why
        self.ended: list[float] = []  # when a connection ended
        self.retry = EVENTSOURCE_RETRY  # seconds: the stream's `retry:`
        self.backoff = 0  # htmx-ext-sse's retryCount

    def got(self, image: str, run: str) -> None:
        if run not in image:
            return
        if image in self.received:
            self.repeated += 1
        else:
            self.received[image] = time.time()


async def sse_session(client: Client, host: str, port: int, token: str, run: str) -> None:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
    try:
        resume = f"Last-Event-ID: {client.last_id}\r\n" if client.last_id else ""
        writer.write(
            (
                f"GET /events/violations/ HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n{resume}\r\n"
            ).encode()
        )
        status = await asyncio.wait_for(reader.readline(), 30)
        if b" 200 " not in status:
            raise NotAStream(status.decode(errors="replace").strip() or "no answer")
        client.connects.append(time.time())
        client.backoff = 0
        event, event_id, data = b"message", None, b""
        while line := await reader.readline():
            if line.startswith(b"retry: ") and line[7:].strip().isdigit():
                client.retry = int(line[7:]) / 1000
            elif line.startswith(b"event: "):
                event = line[7:].strip()
            elif line.startswith(b"id: "):
                event_id = line[4:].strip().decode()
            elif line.startswith(b"data: "):
                data = line[6:]
            elif line.strip() == b"":
                if event == b"message" and data.startswith(b"{"):
                    change = json.loads(data)
                    client.got(change["data"].get("violation_image") or "", run)
                if event_id is not None:
                    client.last_id = event_id
                event, event_id, data = b"message", None, b""
    finally:
        writer.close()


async def ws_session(client: Client, host: str, port: int, token: str, run: str) -> None:
    import websockets

    query = f"token={token}" + (f"&lastEventId={client.last_id}" if client.last_id else "")
    async with websockets.connect(
        f"ws://{host}:{port}/ws/violations/?{query}",
        max_size=None,
        open_timeout=30,
        close_timeout=2,
    ) as ws:
        client.connects.append(time.time())
        async for text in ws:
            frame = json.loads(text)
            if frame.get("type") == "stream-reset":
                client.last_id = frame["resume"]
                continue
            if "data" in frame:
                client.got(frame["data"].get("violation_image") or "", run)
                client.last_id = str(frame.get("resume") or frame.get("id"))


async def keep_connected(client: Client, kind: str, spec: dict[str, Any], port: int) -> None:
    session = sse_session if kind == "sse" else ws_session
    while True:
        try:
            await session(client, "127.0.0.1", port, spec["token"], spec["run"])
            reason = "closed"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:120]
            if isinstance(exc, NotAStream):
                client.backoff = max(min(client.backoff * 2, 128), 1)
        now = time.time()
        if client.connects and (not client.ended or client.ended[-1] < client.connects[-1]):
            client.ended.append(now)
        else:
            client.failures.append((now, reason))
        if kind == "ws":
            await asyncio.sleep(random.uniform(*RETRY))
        elif reason.startswith("NotAStream"):
            await asyncio.sleep(client.backoff * 0.5)
        else:
            await asyncio.sleep(client.retry)


def client_worker(spec: dict[str, Any], connected: Any, stop: Any, results: Any) -> None:
    asyncio.run(_client_worker(spec, connected, stop, results))


async def _client_worker(spec: dict[str, Any], connected: Any, stop: Any, results: Any) -> None:
    clients: list[tuple[str, Client]] = []
    tasks = []
    start = time.monotonic()
    n = 0
    for kind, port, count in spec["groups"]:
        for _ in range(count):
            client = Client()
            clients.append((kind, client))
            tasks.append(asyncio.create_task(keep_connected(client, kind, spec, port)))
            n += 1
            # Paced from the start, not from the last connect: the rate holds.
            await asyncio.sleep(max(0.0, start + n / spec["connect_rate"] - time.monotonic()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(c.connects or c.failures for _, c in clients):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    connected.put((spec["index"], sum(1 for _, c in clients if c.connects and not c.failures)))
    while not stop.is_set():  # noqa: ASYNC110 (a multiprocessing Event)
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    # A WebSocket's closing handshake with a busy server may hang: not the results.
    await asyncio.wait(tasks, timeout=15)
    cpu = psutil.Process().cpu_times()
    results.put(
        (
            spec["index"],
            [
                {
                    "kind": kind,
                    "group": spec["group_of"][i],
                    "received": c.received,
                    "repeated": c.repeated,
                    "connects": c.connects,
                    "failures": c.failures,
                    "ended": c.ended,
                }
                for i, (kind, c) in enumerate(clients)
            ],
            cpu.user + cpu.system,
        )
    )


class Crowd:
    """Client worker processes; `groups` are (kind, port, count) split over them."""

    def __init__(
        self, groups: list[tuple[str, int, int]], token: str, run: str, args: argparse.Namespace
    ) -> None:
        self.ctx = mp.get_context("spawn")
        self.connected, self.results, self.stop = (
            self.ctx.Queue(),
            self.ctx.Queue(),
            self.ctx.Event(),
        )
        self.procs: list[Any] = []
        workers = args.client_processes
        for w in range(workers):
            mine = []
            group_of: list[int] = []
            for g, (kind, port, count) in enumerate(groups):
                share = count // workers + (1 if w < count % workers else 0)
                mine.append((kind, port, share))
                group_of.extend([g] * share)
            spec = {
                "index": w,
                "groups": mine,
                "group_of": group_of,
                "token": token,
                "run": run,
                "connect_rate": args.connect_rate / workers,
            }
            p = self.ctx.Process(
                target=client_worker, args=(spec, self.connected, self.stop, self.results)
            )
            p.start()
            self.procs.append(p)

    def wait_connected(self) -> int:
        return sum(self.connected.get(timeout=600)[1] for _ in self.procs)

    def psutil(self) -> list[psutil.Process]:
        return [psutil.Process(p.pid) for p in self.procs if p.is_alive()]

    def finish(self) -> tuple[list[dict[str, Any]], float]:
        self.stop.set()
        clients: dict[int, list[dict[str, Any]]] = {}
        cpu = 0.0
        for _ in self.procs:
            index, got, seconds = self.results.get(timeout=300)
            clients[index] = got
            cpu += seconds
        for p in self.procs:
            p.join(30)
        return [c for i in sorted(clients) for c in clients[i]], cpu


# --- measuring ----------------------------------------------------------------------------------


def deliveries(clients: list[dict[str, Any]], committed: dict[str, float]) -> dict[str, Any]:
    latencies = [
        (c["received"][image] - at) * 1000
        for c in clients
        for image, at in committed.items()
        if image in c["received"]
    ]
    expected = len(clients) * len(committed)
    # Each row's first client: a delay every client shares (the path) vs. one that grows
    # with the clients (the fan-out).
    firsts = [
        min(
            ((c["received"][image] - at) * 1000 for c in clients if image in c["received"]),
            default=float("nan"),
        )
        for image, at in committed.items()
    ]
    # The rows most late: one late for every client (a stall on the path) shows here.
    start = min(committed.values(), default=0.0)
    by_row = []
    for image, at in committed.items():
        row = [(c["received"][image] - at) * 1000 for c in clients if image in c["received"]]
        if row:
            by_row.append((percentile(row, 50), min(row), at - start))
    slowest = [
        {"at_s": round(t, 1), "first_ms": round(first, 1), "p50_ms": round(p50, 1)}
        for p50, first, t in sorted(by_row, reverse=True)[:3]
    ]
    return {
        "first_p50_ms": round(percentile(firsts, 50), 1),
        "slowest_rows": slowest,
        "clients": len(clients),
        "rows": len(committed),
        "delivered": len(latencies),
        "expected": expected,
        "delivered_pct": round(100 * len(latencies) / expected, 3) if expected else 0.0,
        "repeated": sum(c["repeated"] for c in clients),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies, default=float("nan")), 1),
    }


def reconnections(
    clients: list[dict[str, Any]], since: float, back_at: float, until: float = float("inf")
) -> dict[str, Any]:
    """Of the clients whose connection ended between `since` and `until`: how long after
    `back_at` (the restart) each had a connection again."""
    dropped = [c for c in clients if any(since <= t < until for t in c["ended"])]
    delays = []
    missing = 0
    for c in dropped:
        again = [t for t in c["connects"] if t >= since]
        if again:
            delays.append(max(0.0, min(again) - back_at))
        else:
            missing += 1
    return {
        "dropped": len(dropped),
        "not_back": missing,
        "back_p50_s": round(percentile(delays, 50), 2),
        "back_max_s": round(max(delays, default=float("nan")), 2),
    }


def db_counters(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_returned, tup_fetched FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
        assert row is not None
        return {"xact_commit": row[0], "tup_returned": row[1], "tup_fetched": row[2]}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in before}


def write(args: argparse.Namespace, result: dict[str, Any]) -> None:
    result["at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    result["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(json.dumps(result, indent=None), flush=True)
    with args.out.open("a") as out:
        out.write(json.dumps(result) + "\n")


# --- scenarios ----------------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> tuple[dict[str, str], str]:
    ensure_database(args.database_url)
    env = stack_env(args)
    manage(env, "migrate", "--noinput")
    reset_log(args.database_url)
    manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; from realtime.models import Site;"
        " Site.objects.all().delete(); U = get_user_model();"
        " U.objects.filter(username='bench').exists() or"
        " U.objects.create_superuser('bench', 'bench@example.com', 'bench')",
    )
    token = manage(env, "issue_token", "bench").strip().splitlines()[-1]
    return env, token


def start_instances(
    count: int, env: dict[str, str], token: str, args: argparse.Namespace
) -> list[Instance]:
    instances = [Instance(i, env, args) for i in range(count)]
    urls = [i.publish_url for i in instances] if args.pushpin else []
    for instance in instances:
        instance.start(urls)
    for instance in instances:
        instance.wait_ready(token, args.pushpin)
    return instances


def sampler_for(instances: list[Instance], crowd: Crowd | None) -> Sampler:
    sources: dict[str, Any] = {}
    for inst in instances:
        for role in ("daphne", "listener", "pushpin-handler", "pushpin-proxy", "condure", "zurl"):
            sources[f"{inst.index}:{role}"] = lambda inst=inst, role=role: inst.processes().get(
                role, []
            )
    if crowd is not None:
        sources["clients"] = crowd.psutil
    sources["postgres"] = lambda: [
        p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"
    ]
    sources["redis"] = lambda: [
        p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"
    ]
    sampler = Sampler(sources)
    sampler.start()
    return sampler


def warm_up(args: argparse.Namespace, instance: Instance, token: str) -> None:
    """A change forwarded before the clients come, as a running plant has had: a stream
    held from a log whose newest change was never published (a listener that began after
    it: the bench empties the listener's state) has no chain to follow, and recovers once
    at the first change (docs/performance.md). Inserted until one arrives on a stream."""
    url = f"http://127.0.0.1:{instance.daphne_port}/events/violations/"
    headers = {"Authorization": f"Bearer {token}"}
    for attempt in range(10):
        with httpx.stream("GET", url, headers=headers, timeout=5) as response:
            lines = response.iter_lines()
            next(lines)  # the stream is open
            insert_at_rate(args.database_url, f"warm-up-{attempt}", 1.0, 1.0)
            deadline = time.monotonic() + 5
            try:
                for line in lines:
                    if "warm-up" in line:
                        return
                    if time.monotonic() > deadline:
                        break
            except httpx.ReadTimeout:
                continue
    raise SystemExit("no change reached a stream: is the listener running?")


def measure_rows(args: argparse.Namespace, run: str, seconds: float) -> dict[str, float]:
    committed = insert_at_rate(args.database_url, run, args.rate, seconds)
    time.sleep(args.settle)
    return committed


def scenario_ramp(args: argparse.Namespace, env: dict[str, str], token: str) -> None:
    instances = start_instances(1, env, token, args)
    inst = instances[0]
    warm_up(args, inst, token)
    try:
        for sse_count in args.steps:
            run = f"ramp{sse_count}-{uuid.uuid4().hex[:6]}"
            groups = [("sse", inst.pushpin_port if args.pushpin else inst.daphne_port, sse_count)]
            if args.ws:
                groups.append(("ws", inst.daphne_port, args.ws))
            crowd = Crowd(groups, token, run, args)
            t0 = time.monotonic()
            connected = crowd.wait_connected()
            connect_s = time.monotonic() - t0
            sampler = sampler_for(instances, crowd)
            time.sleep(args.pause)
            sampler.running.set()
            committed = measure_rows(args, run, args.duration)
            sampler.running.clear()
            sampler.done.set()
            clients, client_cpu = crowd.finish()
            result = {
                "scenario": "ramp",
                "reconnect_within": args.reconnect_within,
                "pushpin": args.pushpin,
                "daphnes": args.daphnes,
                "sse": sse_count,
                "ws": args.ws,
                "connect_rate": args.connect_rate,
                "connect_s": round(connect_s, 1),
                "connected": connected,
                "failed_connects": sum(1 for c in clients if c["failures"] and not c["connects"]),
                "connect_errors": sorted({f[1] for c in clients for f in c["failures"]})[:5],
                **deliveries(clients, committed),
                "by_kind": {
                    kind: deliveries([c for c in clients if c["kind"] == kind], committed)
                    for kind in ("sse", "ws")
                },
                "processes": sampler.report(),
                "client_cpu_s": round(client_cpu, 1),
            }
            write(args, result)
    finally:
        for i in instances:
            i.stop()


def scenario_single(args: argparse.Namespace, env: dict[str, str], token: str) -> None:
    args.pushpin = False
    args.daphnes = 1
    args.steps = [args.sse]
    args.ws = 0
    scenario_ramp(args, env, token)


async def open_streams(
    port: int, token: str, count: int, concurrency: int, opened: Any
) -> tuple[int, list[str]]:
    """`count` SSE streams resuming from id 1, `concurrency` being opened at a time, then
    `opened()`, then closed: how many opened, and the status line of each answer that was
    not a stream."""
    limit, streams, refused = asyncio.Semaphore(concurrency), [], []

    async def one() -> None:
        async with limit:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(
                    (
                        f"GET /events/violations/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n"
                        "Last-Event-ID: 1\r\n\r\n"
                    ).encode()
                )
                status = await asyncio.wait_for(reader.readline(), 60)
                if b" 200 " not in status:
                    refused.append(status.decode(errors="replace").strip() or "no answer")
                    writer.close()
                    return
                while b"stream-open" not in await asyncio.wait_for(reader.readline(), 60):
                    pass
                streams.append(writer)
            except (OSError, TimeoutError) as exc:
                refused.append(type(exc).__name__)

    await asyncio.gather(*(one() for _ in range(count)))
    opened()
    for writer in streams:
        writer.close()
    return len(streams), refused


def scenario_connects(args: argparse.Namespace, env: dict[str, str], token: str) -> None:
    args.daphnes, args.pushpin = 1, True
    [inst] = start_instances(1, env, token, args)
    try:
        warm_up(args, inst, token)
        roles = inst.processes()

        def cpu() -> dict[str, float]:
            seconds: dict[str, float] = {}
            for role, procs in roles.items():
                for p in procs:
                    try:
                        times = p.cpu_times()
                    except psutil.Error:
                        continue
                    seconds[role] = seconds.get(role, 0.0) + times.user + times.system
            return seconds

        before, t0 = cpu(), time.monotonic()
        end: dict[str, Any] = {}

        def measured() -> None:
            end.update(elapsed=time.monotonic() - t0, cpu=cpu())

        opened, refused = asyncio.run(
            open_streams(inst.pushpin_port, token, args.sse, args.concurrency, measured)
        )
        elapsed, after = end["elapsed"], end["cpu"]
        result = {
            "scenario": "connects",
            "connects": args.sse,
            "concurrency": args.concurrency,
            "seconds": round(elapsed, 1),
            "per_second": round(args.sse / elapsed),
            "opened": opened,
            "refused": {answer: refused.count(answer) for answer in sorted(set(refused))},
            "cpu_ms_per_connect": {
                role: round(1000 * (after[role] - before.get(role, 0.0)) / args.sse, 2)
                for role in after
                if after[role] - before.get(role, 0.0) > 0.01
            },
        }
        write(args, result)
    finally:
        inst.stop()


def wait_forwarding(instance: Instance, killed: set[int], timeout: float = 120) -> None:
    """Until a listener other than the `killed` runs (supervisord restarts them), and a
    few seconds more for it to take the lock and catch up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.pid not in killed for p in instance.processes().get("listener", [])):
            time.sleep(5)
            return
        time.sleep(0.2)
    raise SystemExit(f"no listener restarted after {timeout} s")


def wait_listening(port: int, timeout: float = 120) -> None:
    """Until a new process listens on `port` (the old one's socket is gone first)."""
    import socket

    time.sleep(0.5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {timeout} s")


def scenario_storm(args: argparse.Namespace, env: dict[str, str], token: str) -> None:
    instances = start_instances(1, env, token, args)
    inst = instances[0]
    warm_up(args, inst, token)
    run = f"storm-{uuid.uuid4().hex[:6]}"
    sse_count = args.steps[-1]
    groups = [("sse", inst.pushpin_port, sse_count)]
    if args.ws:
        groups.append(("ws", inst.daphne_port, args.ws))
    try:
        crowd = Crowd(groups, token, run, args)
        connected = crowd.wait_connected()
        sampler = sampler_for(instances, crowd)
        sampler.running.set()
        committed: dict[str, float] = {}
        storms: dict[str, dict[str, Any]] = {}
        writer_stop = threading.Event()

        def writer() -> None:
            n = 0
            while not writer_stop.is_set():
                committed.update(insert_at_rate(args.database_url, f"{run}-{n}", args.rate, 5))
                n += 1

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        time.sleep(10)
        for role in args.kill:
            db_before = db_counters(args.database_url)
            recovers_before = inst.recovers()
            listeners = {p.pid for p in inst.processes().get("listener", [])}
            killed_at = time.time()
            inst.kill(role)
            if role == "listener":
                # Back when a new one forwards.
                wait_forwarding(inst, listeners)
            else:
                # Back when the restarted processes accept again (a request of our own
                # would queue behind the crowd's).
                wait_listening(inst.pushpin_port if role == "pushpin" else inst.daphne_port)
            back_at = time.time()
            time.sleep(40)
            storms[role] = {
                "killed_at": killed_at,
                "restart_s": round(back_at - killed_at, 1),
                "db": delta(db_before, db_counters(args.database_url)),
                # Held streams Pushpin sent back to Django for what they lacked.
                "recovers": inst.recovers() - recovers_before,
            }
        writer_stop.set()
        thread.join()
        time.sleep(args.settle)
        sampler.running.clear()
        sampler.done.set()
        clients, client_cpu = crowd.finish()
        ends = [*[storm["killed_at"] for storm in storms.values()][1:], float("inf")]
        for storm, until in zip(storms.values(), ends, strict=True):
            storm.update(
                reconnections(
                    clients, storm["killed_at"], storm["killed_at"] + storm["restart_s"], until
                )
            )
            storm["killed_at"] = time.strftime("%H:%M:%S", time.localtime(storm["killed_at"]))
        all_rows = dict(committed)
        write(
            args,
            {
                "scenario": "storm",
                "reconnect_within": args.reconnect_within,
                "sse": sse_count,
                "ws": args.ws,
                "connected": connected,
                "storms": storms,
                **deliveries(clients, all_rows),
                "by_kind": {
                    kind: deliveries([c for c in clients if c["kind"] == kind], all_rows)
                    for kind in ("sse", "ws")
                },
                "processes": sampler.report(),
                "client_cpu_s": round(client_cpu, 1),
            },
        )
    finally:
        for i in instances:
            i.stop()


def scenario_two(args: argparse.Namespace, env: dict[str, str], token: str) -> None:
    instances = start_instances(2, env, token, args)
    warm_up(args, instances[0], token)
    run = f"two-{uuid.uuid4().hex[:6]}"
    per = args.steps[-1] // 2
    try:
        # Clients of instance 1 fail over to instance 0 (a load balancer's job): each
        # client reconnects to the other instance when its own is gone.
        groups = [
            ("sse", instances[0].pushpin_port, per),
            ("sse", instances[1].pushpin_port, per),
        ]
        crowd = Crowd(groups, token, run, args)
        connected = crowd.wait_connected()
        sampler = sampler_for(instances, crowd)
        sampler.running.set()
        committed = insert_at_rate(args.database_url, run + "-a", args.rate, args.duration)
        killed_at = time.time()
        instances[1].stop()
        # The balancer now sends everyone to instance 0.
        proxy = LoadBalancerFlip(instances[1].pushpin_port, instances[0].pushpin_port)
        proxy.start()
        committed.update(insert_at_rate(args.database_url, run + "-b", args.rate, args.duration))
        time.sleep(args.settle)
        sampler.running.clear()
        sampler.done.set()
        clients, client_cpu = crowd.finish()
        proxy.stop()
        write(
            args,
            {
                "scenario": "two",
                "reconnect_within": args.reconnect_within,
                "sse": per * 2,
                "connected": connected,
                **deliveries(clients, committed),
                "by_instance": {
                    str(g): deliveries([c for c in clients if c["group"] == g], committed)
                    for g in (0, 1)
                },
                "failover": reconnections(clients, killed_at, killed_at),
                "processes": sampler.report(),
                "client_cpu_s": round(client_cpu, 1),
            },
        )
    finally:
        for i in instances:
            i.stop()


class LoadBalancerFlip:
    """Stands for the load balancer taking a dead machine out: a TCP relay on the dead
    instance's port to the living one's."""

    def __init__(self, listen: int, target: int) -> None:
        self.listen, self.target = listen, target
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                w.close()

        async def relay(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                tr, tw = await asyncio.open_connection("127.0.0.1", self.target)
            except OSError:
                w.close()
                return
            await asyncio.gather(pipe(r, tw), pipe(tr, w))

        for _ in range(100):
            try:
                server = await asyncio.start_server(relay, "127.0.0.1", self.listen, backlog=4096)
                break
            except OSError:
                await asyncio.sleep(0.1)
        self.stopping = asyncio.Event()
        await self.stopping.wait()
        server.close()

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(10)


SCENARIO_RUNNERS = {
    "ramp": scenario_ramp,
    "single": scenario_single,
    "storm": scenario_storm,
    "two": scenario_two,
    "connects": scenario_connects,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=SCENARIO_RUNNERS, required=True)
    parser.add_argument("--steps", default="1000,2000,5000,10000", help="SSE clients per step")
    parser.add_argument(
        "--kill",
        default="pushpin,daphne",
        help="storm: what to kill, in turn (pushpin, daphne, listener: every listen_notify)",
    )
    parser.add_argument("--sse", type=int, default=8000, help="single: SSE connects")
    parser.add_argument("--ws", type=int, default=1000, help="WebSocket clients beside them")
    parser.add_argument("--daphnes", type=int, default=2, help="Daphne processes per instance")
    parser.add_argument("--no-pushpin", dest="pushpin", action="store_false")
    parser.add_argument("--rate", type=float, default=1.0, help="rows per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of rows")
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument(
        "--pause", type=float, default=2.0, help="ramp: seconds from the last connect to the rows"
    )
    parser.add_argument("--connect-rate", type=float, default=200.0, help="connects per second")
    parser.add_argument("--client-processes", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=150, help="connects: at a time")
    parser.add_argument(
        "--reconnect-within",
        type=float,
        default=5.0,
        help="REALTIME_SSE_RECONNECT_WITHIN: the longest `retry:` a stream sets, seconds",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/realtime_scale"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
    )
    parser.add_argument("--logs", type=Path, default=ROOT / ".data" / "bench-scale")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "scale-results.jsonl")
    args = parser.parse_args()
    args.steps = [int(s) for s in args.steps.split(",")]
    args.kill = args.kill.split(",")
    if not set(args.kill) <= {"pushpin", "daphne", "listener"}:
        parser.error("--kill: pushpin, daphne or listener")
    args.logs = args.logs.resolve()
    args.logs.mkdir(parents=True, exist_ok=True)
    env, token = prepare(args)
    env["REALTIME_MAX_STREAMS_PER_USER"] = "1000000"
    env["REALTIME_LOG_LEVEL"] = os.environ.get("BENCH_LOG_LEVEL", "WARNING")
    env["REALTIME_SSE_RECONNECT_WITHIN"] = str(args.reconnect_within)
    SCENARIO_RUNNERS[args.scenario](args, env, token)


if __name__ == "__main__":
    main()

"""Clients and processes the tests drive: plain SQL, WebSocket, SSE, Daphne, listen_notify."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from websockets.asyncio.client import ClientConnection, connect

from realtime.pipeline.changes import ChangeEvent
from realtime.pipeline.listener import LogListener, LogListenerSettings
from tests.ports import free_port as free_port
from tests.ports import xdist_worker as xdist_worker

ROOT = Path(__file__).resolve().parent.parent


def insert_violation(
    pg: psycopg.Connection[Any],
    table: str = "violation_humandetections",
    *,
    camera_id: int | None = 1,
    image: str | None = "/media/x.jpg",
) -> int:
    """INSERT as a detector would, with plain SQL; returns the new row's id."""
    cur = pg.execute(
        sql.SQL(
            "INSERT INTO {} (camera_id, violation_date, violation_time, violation_image)"
            " VALUES (%s, CURRENT_DATE, LOCALTIME(0), %s) RETURNING id"
        ).format(sql.Identifier(table)),
        [camera_id, image],
    )
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def run_manage(database_url: str, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`manage.py argv...` against a database of a test's own, whatever its exit status."""
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env={
            "DATABASE_URL": database_url,
            "DJANGO_SECRET_KEY": "x" * 40,
            "PATH": "/usr/bin:/bin",
            "REALTIME_ENV_FILE": "",  # not the checkout's .env (make run's)
            **env,
        },
        capture_output=True,
        text=True,
    )


def manage(database_url: str, *argv: str, **env: str) -> str:
    """`manage.py argv...` against a database of a test's own; its output. It must succeed."""
    out = run_manage(database_url, *argv, **env)
    assert out.returncode == 0, f"manage.py {' '.join(argv)}: {out.stdout}{out.stderr}"
    return out.stdout


@contextmanager
def scratch_database(db_url: str, name: str) -> Iterator[str]:
    """A database of a test's own, dropped afterwards: its URL."""
    admin_url = psycopg.conninfo.make_conninfo(db_url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = psycopg.conninfo.conninfo_to_dict(db_url)
    host, port = params.get("host", "127.0.0.1"), params.get("port", 5432)
    try:
        yield f"postgresql://{params.get('user', 'postgres')}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def newest_event(pg: psycopg.Connection[Any]) -> int:
    """The id of the newest event in the log (0 when empty): a resume point."""
    row = pg.execute("SELECT coalesce(max(id), 0) FROM realtime_event").fetchone()
    assert row is not None
    return int(row[0])


def prune_log(pg: psycopg.Connection[Any], through: int) -> None:
    """What the product's pruning does (realtime.pipeline.retention), up to an id: the changes
    deleted, and how far the log is pruned raised (sql/010)."""
    pg.execute("DELETE FROM realtime_event WHERE id <= %s", [through])
    pg.execute(
        "INSERT INTO realtime_log_pruned (through) VALUES (%s) ON CONFLICT (only_row)"
        " DO UPDATE SET through = greatest(realtime_log_pruned.through, EXCLUDED.through)",
        [through],
    )


def event_number(event_id: str) -> int:
    """The change id in an SSE `id:` or a frame's `resume` ("violations:812.7733": 812)."""
    return int(event_id.rpartition(":")[2].partition(".")[0])


@dataclass
class Process:
    """A subprocess whose output goes to a file the test can read (and print on failure)."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 20.0, after: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log()[after:]:
                return
            if self.popen is not None and self.popen.poll() is not None:
                raise AssertionError(f"{self.args} exited early:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged within {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.popen is None or self.popen.poll() is not None:
            return self.popen.returncode if self.popen else None
        self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(
                f"{self.args} did not stop on signal {sig}:\n{self.log()}"
            ) from exc

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def server_env(database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "REDIS_", "REALTIME_", "DATABASE_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url,
        DJANGO_SECRET_KEY="e2e-test-secret-key-0123456789abcdef",
        DJANGO_DEBUG="0",
        DJANGO_SECURE_COOKIES="0",
        PYTHONUNBUFFERED="1",
        REALTIME_ENV_FILE="",  # not the checkout's .env (make run's)
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


def daphne(env: dict[str, str], port: int, log_path: Path) -> Process:
    bin_dir = Path(sys.executable).parent
    return Process(
        [str(bin_dir / "daphne"), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        env,
        log_path,
    )


def listen_notify(env: dict[str, str], log_path: Path) -> Process:
    return Process([sys.executable, "manage.py", "listen_notify"], env, log_path)


def wait_for_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} not answering after {timeout}s")


@asynccontextmanager
async def websocket(url: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    async with connect(url, open_timeout=10, **kwargs) as ws:
        yield ws


async def next_frame(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str), "frames are text"
    frame: dict[str, Any] = json.loads(message)
    return frame


async def frames_until(
    ws: ClientConnection, wanted: set[int], timeout: float = 15.0
) -> dict[int, dict[str, Any]]:
    """Frames for the given event ids (others are skipped); fails if one is missing."""
    got: dict[int, dict[str, Any]] = {}
    deadline = asyncio.get_running_loop().time() + timeout
    while not wanted <= got.keys():
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"missing events {sorted(wanted - got.keys())}"
        frame = await next_frame(ws, remaining)
        got[frame["id"]] = frame
    return got


@dataclass
class Stack:
    mode: str
    port: int
    env: dict[str, str]
    logs: Path
    server: Process
    listeners: list[Process] = field(default_factory=list)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start_listener(self) -> Process:
        index = len(self.listeners)
        process = listen_notify(self.env, self.logs / f"listen_notify-{index}.log").start()
        self.listeners.append(process)
        return process

    def running_listeners(self) -> list[Process]:
        return [p for p in self.listeners if p.popen is not None and p.popen.poll() is None]

    @classmethod
    def start(
        cls, mode: str, database_url: str, redis_url: str | None, logs: Path, **extra_env: str
    ) -> Stack:
        """Daphne, and in redis mode a separate listen_notify, answering on a free port."""
        env = server_env(database_url, redis_url, **extra_env)
        port = free_port()
        stack = cls(mode, port, env, logs, daphne(env, port, logs / "daphne.log"))
        try:
            if mode == "redis":
                stack.start_listener().wait_for_log("listener active")
            stack.server.start()
            wait_for_http(f"{stack.http}/accounts/login/")
        except BaseException:
            stack.stop()
            raise
        return stack

    def restart_server(self, down: Callable[[], None] = lambda: None) -> None:
        """Kill Daphne (SIGKILL), run `down` while it is away, start it on the same port."""
        self.server.kill()
        down()
        self.server = daphne(self.env, self.port, self.server.log_path).start()
        wait_for_http(f"{self.http}/accounts/login/")

    def stop(self) -> None:
        for process in [self.server, *self.listeners]:
            process.kill()


@dataclass
class SSEEvent:
    event: str = "message"
    id: str | None = None
    data: str = ""


@dataclass
class SSEStream:
    """An EventSource-like reader over httpx: events, and the last id seen."""

    response: httpx.Response
    last_id: str | None = None
    # The reconnection time the server set (`retry:`), in ms, as an EventSource keeps it.
    retry: int | None = None
    _lines: AsyncIterator[str] | None = field(default=None, repr=False)

    async def next_event(self, timeout: float = 10.0, heartbeats: bool = False) -> SSEEvent:
        """The next event; `heartbeat` events (the pipeline's state) only if asked for."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            event = await asyncio.wait_for(self._next_event(), max(remaining, 0.001))
            if heartbeats or event.event != "heartbeat":
                return event

    async def _next_event(self) -> SSEEvent:
        if self._lines is None:
            self._lines = self.response.aiter_lines()
        event = SSEEvent()
        data: list[str] = []
        async for line in self._lines:
            if line == "":
                if data or event.id is not None:
                    event.data = "\n".join(data)
                    if event.id is not None:
                        self.last_id = event.id
                    return event
                event = SSEEvent()
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event.event = value
            elif name == "id":
                event.id = value
            elif name == "data":
                data.append(value)
            elif name == "retry" and value.isdigit():
                self.retry = int(value)
        raise EOFError("stream closed")

    async def next_change(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next `message` event's JSON, skipping stream-open and heartbeats."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            event = await self.next_event(max(remaining, 0.001))
            if event.event == "message":
                change: dict[str, Any] = json.loads(event.data)
                return change

    async def changes_until(
        self, wanted: set[int], timeout: float = 15.0
    ) -> dict[int, dict[str, Any]]:
        got: dict[int, dict[str, Any]] = {}
        deadline = asyncio.get_running_loop().time() + timeout
        while not wanted <= got.keys():
            remaining = deadline - asyncio.get_running_loop().time()
            assert remaining > 0, f"missing events {sorted(wanted - got.keys())}"
            change = await self.next_change(remaining)
            got[change["id"]] = change
        return got


@asynccontextmanager
async def sse(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[SSEStream]:
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client,
        client.stream("GET", url, headers=headers or {}) as response,
    ):
        assert response.status_code == 200, f"{url}: HTTP {response.status_code}"
        stream = SSEStream(response)
        opened = await stream.next_event()
        assert opened.event == "stream-open", opened
        yield stream


class Collector:
    """A forward callback that remembers what it was given."""

    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []
        self.calls = 0
        self._changed = asyncio.Condition()

    async def __call__(self, events: list[ChangeEvent]) -> None:
        async with self._changed:
            self.calls += 1
            self.events.extend(events)
            self._changed.notify_all()

    def images(self) -> list[Any]:
        return [e["data"].get("violation_image") for e in self.events]

    async def wait_until(self, predicate: Any, timeout: float = 15.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def wait_for_images(self, wanted: set[str], timeout: float = 15.0) -> None:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: wanted <= set(self.images())), timeout
            )


@asynccontextmanager
async def running(
    listener: LogListener, *, active: bool = True
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(listener.run())
    try:
        if active:
            await asyncio.wait_for(listener.wait_active(), 10)
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def listener_under_test(db_url: str, **overrides: Any) -> tuple[LogListener, Collector]:
    """A listener on the test database, forwarding to a Collector (fast catch-up)."""
    collector = Collector()
    settings = LogListenerSettings(
        **{"conninfo": db_url, "catch_up_interval": 0.5, "standby_poll_interval": 0.2, **overrides}
    )
    return LogListener(settings, collector), collector


def memory_stack(logs: str, **env: str) -> Any:
    """A test module's `stack` fixture: one Daphne with its embedded listener (memory
    mode) on the test database, for all the module's tests; its logs in a folder `logs`;
    `env`, more of the server's environment.

        stack = memory_stack("console")
    """

    @pytest.fixture(scope="module")
    def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
        started = Stack.start("memory", database_url, None, tmp_path_factory.mktemp(logs), **env)
        try:
            yield started
        finally:
            started.stop()

    return stack

"""LISTEN for changes and forward each one exactly once while connected, at least once overall.

The event log is the truth; a notification is only a wake-up
(docs/decisions/010-the-log-is-the-truth.md).
Any role that can connect may NOTIFY on any channel with any payload, so nothing is
forwarded on a payload's word: each wake-up reads the log, once.

The loop, on one autocommit connection:

1. Stand by until `pg_try_advisory_lock` succeeds: several listeners may run, one forwards.
2. LISTEN, then catch up from the event log, then on each packet of notifications read
   what the log has above the high-water mark (and the ids the notifications named below
   it: transactions that took an id early and committed late), catching up again every
   `catch_up_interval` seconds (which is also the health check).
3. On any connection error: log one line, back off (capped, jittered), go to 1.

Catch-up is safe against commit order: event ids are taken at INSERT time, but
transactions commit in another order, so "id > last seen" alone would miss a long
transaction that took a lower id (and whose notification was skipped, say with a full
NOTIFY queue). Each scan reads events whose writer's transaction id is at or above the
oldest transaction that was still running at the previous scan (`pg_snapshot_xmin`);
everything older was already visible then. Ids forwarded since are remembered until a
scan no longer returns them, so nothing is sent twice by one listener. The scan horizon
is stored in realtime_listener_state so a standby resumes from it.

Pruning runs beside the loop, as its own task on its own connection (realtime.pipeline.retention).

Stopping (`stop()`) cancels the loop and also marks it stopping, checked at each step:
on Python 3.11 `asyncio.wait_for` can swallow a cancellation that arrives as the awaited
call completes (CPython #86296), and redis-py wraps every command sent to Redis in one
when a socket timeout is set, so a single cancel of a busy listener was sometimes lost
and `listen_notify` ran on after SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import psycopg
from psycopg import sql

from realtime import metrics
from realtime.pipeline import event_log
from realtime.pipeline.changes import (
    NOTIFY_CHANNEL,
    ChangeEvent,
    InvalidPayload,
    StatementNotice,
    parse_notify_payload,
)
from realtime.pipeline.event_log import Logged
from realtime.pipeline.positions import after_change
from realtime.pipeline.retention import prune_periodically
from realtime.pipeline.retry import backoff_delay

logger = logging.getLogger(__name__)

# Given the changes in order; awaited before they count as forwarded.
Forward = Callable[[list[ChangeEvent]], Awaitable[None]]
# The newest id forwarded, and the catch-up horizon (realtime.pipeline.positions).
Heartbeat = Callable[[int, str], Awaitable[None]]
State = Literal["starting", "standby", "active", "down"]

# pg_advisory_lock key shared by every listener of this database ("realtime" in ASCII).
LOCK_KEY = 0x7265616C74696D65
# How /healthz counts the listeners connected (pg_stat_activity).
LISTENER_APPLICATION_NAME = "realtime listen_notify"
FETCH_CHUNK = 1000
# At most one line a minute about notifications that named nothing the log holds.
SKIPPED_LOG_INTERVAL = 60.0
# How long a stopping listener waits for its pruning task: a DELETE being cancelled waits
# for the server's answer (psycopg allows it up to 10 s), and stopping must stay bounded.
PRUNE_STOP_TIMEOUT = 1.0


@dataclass
class LogListenerSettings:
    conninfo: str
    # Also the age of the horizon of the positions clients resume from
    # (realtime.pipeline.positions).
    catch_up_interval: float = 1.0
    standby_poll_interval: float = 1.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # Events older than this are deleted from the log, hourly, by the active listener.
    retention: timedelta | None = None
    prune_interval: float = 3600.0


@dataclass
class Hints:
    """What the notifications of one wake-up named: where to look in the log, no more."""

    ids: set[int] = field(default_factory=set)
    statements: list[StatementNotice] = field(default_factory=list)
    unreadable: int = 0


def hints_of(raws: Iterable[str]) -> Hints:
    hints = Hints()
    for raw in raws:
        try:
            payload = parse_notify_payload(raw)
        except InvalidPayload:
            hints.unreadable += 1
            continue
        if "first_id" in payload:
            hints.statements.append(payload)  # type: ignore[arg-type]
        else:
            hints.ids.add(payload["id"])
    return hints


def start_pruning(settings: LogListenerSettings) -> asyncio.Task[None] | None:
    """The active listener's side task (realtime.pipeline.retention), or None without one."""
    if settings.retention is None:
        return None
    # A name of its own: /healthz counts the listeners' connections by theirs.
    conninfo = psycopg.conninfo.make_conninfo(settings.conninfo, application_name="realtime prune")
    return asyncio.create_task(
        prune_periodically(conninfo, settings.retention, settings.prune_interval),
        name="realtime-prune",
    )


async def stop_pruning(pruning: asyncio.Task[None]) -> None:
    pruning.cancel()
    await asyncio.wait({pruning}, timeout=PRUNE_STOP_TIMEOUT)
    if not pruning.done():
        logger.warning("pruning still stopping; the listener goes on stopping without it")


class SkippedNotifications:
    """Counted, and told at most once a minute: anyone may NOTIFY, as often as they like."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.told_at = 0.0

    def add(self, unreadable: int, not_in_the_log: int) -> None:
        self.counts["unreadable"] += unreadable
        self.counts["not_in_the_log"] += not_in_the_log
        now = time.monotonic()
        if sum(self.counts.values()) and now - self.told_at >= SKIPPED_LOG_INTERVAL:
            logger.warning(
                "skipped notifications the event log does not back", extra=dict(self.counts)
            )
            self.counts, self.told_at = Counter(), now


def count_forwarded(items: list[Logged]) -> None:
    """The metrics of forwarded changes: one counter update per table and operation in the
    batch, not one per event; each change's time from its trigger to now."""
    now = time.time()
    counts = Counter((item.change["table"], item.change["op"]) for item in items)
    for (table, op), count in counts.items():
        metrics.EVENTS_FORWARDED.labels(table, op).inc(count)
    for item in items:
        if item.written_at is not None:
            metrics.COMMIT_TO_FORWARD.observe(max(0.0, now - item.written_at))


class Role:
    """What a listener is doing (starting, standby, active, down), told to whoever waits."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        self.state: State = "starting"
        self.active = asyncio.Event()
        self.settled = asyncio.Event()  # it first knew whether it forwards or stands by

    def set(self, state: State) -> None:
        if state != self.state:
            logger.info("listener %s", state, extra={"holder": self.holder})
        self.state = state
        if state in ("active", "standby"):
            self.settled.set()
        if state == "active":
            self.active.set()
        else:
            self.active.clear()


class LogListener:
    def __init__(
        self, settings: LogListenerSettings, forward: Forward, heartbeat: Heartbeat | None = None
    ) -> None:
        self.settings = settings
        self.forward = forward
        self.heartbeat = heartbeat
        self.role = Role(settings.holder)
        self.reconnects = 0
        # Ids forwarded that a later catch-up scan may return again.
        self._forwarded: set[int] = set()
        # Every change up to this id that the log held when it was read is forwarded.
        self._high_water = 0
        self._window = 0  # read from the database on connecting
        # The oldest transaction still running at the last scan (see the module's text).
        self._scan_from = "0"
        self._skipped = SkippedNotifications()
        self._task: asyncio.Task[Any] | None = None
        self._stopping = False

    @property
    def state(self) -> State:
        return self.role.state

    async def wait_active(self) -> None:
        await self.role.active.wait()

    async def wait_settled(self) -> None:
        """Until this listener first knows its role: forwarding, or standing by."""
        await self.role.settled.wait()

    def stop(self) -> None:
        """End run(): at once, or at its next step if a library swallowed the cancellation."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _go_on(self) -> None:
        """Raise CancelledError once stop() was called (see the module's text)."""
        if self._stopping:
            raise asyncio.CancelledError

    async def run(self) -> None:
        """Run until cancelled, or until stop()."""
        self._task = asyncio.current_task()
        attempt = 0
        while True:
            try:
                self._go_on()
                async with await psycopg.AsyncConnection.connect(
                    self.settings.conninfo, autocommit=True
                ) as conn:
                    await self._stand_by_until_locked(conn)
                    attempt = 0
                    await self._forward_changes(conn)
            except asyncio.CancelledError:
                self.role.set("down")
                raise
            except Exception as exc:  # the database or the channel layer went away
                self.role.set("down")
                self._go_on()  # stopping: psycopg closes a connection it could not cancel on
                delay = backoff_delay(
                    attempt, self.settings.backoff_initial, self.settings.backoff_max
                )
                attempt += 1
                self.reconnects += 1
                metrics.LISTENER_RECONNECTS.inc()
                logger.warning(
                    "listener connection lost, reconnecting",
                    extra={"error": repr(exc), "retry_in": round(delay, 2)},
                    exc_info=not isinstance(exc, (psycopg.OperationalError, OSError)),
                )
                await asyncio.sleep(delay)

    async def _stand_by_until_locked(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
            row = await cur.fetchone()
            if row and row[0]:
                if self.state == "standby":
                    metrics.LISTENER_FAILOVERS.inc()
                return
            self.role.set("standby")
            await asyncio.sleep(self.settings.standby_poll_interval)
            self._go_on()

    async def _forward_changes(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
        self._window = await event_log.log_window(conn)
        scan_from = await event_log.load_scan_from(conn)
        if scan_from is None:
            # First listener ever on this database: start from now, do not replay history.
            scan_from, ids, newest = await event_log.scan(
                conn, await event_log.current_horizon(conn)
            )
            self._forwarded = set(ids)
            self._high_water = newest
            await event_log.save_scan_from(conn, scan_from, self.settings.holder, newest)
        self._scan_from = scan_from  # the horizon of positions until this catch-up ends
        self._scan_from = await self._catch_up(conn, scan_from)
        self.role.set("active")  # caught up, and listening
        pruning = start_pruning(self.settings)
        try:
            loop = asyncio.get_running_loop()
            next_catch_up = loop.time() + self.settings.catch_up_interval
            while True:
                self._go_on()
                remaining = max(0.0, next_catch_up - loop.time())
                # Everything that arrived in the same packet comes at once: one read for it.
                batch = [n async for n in conn.notifies(timeout=remaining, stop_after=1)]
                if batch:
                    await self._wake(conn, [notify.payload for notify in batch])
                if loop.time() >= next_catch_up:
                    self._scan_from = await self._catch_up(conn, self._scan_from)
                    next_catch_up = loop.time() + self.settings.catch_up_interval
        finally:
            if pruning is not None:
                await stop_pruning(pruning)

    async def _wake(self, conn: psycopg.AsyncConnection[Any], raws: list[str]) -> None:
        """Forward what the log holds that these notifications may be about, in id order."""
        hints = hints_of(raws)
        late = sorted(i for i in hints.ids if i <= self._high_water and i not in self._forwarded)
        seen: set[int] = set()
        writers: set[str] = set()
        while True:
            found = await event_log.read_new(
                conn, self._high_water, late, self._scan_from, self._window
            )
            above = sum(1 for item in found if item.change["id"] > self._high_water)
            seen.update(item.change["id"] for item in found)
            writers.update(item.xid for item in found)
            await self._send([item for item in found if item.change["id"] not in self._forwarded])
            self._high_water = max([self._high_water, *seen])
            if above < self._window:
                break
            late = []  # a big statement: read on
        for notice in hints.statements:
            if notice["first_id"] <= self._high_water and notice["xid"] not in writers:
                # Committed after changes with higher ids were read: by its transaction.
                if await self._forward_statement(conn, notice):
                    writers.add(notice["xid"])
        # Named nothing the log holds: not ours, or forged (a real one was read here or
        # forwarded before, by a catch-up that came first).
        unbacked = len(hints.ids - seen - self._forwarded) + sum(
            1
            for notice in hints.statements
            if notice["xid"] not in writers and notice["last_id"] not in self._forwarded
        )
        self._skipped.add(hints.unreadable, unbacked)

    async def _forward_statement(
        self, conn: psycopg.AsyncConnection[Any], notice: StatementNotice
    ) -> bool:
        """Whether the log held any of the statement's changes."""
        if int(notice["xid"]) < int(self._scan_from):
            return False  # finished before the last scan, which forwarded all of it
        found = False
        async for window in event_log.read_statement(
            conn, notice["xid"], notice["first_id"], notice["last_id"], self._window
        ):
            found = found or bool(window)
            await self._send([item for item in window if item.change["id"] not in self._forwarded])
        return found

    async def _send(self, items: list[Logged]) -> None:
        self._go_on()
        if not items:
            return
        for item in items:
            # Every change of a transaction below the catch-up horizon is forwarded by now.
            item.change["resume"] = after_change(item.change["id"], self._scan_from)
        await self.forward([item.change for item in items])
        self._forwarded.update(item.change["id"] for item in items)
        self._high_water = max(self._high_water, max(item.change["id"] for item in items))
        count_forwarded(items)

    async def _catch_up(self, conn: psycopg.AsyncConnection[Any], scan_from: str) -> str:
        next_from, ids, newest = await event_log.scan(conn, scan_from)
        missed = [event_id for event_id in ids if event_id not in self._forwarded]
        for chunk_start in range(0, len(missed), FETCH_CHUNK):
            await self._send(
                await event_log.fetch(conn, missed[chunk_start : chunk_start + FETCH_CHUNK])
            )
        if missed:
            metrics.EVENTS_REPLAYED.labels("listener_catch_up").inc(len(missed))
            logger.info("caught up from the event log", extra={"events": len(missed)})
        # Only ids a later scan can return again need remembering.
        self._forwarded = set(ids)
        self._high_water = max(self._high_water, newest)
        await event_log.save_scan_from(conn, next_from, self.settings.holder, newest)
        if self.heartbeat is not None:
            # Everything visible at the scan is forwarded: servers that missed some of it
            # on the bus read it from the log.
            await self.heartbeat(newest, next_from)
        return next_from

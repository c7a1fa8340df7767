"""LISTEN for changes and forward each one exactly once while connected, at least once overall.

The loop, on one autocommit connection:

1. Stand by until `pg_try_advisory_lock` succeeds: several listeners may run, one forwards.
2. LISTEN, then catch up from the event log, then forward notifications as they come,
   catching up again every `catch_up_interval` seconds (which is also the health check).
3. On any connection error: log one line, back off (capped, jittered), go to 1.

Catch-up is safe against commit order: event ids are taken at INSERT time, but
transactions commit in another order, so "id > last seen" would miss a long transaction
that took a lower id. Instead each scan reads events whose writer's transaction id is at
or above the oldest transaction that was still running at the previous scan
(`pg_snapshot_xmin`); everything older was already visible then. Ids forwarded since are
remembered until a scan no longer returns them, so nothing is sent twice by one listener.
The scan horizon is stored in realtime_listener_state so a standby resumes from it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import psycopg
from psycopg import sql

from realtime import eventlog, metrics
from realtime.changes import (
    NOTIFY_CHANNEL,
    STATE,
    ChangeEvent,
    InvalidPayload,
    NotifyPayload,
    StatementNotice,
    parse_notify_payload,
)
from realtime.retention import aprune_events

logger = logging.getLogger(__name__)

# Given the changes in order; awaited before they count as forwarded.
Forward = Callable[[list[ChangeEvent]], Awaitable[None]]
Heartbeat = Callable[[int], Awaitable[None]]
State = Literal["starting", "standby", "active", "down"]

# pg_advisory_lock key shared by every listener of this database ("realtime" in ASCII).
LOCK_KEY = 0x7265616C74696D65
STATE_NAME = "default"
FETCH_CHUNK = 1000
# A big statement's changes are read a window of this many ids at a time: the most one
# log row holds (sql/005). Each read unpacks the whole JSON of the log rows it touches,
# so a window reads each of them about once.
STATEMENT_WINDOW = 10_000


@dataclass
class ListenerSettings:
    conninfo: str
    catch_up_interval: float = 5.0
    standby_poll_interval: float = 1.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # Events older than this are deleted from the log, hourly, by the active listener.
    retention: timedelta | None = None
    prune_interval: float = 3600.0


def backoff_delay(attempt: int, initial: float, cap: float) -> float:
    """Capped exponential backoff with jitter (half to full of the step)."""
    step = min(cap, initial * (2 ** min(attempt, 32)))
    return step * random.uniform(0.5, 1.0)


class Listener:
    def __init__(
        self, settings: ListenerSettings, forward: Forward, heartbeat: Heartbeat | None = None
    ) -> None:
        self.settings = settings
        self.forward = forward
        self.heartbeat = heartbeat
        self.state: State = "starting"
        self.reconnects = 0
        # Ids forwarded that a later catch-up scan may return again.
        self._forwarded: set[int] = set()
        # Tables carrying the trigger; a notification naming another one is not ours.
        self._watched: frozenset[str] = frozenset()
        self._watched_at = 0.0
        # When to catch up at the latest, on the loop's clock (see _handle_notifies).
        self._catch_up_by = float("inf")
        self._active = asyncio.Event()
        self._settled = asyncio.Event()

    async def wait_active(self) -> None:
        await self._active.wait()

    async def wait_settled(self) -> None:
        """Until this listener first knows its role: forwarding, or standing by."""
        await self._settled.wait()

    async def run(self) -> None:
        """Run until cancelled."""
        attempt = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.settings.conninfo, autocommit=True
                ) as conn:
                    await self._stand_by_until_locked(conn)
                    attempt = 0
                    await self._forward_changes(conn)
            except asyncio.CancelledError:
                self._set_state("down")
                raise
            except Exception as exc:  # the database or the channel layer went away
                self._set_state("down")
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

    def _set_state(self, state: State) -> None:
        if state != self.state:
            logger.info("listener %s", state, extra={"holder": self.settings.holder})
        self.state = state
        if state in ("active", "standby"):
            self._settled.set()
        if state == "active":
            self._active.set()
        else:
            self._active.clear()

    async def _stand_by_until_locked(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
            row = await cur.fetchone()
            if row and row[0]:
                if self.state == "standby":
                    metrics.LISTENER_FAILOVERS.inc()
                return
            self._set_state("standby")
            await asyncio.sleep(self.settings.standby_poll_interval)

    async def _forward_changes(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
        scan_from = await self._load_scan_from(conn)
        if scan_from is None:
            # First listener ever on this database: start from now, do not replay history.
            cur = await conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
            row = await cur.fetchone()
            assert row is not None
            scan_from, ids, _ = await self._scan(conn, row[0])
            self._forwarded = set(ids)
            await self._save_scan_from(conn, scan_from, max(ids, default=0))
        scan_from = await self._catch_up(conn, scan_from)
        self._set_state("active")  # caught up, and listening
        loop = asyncio.get_running_loop()
        next_catch_up = loop.time() + self.settings.catch_up_interval
        next_prune = loop.time()
        while True:
            if self.settings.retention is not None and loop.time() >= next_prune:
                await self._prune(conn, self.settings.retention)
                next_prune = loop.time() + self.settings.prune_interval
            # Sooner when a notification named a table not known to be watched.
            next_catch_up = min(next_catch_up, self._catch_up_by)
            self._catch_up_by = float("inf")
            remaining = max(0.0, next_catch_up - loop.time())
            # Everything that arrived in the same packet comes at once: one forward for it.
            batch = [n async for n in conn.notifies(timeout=remaining, stop_after=1)]
            if batch:
                await self._handle_notifies(conn, [notify.payload for notify in batch])
            if loop.time() >= next_catch_up:
                scan_from = await self._catch_up(conn, scan_from)
                next_catch_up = loop.time() + self.settings.catch_up_interval

    async def _handle_notifies(self, conn: psycopg.AsyncConnection[Any], raws: list[str]) -> None:
        """Forward, together and in order, the changes of the notifications received at once."""
        wanted: list[tuple[int, ChangeEvent | None, float | None]] = []
        for raw in raws:
            try:
                payload = parse_notify_payload(raw)
            except InvalidPayload as exc:
                logger.warning(
                    "skipped unreadable notification",
                    extra={"reason": str(exc), "payload": raw[:200]},
                )
                continue
            if payload["table"] not in self._watched:
                # A table watched since the list was read (`add_kind`), or forged.
                await self._refresh_watched(conn)
            if payload["table"] not in self._watched:
                # Not now, maybe: the catch-up forwards whatever the log has, soon.
                self._catch_up_by = min(self._catch_up_by, self._watched_at + 1.0)
                logger.warning(
                    "skipped notification for a table that is not watched",
                    extra={"table": payload["table"][:100], "event_id": payload.get("id")},
                )
                continue
            if "first_id" in payload:
                # A statement's rows, in the log: what came before them goes first.
                await self._send(await self._resolve(conn, wanted))
                wanted = []
                await self._forward_statement(conn, payload)  # type: ignore[arg-type]
                continue
            if payload["id"] in self._forwarded:
                continue
            wanted.append((payload["id"], _event_from_payload(payload), payload.get("written_at")))
        await self._send(await self._resolve(conn, wanted))

    async def _resolve(
        self,
        conn: psycopg.AsyncConnection[Any],
        wanted: list[tuple[int, ChangeEvent | None, float | None]],
    ) -> list[tuple[ChangeEvent, float | None]]:
        # Rows too big for a NOTIFY travel by id: read them from the log, in one query.
        by_id = {}
        if any(event is None for _, event, _ in wanted):
            by_id = {
                event["id"]: (event, written_at)
                for event, written_at in await self._fetch(
                    conn, [event_id for event_id, event, _ in wanted if event is None]
                )
            }
        ready: list[tuple[ChangeEvent, float | None]] = []
        for event_id, event, written_at in wanted:
            if event is None:
                if event_id not in by_id:
                    logger.warning(
                        "skipped notification for an event not in the log",
                        extra={"event_id": event_id},
                    )
                    continue
                event, written_at = by_id[event_id]
            ready.append((event, written_at))
        return ready

    async def _forward_statement(
        self, conn: psycopg.AsyncConnection[Any], notice: StatementNotice
    ) -> None:
        """Read a big statement's rows from the log, in id order, a window at a time."""
        # Where its rows really are: a notice (even a forged one) names no more than that.
        cur = await conn.execute(
            eventlog.STATEMENT_BOUNDS_SQL,
            {"first": notice["first_id"], "last": notice["last_id"], "xid": notice["xid"]},
        )
        bounds = await cur.fetchone()
        first, last = 1, 0
        if bounds is not None and bounds[0] is not None:
            first = max(bounds[0], notice["first_id"])
            last = min(bounds[1], notice["last_id"])
        after, found = first - 1, 0
        while after < last:
            up_to = min(after + STATEMENT_WINDOW, last)
            cur = await conn.execute(eventlog.STATEMENT_SQL, [after, up_to, notice["xid"]])
            rows = [eventlog.logged(row) for row in await cur.fetchall()]
            found += len(rows)
            await self._send([item for item in rows if item[0]["id"] not in self._forwarded])
            after = up_to
        if not found:
            logger.warning(
                "skipped notification for events not in the log",
                extra={"first_id": notice["first_id"], "last_id": notice["last_id"]},
            )

    async def _send(self, items: list[tuple[ChangeEvent, float | None]]) -> None:
        if not items:
            return
        await self.forward([event for event, _ in items])
        now = time.time()
        self._forwarded.update(event["id"] for event, _ in items)
        # One counter update per table and operation in the batch, not one per event.
        for (table, op), count in Counter((e["table"], e["op"]) for e, _ in items).items():
            metrics.EVENTS_FORWARDED.labels(table, op).inc(count)
        for _, written_at in items:
            if written_at is not None:
                metrics.COMMIT_TO_FORWARD.observe(max(0.0, now - written_at))

    async def _refresh_watched(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # At most once a second for names that are not watched: anyone may NOTIFY.
        now = asyncio.get_running_loop().time()
        if now - self._watched_at >= 1.0:
            self._watched = await self._watched_tables(conn)
            self._watched_at = now

    async def _catch_up(self, conn: psycopg.AsyncConnection[Any], scan_from: str) -> str:
        self._watched = await self._watched_tables(conn)
        self._watched_at = asyncio.get_running_loop().time()
        next_from, ids, newest = await self._scan(conn, scan_from)
        missed = [event_id for event_id in ids if event_id not in self._forwarded]
        for chunk_start in range(0, len(missed), FETCH_CHUNK):
            await self._send(
                await self._fetch(conn, missed[chunk_start : chunk_start + FETCH_CHUNK])
            )
        if missed:
            metrics.EVENTS_REPLAYED.labels("listener_catch_up").inc(len(missed))
            logger.info("caught up from the event log", extra={"events": len(missed)})
        # Only ids a later scan can return again need remembering.
        self._forwarded = set(ids)
        await self._save_scan_from(conn, next_from, newest)
        if self.heartbeat is not None:
            # Everything visible at the scan is forwarded: servers that missed some of it
            # on the bus read it from the log.
            await self.heartbeat(newest)
        return next_from

    @staticmethod
    async def _prune(conn: psycopg.AsyncConnection[Any], retention: timedelta) -> None:
        deleted = await aprune_events(conn, retention)
        if deleted:
            logger.info(
                "pruned the event log", extra={"events": deleted, "older_than": str(retention)}
            )

    @staticmethod
    async def _watched_tables(conn: psycopg.AsyncConnection[Any]) -> frozenset[str]:
        cur = await conn.execute(
            "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            # v3's statement triggers, or v2's or v1's where a DBA attached those.
            " WHERE t.tgname IN ('realtime_notify_v1', 'realtime_notify_v2_insert',"
            " 'realtime_notify_v2_update', 'realtime_notify_v2_delete',"
            " 'realtime_notify_v3_insert', 'realtime_notify_v3_update',"
            " 'realtime_notify_v3_delete')"
        )
        # The trigger reports TG_TABLE_NAME: the bare name, whatever the schema.
        return frozenset(row[0] for row in await cur.fetchall())

    @staticmethod
    async def _scan(
        conn: psycopg.AsyncConnection[Any], scan_from: str
    ) -> tuple[str, list[int], int]:
        """The next horizon, the ids at or above this one, and the newest id in the log."""
        # One statement, one snapshot: the horizon and the ids are consistent.
        cur = await conn.execute(
            f"SELECT pg_snapshot_xmin(pg_current_snapshot())::text,"
            f" {eventlog.IDS_SINCE_XID_SQL}, ({eventlog.NEWEST_ID_SQL})",
            [scan_from],
        )
        row = await cur.fetchone()
        assert row is not None
        return row[0], list(row[1]), int(row[2])

    @staticmethod
    async def _fetch(
        conn: psycopg.AsyncConnection[Any], ids: Iterable[int]
    ) -> list[tuple[ChangeEvent, float | None]]:
        """Events from the log, each with when its row was written (epoch seconds)."""
        ids = list(ids)
        if not ids:
            return []
        cur = await conn.execute(eventlog.BY_ID_SQL, eventlog.by_id_params(ids))
        return [eventlog.logged(row) for row in await cur.fetchall()]

    @staticmethod
    async def _load_scan_from(conn: psycopg.AsyncConnection[Any]) -> str | None:
        cur = await conn.execute(
            "SELECT scan_from::text FROM realtime_listener_state WHERE name = %s", [STATE_NAME]
        )
        row = await cur.fetchone()
        return row[0] if row else None

    async def _save_scan_from(
        self, conn: psycopg.AsyncConnection[Any], scan_from: str, forwarded_id: int
    ) -> None:
        await conn.execute(
            """
            INSERT INTO realtime_listener_state
                (name, scan_from, holder, heartbeat_at, forwarded_id)
            VALUES (%s, %s::xid8, %s, now(), %s)
            ON CONFLICT (name) DO UPDATE
            SET scan_from = EXCLUDED.scan_from, holder = EXCLUDED.holder,
                heartbeat_at = now(), forwarded_id = EXCLUDED.forwarded_id
            """,
            [STATE_NAME, scan_from, self.settings.holder, forwarded_id],
        )


def _event_from_payload(payload: NotifyPayload) -> ChangeEvent | None:
    """The change a payload carries, or None to read it from the log.

    An UPDATE and a STATE event are read from the log (with the payload's, the row could
    be drawn without its acknowledgement); so is a row too big for a payload.
    """
    if "data" not in payload or payload["op"] in ("UPDATE", STATE):
        return None
    return {
        "id": payload["id"],
        "table": payload["table"],
        "op": payload["op"],
        "data": payload["data"],
    }


def conninfo_from_django(database: dict[str, Any]) -> str:
    """A libpq connection string for a Django DATABASES entry, with TCP keepalives."""
    params: dict[str, Any] = {
        "dbname": database.get("NAME"),
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "host": database.get("HOST") or None,
        "port": database.get("PORT") or None,
        # Notice a dead server or a half-open connection within about 30 s.
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "application_name": "realtime listen_notify",
    }
    options = database.get("OPTIONS") or {}
    params.update({k: v for k, v in options.items() if isinstance(v, (str, int))})
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})

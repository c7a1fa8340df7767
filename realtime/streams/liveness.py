"""Is the pipeline behind this server process live? What the SSE heartbeats tell the page.

A screen that looks live but is not is worse than one that says it is down: an operator
trusts it. Two things can stop violations from reaching this process while its streams
stay open and quiet:

- the listener is not forwarding (stopped, or further behind than
  REALTIME_PIPELINE_LAG_LIMIT): what /healthz knows, read from the database by each
  process every few seconds (one query per process, not per client);
- this process hears nothing from the listener, whose heartbeat reaches every bridge over
  the channel layer after each catch-up (5 s): a broken Redis, say.

`watch` keeps the state; `realtime.streams.sse` sends it in every stream's heartbeat and
wakes every stream when it changes. The page adds what only it can know: that nothing at
all arrives (a server that froze with its connections open), see static/realtime/live.js.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from realtime.streams import health

logger = logging.getLogger(__name__)

# How often the state is worked out again, and the database asked.
CHECK_SECONDS = 2.0
DATABASE_EVERY = 5.0


@dataclass(frozen=True)
class PipelineState:
    live: bool
    reason: str = ""  # why not, in words (English: every stream's heartbeat carries it)
    # Why not, for a page to say in its user's language: database, no-listener, behind
    # (with lag_seconds) or unheard.
    code: str = ""
    lag_seconds: float | None = None

    def as_json(self) -> str:
        beat: dict[str, object] = {"pipeline": "live" if self.live else "down"}
        beat["reason"] = self.reason
        if self.code:
            beat["code"] = self.code
        if self.lag_seconds is not None:
            beat["lag_seconds"] = round(self.lag_seconds)
        return json.dumps(beat)


def judge(listener: dict[str, object] | None, unheard_for: float) -> PipelineState:
    """The state from the database's report of the listener (None: the database could not
    be read) and how long this process has heard nothing from the listener."""
    if listener is None:
        return PipelineState(False, "the database cannot be reached", "database")
    if listener.get("state") != "active":
        return PipelineState(False, "no listener is forwarding changes", "no-listener")
    lag = float(listener.get("lag_seconds") or 0.0)  # type: ignore[arg-type]
    if lag > settings.REALTIME_PIPELINE_LAG_LIMIT:
        return PipelineState(False, f"the listener is {lag:.0f} s behind", "behind", lag)
    if unheard_for > health.LISTENER_STALE_AFTER:
        return PipelineState(False, "this server hears nothing from the listener", "unheard")
    return PipelineState(True)


class PipelineWatch:
    def __init__(self) -> None:
        self.state = PipelineState(True)
        self.generation = 0  # goes up on every change of state
        self._heard_at = time.monotonic()
        # The database's report of the listener (realtime.streams.health), None if unreadable.
        self.listener: dict[str, object] | None = {"state": "active"}
        self._on_change: list[Callable[[], None]] = []

    def heard_from_listener(self) -> None:
        """The bridge got a heartbeat or a batch from the listener."""
        self._heard_at = time.monotonic()

    def on_change(self, callback: Callable[[], None]) -> None:
        self._on_change.append(callback)

    def update(self) -> None:
        state = judge(self.listener, time.monotonic() - self._heard_at)
        if state == self.state:
            return
        self.state = state
        self.generation += 1
        if state.live:
            logger.info("pipeline live again")
        else:
            logger.warning("pipeline not live", extra={"reason": state.reason})
        for callback in self._on_change:
            callback()

    async def run(self) -> None:
        """Until cancelled. Starts as live, with the grace of one listener heartbeat."""
        self._heard_at = time.monotonic()
        asked_at = 0.0
        while True:
            if time.monotonic() - asked_at >= DATABASE_EVERY:
                asked_at = time.monotonic()
                self.listener = await _listener_report()
            self.update()
            await asyncio.sleep(CHECK_SECONDS)


def _read_listener() -> dict[str, object] | None:
    close_old_connections()  # a connection the database dropped is not used again
    try:
        return health.database_report()[1]
    except DatabaseError:
        return None
    finally:
        close_old_connections()


_listener_report = sync_to_async(_read_listener, thread_sensitive=False)


watch = PipelineWatch()

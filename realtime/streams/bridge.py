"""One member of the Channels group per server process, fanning each change out locally.

Every WebSocket and SSE connection of the process subscribes here instead of joining the
group itself: one channel-layer receiver per process (not one Redis connection and one
bounded channel per socket), and each message is decoded once per process.

The bridge also heals its own gaps. The listener's heartbeat names the newest event it
has forwarded; the bridge compares the ids in the log since its previous check with the
ids it dispatched, and reads any it never got (Redis restarted and forgot the group, a
channel overflowed) from the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError

from realtime import metrics
from realtime.access import scopes
from realtime.pipeline import event_log
from realtime.pipeline.bus import (
    BATCH_TYPE,
    BRIDGE_CHANNEL_PREFIX,
    GROUP,
    HEARTBEAT_TYPE,
    SHELVES_TYPE,
    ChangeMessage,
    change_message,
    channel_layer,
    message_position,
    ours,
)
from realtime.pipeline.positions import BadPosition, Position, after_change
from realtime.pipeline.retry import backoff_delay
from realtime.streams import liveness, pushpin, sse_fanout
from realtime.streams.formats import in_scope
from realtime.streams.sse_fanout import wake_row_streams, wake_sse_streams
from realtime.violations import kinds

logger = logging.getLogger(__name__)


# Called with the changes that arrived together, in order, each id once.
Subscriber = Callable[[list[ChangeMessage]], None]


# Re-adding is cheap; a Redis that restarted has forgotten the group until then.
GROUP_REFRESH_SECONDS = 10.0


# Ids at or below the last heal remembered to drop a message that arrives twice (a
# listener's replay after a failover, a heal racing a late delivery). Ids above it are all
# remembered until the next heal: the heal must know every one it need not read again.
RECENT_IDS = 100_000


HEAL_BATCH = 1000


class DispatchedIds:
    """The ids a bridge dispatched: every one above its last heal (the heal must know each
    it need not read again), and the last RECENT_IDS at or below it."""

    def __init__(self) -> None:
        self.checked_up_to = 0
        self._recent: deque[int] = deque()
        self._recent_set: set[int] = set()
        self._above_checked: set[int] = set()

    def __contains__(self, event_id: int) -> bool:
        return event_id in self._above_checked or event_id in self._recent_set

    def add(self, event_id: int) -> None:
        if event_id > self.checked_up_to:
            self._above_checked.add(event_id)
        else:
            self._keep_recent([event_id])

    def checked(self, up_to: int) -> None:
        """Everything up to `up_to` is dispatched: its ids move to the bounded memory."""
        self.checked_up_to = up_to
        done = sorted(i for i in self._above_checked if i <= up_to)
        self._above_checked.difference_update(done)
        self._keep_recent(done)

    def _keep_recent(self, event_ids: list[int]) -> None:
        self._recent.extend(event_ids)
        self._recent_set.update(event_ids)
        while len(self._recent) > RECENT_IDS:
            self._recent_set.discard(self._recent.popleft())


class Bridge:
    def __init__(self) -> None:
        # By scope (realtime.access.scopes): each change is filtered once per scope, not per client.
        self._subscribers: dict[scopes.Scope, set[Subscriber]] = {}
        self.ready = asyncio.Event()
        self.subscribe(wake_sse_streams)
        self.subscribe(wake_row_streams)
        if settings.GRIP_URL:
            # Pushpin's held streams follow the listener's ids (realtime.streams.pushpin).
            self.subscribe(pushpin.remember_positions)
        self._ids = DispatchedIds()
        self.healed = 0  # events read from the log because the bus lost them
        self.foreign = 0  # messages of another deployment, dropped
        # The number of the last batch seen of each publisher (realtime.pipeline.bus.sequence).
        self._sequences: dict[str, int] = {}

    def subscribe(self, subscriber: Subscriber, scope: scopes.Scope = scopes.EVERYTHING) -> None:
        """`subscriber` gets the changes of the scope's cameras."""
        self._subscribers.setdefault(scope, set()).add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        for scope, subscribers in list(self._subscribers.items()):
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[scope]

    @property
    def checked_up_to(self) -> int:
        """Every event up to this id was dispatched (or was there before the bridge began)."""
        return self._ids.checked_up_to

    def dispatch(self, messages: list[ChangeMessage]) -> None:
        fresh = []
        for message in messages:
            if message["id"] not in self._ids:
                self._ids.add(message["id"])
                fresh.append(message)
        if not fresh:
            return
        for scope, subscribers in list(self._subscribers.items()):
            kept = fresh if scope is None else in_scope(fresh, scope)
            if not kept:
                continue
            for subscriber in list(subscribers):
                try:
                    subscriber(kept)
                except Exception:
                    logger.exception(
                        "bridge subscriber failed",
                        extra={"first_id": kept[0]["id"], "events": len(kept)},
                    )

    async def run(self) -> None:
        """Receive from the group until cancelled; rejoin after channel-layer errors."""
        layer = channel_layer()
        inbox: str | None = None  # this bridge's channel of the channel layer
        attempt = 0
        while True:
            refresher: asyncio.Task[None] | None = None
            try:
                if inbox is None:
                    inbox = await layer.new_channel(BRIDGE_CHANNEL_PREFIX)
                    self._ids.checked_up_to = await newest_event_id()
                    await kinds.arefresh()
                await layer.group_add(GROUP, inbox)
                refresher = asyncio.create_task(self._refresh_membership(inbox))
                self.ready.set()
                attempt = 0
                while True:
                    message = await layer.receive(inbox)
                    if not ours(message):
                        self._note_foreign(message)
                    elif message.get("type") == BATCH_TYPE:
                        liveness.watch.heard_from_listener()
                        changes = message["changes"]
                        if self._batches_lost(message):
                            # Nothing newer goes out before what the bus lost: commit order.
                            changes = [*await self._lost_before(changes), *changes]
                        await know_kinds(changes)
                        self.dispatch(changes)
                    elif message.get("type") == HEARTBEAT_TYPE:
                        liveness.watch.heard_from_listener()
                        self._batches_lost(message)
                        await self._heal(int(message["newest_id"]), message.get("horizon"))
                    elif message.get("type") == SHELVES_TYPE:
                        sse_fanout.shelves_changed()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff_delay(attempt, 0.5, 10.0)
                attempt += 1
                logger.warning(
                    "bridge lost the channel layer, rejoining",
                    extra={"error": repr(exc), "retry_in": round(delay, 2)},
                )
                await asyncio.sleep(delay)
            finally:
                if refresher is not None:
                    refresher.cancel()

    def _note_foreign(self, message: dict[str, Any]) -> None:
        self.foreign += 1
        if self.foreign == 1 or self.foreign % 1000 == 0:
            logger.error(
                "bridge got messages of another deployment on its bus, and dropped them: two "
                "deployments share a Redis and REALTIME_BUS_PREFIX",
                extra={"from": str(message.get("deployment"))[:100], "dropped": self.foreign},
            )

    def _batches_lost(self, message: dict[str, Any]) -> bool:
        """Whether the bus lost batches of this message's publisher before it (the numbers
        of its batches skip); a message of an older listener has none."""
        publisher, seq = message.get("publisher"), message.get("seq")
        if not isinstance(publisher, str) or not isinstance(seq, int):
            return False
        last = self._sequences.get(publisher)
        if len(self._sequences) > 16:
            self._sequences.clear()  # listeners come and go; only the active one counts
        self._sequences[publisher] = max(seq, last or 0)
        return last is not None and seq > last + 1

    async def _lost_before(self, changes: list[ChangeMessage]) -> list[ChangeMessage]:
        """What the bus lost before these changes, read from the log, in id order. Waits
        (and so holds everything newer) until the database answers."""
        up_to = max(message["id"] for message in changes)
        arriving = {message["id"] for message in changes}
        horizon = position_horizon(changes[0])
        attempt = 0
        while True:
            try:
                logged = await event_ids_between(self.checked_up_to, up_to)
                missed = [
                    event_id
                    for event_id in logged
                    if event_id not in arriving and event_id not in self._ids
                ]
                found = await events_by_id(missed, horizon) if missed else []
                break
            except DatabaseError as exc:
                delay = backoff_delay(attempt, 0.2, 5.0)
                attempt += 1
                logger.warning(
                    "bridge could not read what the bus lost from the log, holding newer changes",
                    extra={"error": repr(exc), "retry_in": round(delay, 2)},
                )
                await asyncio.sleep(delay)
        if found:
            logger.warning(
                "bridge missed events on the bus, reading them from the log",
                extra={"events": len(found), "after_id": self.checked_up_to},
            )
            metrics.EVENTS_REPLAYED.labels("bridge_heal").inc(len(found))
            self.healed += len(found)
        return found

    async def _heal(self, forwarded_up_to: int, horizon: str | None = None) -> None:
        """Read what the bus lost of the changes up to `forwarded_up_to` from the log; the
        listener has forwarded every change of a transaction below `horizon`. Without the
        database, at the next heartbeat."""
        if forwarded_up_to <= self.checked_up_to:
            return
        try:
            await self._heal_from_log(forwarded_up_to, horizon)
        except DatabaseError as exc:
            logger.warning(
                "bridge could not read the log to heal, trying at the next heartbeat",
                extra={"error": repr(exc)},
            )

    async def _heal_from_log(self, forwarded_up_to: int, horizon: str | None) -> None:
        logged = await event_ids_between(self.checked_up_to, forwarded_up_to)
        missed = [event_id for event_id in logged if event_id not in self._ids]
        for start in range(0, len(missed), HEAL_BATCH):
            messages = await events_by_id(missed[start : start + HEAL_BATCH], horizon or None)
            await know_kinds(messages)
            logger.warning(
                "bridge missed events on the bus, reading them from the log",
                extra={"events": len(messages), "after_id": self.checked_up_to},
            )
            metrics.EVENTS_REPLAYED.labels("bridge_heal").inc(len(messages))
            self.healed += len(messages)
            self.dispatch(messages)
        self._ids.checked(forwarded_up_to)

    async def _refresh_membership(self, inbox: str) -> None:
        layer = channel_layer()
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            await layer.group_add(GROUP, inbox)


newest_event_id = database_sync_to_async(event_log.newest_id)


event_ids_between = database_sync_to_async(event_log.change_ids_between)


async def know_kinds(messages: list[ChangeMessage]) -> None:
    """Read the kinds again when they are stale or a table is new to them (add_kind).
    Without the database, the changes go out with the kinds known: a change is never
    held back, nor dropped, for them."""
    try:
        for message in messages:
            if message["table"] not in kinds.cached().by_table:
                await kinds.arefresh(message["table"])
                return
        await kinds.arefresh()
    except DatabaseError as exc:
        logger.warning(
            "bridge could not read the kinds again, going on with those it knows",
            extra={"error": repr(exc)},
        )


@database_sync_to_async
def events_by_id(ids: list[int], horizon: str | None = None) -> list[ChangeMessage]:
    changes = event_log.changes_by_id(ids)
    for change in changes:
        change["resume"] = after_change(change["id"], horizon)
    return [change_message(change) for change in changes]


def position_horizon(message: ChangeMessage) -> str | None:
    """The horizon of a change's position (None for a bare id)."""
    try:
        return Position.parse(message_position(message)).horizon
    except BadPosition:
        return None

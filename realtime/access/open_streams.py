"""Who holds each open stream of this process, and closing those whose right has ended.

A token can be revoked or expire, and a user deactivated (from the admin, the shell or
any other way), while their WebSocket or SSE streams stay open for days. Every stream
registers here with its user, token and scope (realtime.access.scopes); one task per process
checks them all every few seconds in a few queries (not one per stream) and closes the
streams of what is no longer valid, and those whose user's scope changed (a site given or
taken): their clients reconnect and resume from their last event with the new scope. The
same registry caps the streams one user may hold open in a process, and knows which streams
are a person's live table (presence: realtime.alerts.presence).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings

from realtime import metrics
from realtime.access import scopes
from realtime.access.auth import recent_tokens
from realtime.access.scopes import EVERYTHING, Scope

logger = logging.getLogger(__name__)

# A revoked token or a deactivated user loses its streams within this many seconds.
CHECK_INTERVAL = 5.0


@dataclass(frozen=True)
class Holder:
    user_id: int
    token_id: int | None  # None: a session


@dataclass(frozen=True)
class Watch:
    """A person's live table (a session's, not a token's: a program watches nobody's
    screen): the cameras whose violations it shows (None: every camera)."""

    cameras: Scope


class TooManyStreams(Exception):
    """The user holds REALTIME_MAX_STREAMS_PER_USER streams in this process already."""


class OpenStreams:
    def __init__(self) -> None:
        self._streams: dict[int, tuple[Holder, Callable[[bool], None], Scope]] = {}
        self._per_user: Counter[int] = Counter()
        self._ids = itertools.count(1)
        self._watches: dict[int, tuple[int, Watch]] = {}  # by handle: the user's

    def full(self, holder: Holder) -> bool:
        """Whether the holder's user has as many streams open here as it may."""
        return self._per_user[holder.user_id] >= settings.REALTIME_MAX_STREAMS_PER_USER

    def open(
        self,
        holder: Holder,
        close: Callable[[bool], None],
        transport: str,
        scope: Scope = EVERYTHING,
        watch: Watch | None = None,
    ) -> int:
        """Register a stream of `scope` (and `watch` if it is a person's live table);
        `close` ends it (called on the event loop, with True when the scope changed, False
        when the credentials ended). Raises TooManyStreams past the cap."""
        if self.full(holder):
            metrics.STREAMS_REFUSED.labels(transport, "per_user_cap").inc()
            raise TooManyStreams(holder.user_id)
        handle = next(self._ids)
        self._streams[handle] = (holder, close, scope)
        self._per_user[holder.user_id] += 1
        if watch is not None:
            self._watches[handle] = (holder.user_id, watch)
        return handle

    def close(self, handle: int) -> None:
        self._watches.pop(handle, None)
        entry = self._streams.pop(handle, None)
        if entry is not None:
            self._per_user[entry[0].user_id] -= 1
            if not self._per_user[entry[0].user_id]:
                del self._per_user[entry[0].user_id]

    def __len__(self) -> int:
        return len(self._streams)

    def watching(self) -> dict[int, Scope]:
        """The users whose live table is open here, each with the cameras of all of theirs."""
        found: dict[int, Scope] = {}
        for user_id, watch in self._watches.values():
            if user_id in found:
                found[user_id] = scopes.union(found[user_id], watch.cameras)
            else:
                found[user_id] = watch.cameras
        return found

    async def check(self) -> int:
        """Close every stream whose token or user is no longer valid, or whose user's
        scope changed; how many."""
        holders = {holder for holder, _, _ in self._streams.values()}
        if not holders:
            return 0
        valid_users, valid_tokens, scopes_now = await still_valid(
            {h.user_id for h in holders}, {h.token_id for h in holders if h.token_id}
        )
        ended = [
            handle
            for handle, (holder, _, _) in self._streams.items()
            if holder.user_id not in valid_users
            or (holder.token_id is not None and holder.token_id not in valid_tokens)
        ]
        # And no new stream of this process on what it read of them before.
        recent_tokens.forget(
            {h.token_id for h in holders if h.token_id and h.token_id not in valid_tokens},
            {h.user_id for h in holders if h.user_id not in valid_users},
        )
        moved = [
            handle
            for handle, (holder, _, scope) in self._streams.items()
            if handle not in ended and scopes_now.get(holder.user_id, scope) != scope
        ]
        for handle in ended + moved:
            _, close, _ = self._streams[handle]
            self.close(handle)
            close(handle in moved)
        if ended:
            metrics.STREAMS_CLOSED.labels("credentials_ended").inc(len(ended))
            logger.info(
                "closed streams whose token or user is no longer valid",
                extra={"streams": len(ended)},
            )
        if moved:
            metrics.STREAMS_CLOSED.labels("scope_changed").inc(len(moved))
            logger.info(
                "closed streams whose user's sites changed; they resume with the new ones",
                extra={"streams": len(moved)},
            )
        return len(ended) + len(moved)

    async def watch(self) -> None:
        """Check every CHECK_INTERVAL seconds, until cancelled."""
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            try:
                await self.check()
            except Exception:  # the database away: the next round tries again
                logger.warning("could not check the streams' credentials", exc_info=True)


@database_sync_to_async
def still_valid(
    user_ids: set[int], token_ids: set[int]
) -> tuple[set[int], set[int], dict[int, Scope]]:
    from django.contrib.auth import get_user_model
    from django.db.models import Q
    from django.utils import timezone

    from realtime.models import ApiToken

    users = set(
        get_user_model()
        .objects.filter(pk__in=user_ids, is_active=True)
        .values_list("pk", flat=True)
    )
    tokens = set(
        ApiToken.objects.filter(pk__in=token_ids)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .values_list("pk", flat=True)
    )
    return users, tokens, scopes.of_users(users)


open_streams = OpenStreams()

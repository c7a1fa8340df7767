"""Ending the streams Pushpin holds when their user's right ends or sites change.

Pushpin holds those streams, not a server process: realtime.access.open_streams, which checks the
streams of its own process, never sees them, and Pushpin cannot say which it holds. But
each held stream is subscribed to its user's channel (realtime.streams.pushpin.end_user_streams). So
the active listener reads, after a catch-up at most every CHECK_INTERVAL (5 s, as the
direct streams' check), which users are active with which scope and which tokens are
valid, and ends the held streams of every user for whom that changed since its previous
read: within 10 s, like the direct streams.

A token is not a channel of its own: its user's held streams all reconnect, and those of
the ended token are refused (401). A change made between a listener's last read and a
standby taking over is not seen (the new listener starts from what it reads first).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from channels.db import database_sync_to_async

from realtime.access import scopes
from realtime.access.open_streams import CHECK_INTERVAL
from realtime.access.scopes import Scope
from realtime.streams import pushpin

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rights:
    scopes: dict[int, Scope]  # every active user's
    tokens: dict[int, int]  # every valid token's user


@dataclass(frozen=True)
class Ending:
    forbidden: set[int]  # users no longer active (or gone)
    moved: set[int]  # users whose token ended, or whose sites changed

    def __bool__(self) -> bool:
        return bool(self.forbidden or self.moved)


def ending(before: Rights, now: Rights) -> Ending:
    """Whose held streams end, from two reads of the rights."""
    forbidden = before.scopes.keys() - now.scopes.keys()
    rescoped = {u for u, scope in now.scopes.items() if before.scopes.get(u, scope) != scope}
    tokens_ended = {before.tokens[t] for t in before.tokens.keys() - now.tokens.keys()}
    return Ending(set(forbidden), (rescoped | tokens_ended) - forbidden)


def rights_now() -> Rights:
    """Every active user's scope and every valid token: three queries whatever their number."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q
    from django.utils import timezone

    from realtime.models import ApiToken

    active = get_user_model().objects.filter(is_active=True).values_list("pk", flat=True)
    tokens = ApiToken.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    ).values_list("pk", "user_id")
    return Rights(scopes.of_users(active), dict(tokens))


class HeldStreams:
    def __init__(self) -> None:
        self._rights: Rights | None = None
        self._checked_at = -1e9

    async def check(self) -> Ending:
        """End the held streams of whom changed since the previous check (if that is
        CHECK_INTERVAL old); never raises (the listener calls it): what failed is tried
        again at the next check."""
        if time.monotonic() - self._checked_at < CHECK_INTERVAL:
            return Ending(set(), set())
        self._checked_at = time.monotonic()
        try:
            now = await database_sync_to_async(rights_now)()
            ended = ending(self._rights, now) if self._rights is not None else Ending(set(), set())
            if ended.moved:
                scopes.every_scope.forget()  # the next change goes to the new scopes' streams
            for user_id in sorted(ended.forbidden | ended.moved):
                pushpin.end_user_streams(user_id, forbidden=user_id in ended.forbidden)
        except Exception:
            logger.warning("could not end the streams Pushpin holds", exc_info=True)
            return Ending(set(), set())
        self._rights = now
        if ended:
            logger.info(
                "ended the streams Pushpin holds for users whose rights or sites changed",
                extra={"forbidden": len(ended.forbidden), "moved": len(ended.moved)},
            )
        return ended


held_streams = HeldStreams()

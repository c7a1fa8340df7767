"""Who is watching: the people with a live table open, for which cameras, in every server
process.

Each process knows its own open streams (realtime.access.open_streams: a session's SSE rows
stream of the live table is a person watching; a token's is a program, and counts for
nobody). Every PRESENCE_EVERY seconds it writes one `Presence` row per watching user, with
the cameras of all their live tables in that process, and deletes its rows of users no
longer watching; a stopping runtime deletes its rows. A process killed outright cannot,
so readers take a row not refreshed for PRESENCE_STALE seconds as gone. The times are the
database's (`now()`), so the servers' clocks need not agree.

The readers: the alert worker's `is_watched(camera)` (`when_unwatched` rules), and the
console's "Watching: 2 (alice, bob)" (`watchers(scope)`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from datetime import timedelta

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Now

from realtime.access.open_streams import open_streams
from realtime.access.scopes import Scope
from realtime.alerts.models import Presence

logger = logging.getLogger(__name__)

# How often a process writes who watches in it: a live table opened is known to the alert
# worker (and to the other consoles) within this, plus the refresh of who reads it.
PRESENCE_EVERY = 3.0
# A row not refreshed for this long is gone (its process was killed, or cannot reach the
# database): five rounds, so a slow round or two never makes a watcher vanish.
PRESENCE_STALE = 15.0
# Rows this old are deleted by any process's round (a killed process never deletes its own).
PRESENCE_FORGET = 60.0
# How long a stopping runtime waits to delete its rows before it gives up.
GOODBYE_TIMEOUT = 2.0


_process: tuple[int, str] | None = None


def process_id() -> str:
    """This process's name in the presence rows: its host and pid, and a random suffix
    because a pid repeats across restarts (in containers, often 1), so a restarted process
    never adopts rows its predecessor left. Made anew in a forked child."""
    global _process
    if _process is None or _process[0] != os.getpid():
        name = f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"
        _process = (os.getpid(), name)
    return _process[1]


# --- reading (any process, synchronous: the alert worker, the console's views) -------------


def _fresh() -> QuerySet[Presence]:
    return Presence.objects.filter(seen_at__gte=Now() - timedelta(seconds=PRESENCE_STALE))


def is_watched(camera_id: int | None) -> bool:
    """Whether someone has a live table open that shows `camera_id`'s violations (None: a
    violation without a camera, shown only to those who see every camera)."""
    covering = Q(cameras__isnull=True)
    if camera_id is not None:
        covering |= Q(cameras__contains=[camera_id])
    return _fresh().filter(covering).exists()


def watchers(scope: Scope) -> list[str]:
    """The usernames, sorted, of the people watching any camera of `scope` (the operator's
    own sites; None: every camera, so everyone watching anything)."""
    rows = _fresh()
    if scope is not None:
        if not scope:
            return []
        rows = rows.filter(Q(cameras__isnull=True) | Q(cameras__overlap=sorted(scope)))
    return sorted(set(rows.values_list("username", flat=True)))


# --- writing (each server process) ----------------------------------------------------------


def record(process: str, watching: dict[int, Scope]) -> None:
    """Write `process`'s rows: one per watching user (seen now), none for anyone else; and
    forget every process's rows that are long stale."""
    user_model = get_user_model()
    names = dict(
        user_model.objects.filter(pk__in=watching).values_list("pk", user_model.USERNAME_FIELD)
    )
    rows = [
        (process, user_id, names[user_id], None if cameras is None else sorted(cameras))
        for user_id, cameras in watching.items()
        if user_id in names  # a user deleted meanwhile: their streams close within seconds
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        if rows:
            cursor.executemany(
                "INSERT INTO realtime_presence (process, user_id, username, cameras, seen_at)"
                " VALUES (%s, %s, %s, %s::bigint[], now())"
                " ON CONFLICT (process, user_id) DO UPDATE SET username = EXCLUDED.username,"
                " cameras = EXCLUDED.cameras, seen_at = EXCLUDED.seen_at",
                rows,
            )
        cursor.execute(
            "DELETE FROM realtime_presence WHERE (process = %s AND NOT user_id = ANY(%s))"
            " OR seen_at < now() - %s * interval '1 second'",
            [process, [row[1] for row in rows], PRESENCE_FORGET],
        )


def forget(process: str) -> None:
    Presence.objects.filter(process=process).delete()


arecord = database_sync_to_async(record)
aforget = database_sync_to_async(forget)


async def publish() -> None:
    """Every PRESENCE_EVERY seconds, this process's watchers; until cancelled, then none.
    The database away: logged, and the next round tries again."""
    process = process_id()
    written = False  # whether this process may have rows to refresh or delete
    try:
        while True:
            watching = open_streams.watching()
            if watching or written:
                try:
                    await arecord(process, watching)
                    written = bool(watching)
                except Exception:  # the database away: the next round tries again
                    written = True
                    logger.warning("could not record who is watching", exc_info=True)
            await asyncio.sleep(PRESENCE_EVERY)
    finally:
        if written:
            await _goodbye(process)


async def _goodbye(process: str) -> None:
    # Best effort: a process that cannot delete its rows leaves them to go stale.
    try:
        await asyncio.wait_for(aforget(process), GOODBYE_TIMEOUT)
    except Exception:
        logger.warning("could not delete this process's presence", exc_info=True)

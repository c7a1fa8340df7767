"""Pruning the event log by age: the replay window is REALTIME_EVENT_RETENTION."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

# Small batches: each DELETE is short, so writers and the listener never wait long.
BATCH = 10_000

PRUNE_BATCH_SQL = """
DELETE FROM realtime_event
WHERE id IN (
    SELECT id FROM realtime_event
    WHERE created_at < now() - make_interval(secs => %s)
    LIMIT %s
)
"""


def prune_events(conn: psycopg.Connection[Any], older_than: timedelta) -> int:
    deleted = 0
    while True:
        count = conn.execute(PRUNE_BATCH_SQL, [older_than.total_seconds(), BATCH]).rowcount
        deleted += count
        if count < BATCH:
            return deleted


async def aprune_events(conn: psycopg.AsyncConnection[Any], older_than: timedelta) -> int:
    deleted = 0
    while True:
        cur = await conn.execute(PRUNE_BATCH_SQL, [older_than.total_seconds(), BATCH])
        deleted += cur.rowcount
        if cur.rowcount < BATCH:
            return deleted

"""Pruning the event log by age: the replay window is REALTIME_EVENT_RETENTION."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import psycopg

from realtime.pipeline.retry import backoff_delay

logger = logging.getLogger(__name__)

# Small batches: each DELETE is short, so writers and the listener never wait long.
BATCH = 10_000
# Between two batches of the listener's pruning: a backlog of millions is pruned in steps.
STEP_PAUSE = 0.05

# A batch, and how far the log is pruned now (sql/010: a client below it is reset).
PRUNE_BATCH_SQL = """
WITH deleted AS (
    DELETE FROM realtime_event
    WHERE id IN (
        SELECT id FROM realtime_event
        WHERE created_at < now() - make_interval(secs => %s)
        LIMIT %s
    )
    RETURNING id
), marked AS (
    INSERT INTO realtime_log_pruned (through)
    SELECT max(id) FROM deleted HAVING count(*) > 0
    ON CONFLICT (only_row) DO UPDATE
    SET through = greatest(realtime_log_pruned.through, EXCLUDED.through)
)
SELECT count(*) FROM deleted
"""


def prune_events(conn: psycopg.Connection[Any], older_than: timedelta) -> int:
    deleted = 0
    while True:
        row = conn.execute(PRUNE_BATCH_SQL, [older_than.total_seconds(), BATCH]).fetchone()
        count = int(row[0]) if row else 0
        deleted += count
        if count < BATCH:
            return deleted


async def aprune_events(
    conn: psycopg.AsyncConnection[Any], older_than: timedelta, pause: float = 0.0
) -> int:
    deleted = 0
    while True:
        cur = await conn.execute(PRUNE_BATCH_SQL, [older_than.total_seconds(), BATCH])
        row = await cur.fetchone()
        count = int(row[0]) if row else 0
        deleted += count
        if count < BATCH:
            return deleted
        await asyncio.sleep(pause)


async def prune_periodically(conninfo: str, older_than: timedelta, interval: float) -> None:
    """The active listener's side task: prune now and every `interval`, on a connection of
    its own, so that forwarding and heartbeats go on however long a backlog takes."""
    attempt = 0
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                while True:
                    deleted = await aprune_events(conn, older_than, STEP_PAUSE)
                    attempt = 0
                    if deleted:
                        logger.info(
                            "pruned the event log",
                            extra={"log_rows": deleted, "older_than": str(older_than)},
                        )
                    await asyncio.sleep(interval)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = backoff_delay(attempt, 1.0, 60.0)
            attempt += 1
            logger.warning(
                "pruning the event log failed, trying again",
                extra={"error": repr(exc), "retry_in": round(delay, 2)},
            )
            await asyncio.sleep(delay)

"""Reading the event log: one change per row of the result, whichever log row holds it.

A log row of realtime_event is one change, or (trigger v3, sql/005) the changes of a big
statement packed together. The SQL functions realtime_changes() and
realtime_changes_after() unpack them. Every reader goes through the queries here: the
functions on Django's connection (servers), and the async ones on the listener's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg
from django.db import connection

from realtime.pipeline.changes import ChangeEvent, violation_state
from realtime.pipeline.positions import Position, after_change

# Whether a shelf covers a change's violation (sql/008's realtime_shelves_covering, the
# rule every reader uses). The change's JSON is parsed once (json_to_record), and not at
# all while no shelf was ever made (a one-time filter of the query).
SHELF_LATERAL = """
LEFT JOIN LATERAL (
    SELECT true AS shelved
    FROM json_to_record(c.data) AS r (camera_id text, violation_date text, violation_time text),
         realtime_shelves_covering(
             CASE WHEN r.camera_id ~ '^[0-9]{1,18}$' THEN r.camera_id::bigint END,
             CASE WHEN r.violation_date ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
                   AND r.violation_time ~ '^[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,6})?$'
                  THEN r.violation_date::date + r.violation_time::time END
         ) covering
    WHERE c.op <> 'DELETE' AND EXISTS (SELECT 1 FROM realtime_shelf)
    LIMIT 1
) sh ON true"""
SHELF_COLUMN = ",\n       sh.shelved IS NOT NULL"


# Changes of a source (a call of realtime_changes() or realtime_changes_after()), in id
# order, each with when its log row was written, for an UPDATE or a STATE event the
# violation's state as the product has it now (realtime_acknowledgement), whether a
# shelf covers the violation, the row as it was before an UPDATE moved it to another
# camera (sql/009), and the oldest transaction running when it was read (the horizon of
# a position, realtime.pipeline.positions). See logged().
def _with_state(source: str) -> str:
    return f"""
SELECT c.id, c.table_name, c.op, c.data, extract(epoch FROM c.created_at)::float8,
       s.acknowledged_by, s.acknowledged_at, c.xid::text,
       s.note, s.noted_by, s.noted_at{SHELF_COLUMN},
       c.old_data, pg_snapshot_xmin(pg_current_snapshot())::text
FROM {source} c
LEFT JOIN LATERAL (
    SELECT a.acknowledged_by, a.acknowledged_at, a.note, a.noted_by, a.noted_at
    FROM realtime_acknowledgement a
    WHERE c.op IN ('UPDATE', 'STATE') AND a.table_name = c.table_name
      AND a.violation_id = CASE WHEN c.data->>'id' ~ '^[0-9]{{1,18}}$'
                                THEN (c.data->>'id')::bigint END
) s ON true{SHELF_LATERAL}
ORDER BY c.id
"""


# The first %s changes above id %s; then a list of tables and a camera id (text) to keep
# only those, or NULL for all.
AFTER_SQL = _with_state("realtime_changes_after(%s, %s, %s, %s)")

# Changes by id: the bounds, then the ids. Only the statement rows holding one of the ids
# are unpacked.
BY_ID_SQL = _with_state("realtime_changes(%s, %s, %s::bigint[])")

# A statement's changes in (after id, up to id], written by its transaction.
STATEMENT_SQL = _with_state("(SELECT * FROM realtime_changes(%s, %s) WHERE xid = %s::xid8)")

# The lowest and highest change id of the log rows a transaction wrote that overlap
# [first id, last id] (NULLs when there are none).
STATEMENT_BOUNDS_SQL = """
SELECT min(coalesce(first_id, id)), max(id)
FROM realtime_event
WHERE xid = %(xid)s::xid8 AND id >= %(first)s AND coalesce(first_id, id) <= %(last)s
"""

# The ids of every change written by a transaction at or above %s, in order.
IDS_SINCE_XID_SQL = """
ARRAY(SELECT c.id
      FROM realtime_event e, unnest(coalesce(e.ids, ARRAY[e.id])) AS c (id)
      WHERE e.xid >= %s::xid8 ORDER BY c.id)
"""

# The ids in (%(after)s, %(up_to)s], without unpacking the JSON of statement rows.
IDS_BETWEEN_SQL = """
SELECT e.id FROM realtime_event e WHERE e.ids IS NULL AND e.id > %(after)s AND e.id <= %(up_to)s
UNION ALL
SELECT c.id FROM realtime_event e, unnest(e.ids) AS c (id)
WHERE e.ids IS NOT NULL AND e.id > %(after)s AND e.first_id <= %(up_to)s
  AND c.id > %(after)s AND c.id <= %(up_to)s
ORDER BY 1
"""

NEWEST_ID_SQL = "SELECT coalesce(max(id), 0) FROM realtime_event"

# The lowest change id still in the log (NULL when it is empty; a statement row starts
# below its own id), and the newest.
BOUNDS_SQL = f"""
SELECT least(
    (SELECT min(id) FROM realtime_event WHERE ids IS NULL),
    (SELECT min(first_id) FROM realtime_event WHERE ids IS NOT NULL)
), ({NEWEST_ID_SQL})
"""


class Logged(NamedTuple):
    """A change read from the log, when its log row was written (epoch seconds), by which
    transaction, and the oldest transaction still running when it was read."""

    change: ChangeEvent
    written_at: float | None
    xid: str = ""
    horizon: str = ""


def logged(row: Sequence[Any]) -> Logged:
    """A row of the queries above."""
    change: ChangeEvent = {"id": row[0], "table": row[1], "op": row[2], "data": row[3]}
    if row[2] in ("UPDATE", "STATE"):
        change["state"] = violation_state(row[5], row[6], row[8], row[9], row[10])
    change["shelved"] = bool(row[11])
    if row[12] is not None:
        change["old"] = row[12]
    return Logged(change, row[4], row[7], row[13])


def by_id_params(ids: Sequence[int]) -> list[Any]:
    return [min(ids) - 1, max(ids), list(ids)]


def _fetch(query: str, params: list[Any] | dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


def newest_id() -> int:
    return int(_fetch(NEWEST_ID_SQL, [])[0][0])


def bounds() -> tuple[int | None, int]:
    """The oldest change id (None when the log is empty) and the newest (0 then)."""
    oldest, newest = _fetch(BOUNDS_SQL, [])[0]
    return oldest, int(newest)


def changes_after(
    after_id: int, limit: int, tables: list[str] | None = None, camera: int | None = None
) -> list[ChangeEvent]:
    """The first `limit` changes above `after_id`, in id order, of these tables and camera."""
    params = [after_id, limit, tables, None if camera is None else str(camera)]
    return [logged(row).change for row in _fetch(AFTER_SQL, params)]


# What a client at a position lacks (realtime.pipeline.positions), in one statement (one snapshot):
# the changes at or below its id written by transactions at or above its horizon (committed
# late: it may have some of them), then the first %(limit)s above its id. Both of these
# tables and this camera (text), or NULL for all.
REPLAY_SQL = _with_state(
    """(
    SELECT * FROM realtime_changes(
        coalesce((SELECT min(coalesce(e.first_id, e.id)) - 1 FROM realtime_event e
                  WHERE e.xid >= %(horizon)s::xid8), %(after)s),
        %(after)s)
    WHERE xid >= %(horizon)s::xid8
      AND (%(tables)s::text[] IS NULL OR table_name = ANY(%(tables)s::text[]))
      AND (%(camera)s::text IS NULL OR data->>'camera_id' = %(camera)s::text
           OR old_data->>'camera_id' = %(camera)s::text)
    UNION ALL
    SELECT * FROM realtime_changes_after(%(after)s, %(limit)s, %(tables)s, %(camera)s)
)"""
)

POSITION_SQL = f"SELECT ({NEWEST_ID_SQL}), pg_snapshot_xmin(pg_current_snapshot())::text"


@dataclass
class Replay:
    """What a replay read: changes in the order to send them, each with the position a
    client is at once it has handled it (`resume`); where to read on from; and whether
    there may be more above it now (`limit` changes were read)."""

    changes: list[ChangeEvent]
    position: Position
    more: bool
    # When each change's log row was written (epoch seconds; in its transaction, so close to
    # its commit), by change id.
    written_at: dict[int, float] = field(default_factory=dict)


def replay(
    position: Position, limit: int, tables: list[str] | None = None, camera: int | None = None
) -> Replay:
    """What a client at `position` lacks: every change above its id (the first `limit`),
    and those at or below it that committed after its horizon; of these tables and camera."""
    params = {
        "after": position.after,
        "horizon": position.horizon,
        "limit": limit,
        "tables": tables,
        "camera": None if camera is None else str(camera),
    }
    if position.horizon is None:
        rows = _fetch(AFTER_SQL, [position.after, limit, params["tables"], params["camera"]])
    else:
        rows = _fetch(REPLAY_SQL, params)
    if not rows:
        return Replay([], position, False)
    found = [logged(row) for row in rows]
    read_at = found[0].horizon
    changes = []
    newest = position.after
    for item in found:
        change = item.change
        if change["id"] <= position.after:
            # Committed late, below the client's id: its own horizon holds until the
            # late ones are all sent (they come first).
            change["resume"] = after_change(change["id"], position.horizon)
        else:
            change["resume"] = after_change(change["id"], read_at)
            newest = change["id"]
        changes.append(change)
    above = sum(1 for item in found if item.change["id"] > position.after)
    written = {item.change["id"]: item.written_at for item in found if item.written_at}
    return Replay(changes, Position(newest, read_at), above >= limit, written)


# How far the log is pruned (sql/010), and the newest id.
PRUNED_SQL = f"""
SELECT coalesce((SELECT max(through) FROM realtime_log_pruned), 0), ({NEWEST_ID_SQL})
"""


def servable(position: Position) -> bool:
    """Whether the log can say what a client at `position` lacks: not if changes after it
    were pruned, nor if it is ahead of the log (another database's, a restored one's)."""
    pruned_through, newest = _fetch(PRUNED_SQL, [])[0]
    return int(pruned_through) <= position.after <= int(newest)


def current_position() -> Position:
    """Where a client that starts now is: the newest id, and the oldest transaction
    running (read before whatever the client is then shown of the tables)."""
    newest, horizon = _fetch(POSITION_SQL, [])[0]
    return Position(int(newest), str(horizon))


def changes_by_id(ids: Sequence[int]) -> list[ChangeEvent]:
    if not ids:
        return []
    return [logged(row).change for row in _fetch(BY_ID_SQL, by_id_params(ids))]


def change_ids_between(after_id: int, up_to: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(IDS_BETWEEN_SQL, {"after": after_id, "up_to": up_to})
        return [row[0] for row in cursor.fetchall()]


# --- the listener's reads, on its own connection (psycopg, async) --------------------------

# The row of realtime_listener_state the listeners of a database share.
STATE_NAME = "default"


async def log_window(conn: psycopg.AsyncConnection[Any]) -> int:
    """How many changes the listener reads at a time: the most one log row holds
    (realtime_log_window(), sql/007), so a read unpacks each log row it touches about once."""
    cur = await conn.execute("SELECT realtime_log_window()")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


# One read per wake-up: the first %(limit)s changes above the high-water mark, and the
# changes with the ids notifications named at or below it, if their transaction was still
# running at the last scan (committed late; anything older was forwarded by a scan).
WAKE_SQL = _with_state(
    "(SELECT * FROM realtime_changes_after(%(after)s, %(limit)s)"
    " UNION ALL SELECT * FROM realtime_changes(%(low)s, %(high)s, %(wanted)s::bigint[])"
    " WHERE xid >= %(horizon)s::xid8)"
)


# The usual wake-up: no notification named an id below the high-water mark.
NEW_SQL = _with_state("realtime_changes_after(%(after)s, %(limit)s)")


async def read_new(
    conn: psycopg.AsyncConnection[Any],
    after: int,
    wanted: Sequence[int],
    horizon: str,
    limit: int,
) -> list[Logged]:
    """Changes above `after` (the first `limit`), and those of `wanted` (ids <= `after`)
    written by transactions at or above `horizon`."""
    if not wanted:
        cur = await conn.execute(NEW_SQL, {"after": after, "limit": limit})
        return [logged(row) for row in await cur.fetchall()]
    low, high = min(wanted) - 1, max(wanted)
    params = {"after": after, "limit": limit, "low": low, "high": high, "wanted": list(wanted)}
    cur = await conn.execute(WAKE_SQL, {**params, "horizon": horizon})
    return [logged(row) for row in await cur.fetchall()]


async def read_statement(
    conn: psycopg.AsyncConnection[Any], xid: str, first_id: int, last_id: int, window: int
) -> AsyncIterator[list[Logged]]:
    """A statement's changes in id order, a window at a time, within the log rows its
    transaction really wrote: a notice (even a forged one) names no more than that."""
    cur = await conn.execute(STATEMENT_BOUNDS_SQL, {"first": first_id, "last": last_id, "xid": xid})
    bounds = await cur.fetchone()
    if bounds is None or bounds[0] is None:
        return
    after, last = max(bounds[0], first_id) - 1, min(bounds[1], last_id)
    while after < last:
        up_to = min(after + window, last)
        cur = await conn.execute(STATEMENT_SQL, [after, up_to, xid])
        yield [logged(row) for row in await cur.fetchall()]
        after = up_to


async def scan(conn: psycopg.AsyncConnection[Any], scan_from: str) -> tuple[str, list[int], int]:
    """The next horizon, the ids written at or above this one, and the newest id."""
    # One statement, one snapshot: the horizon and the ids are consistent.
    cur = await conn.execute(
        f"SELECT pg_snapshot_xmin(pg_current_snapshot())::text, {IDS_SINCE_XID_SQL},"
        f" ({NEWEST_ID_SQL})",
        [scan_from],
    )
    row = await cur.fetchone()
    assert row is not None
    return row[0], list(row[1]), int(row[2])


async def current_horizon(conn: psycopg.AsyncConnection[Any]) -> str:
    cur = await conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def fetch(conn: psycopg.AsyncConnection[Any], ids: Sequence[int]) -> list[Logged]:
    if not ids:
        return []
    cur = await conn.execute(BY_ID_SQL, by_id_params(ids))
    return [logged(row) for row in await cur.fetchall()]


async def load_scan_from(conn: psycopg.AsyncConnection[Any]) -> str | None:
    cur = await conn.execute(
        "SELECT scan_from::text FROM realtime_listener_state WHERE name = %s", [STATE_NAME]
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def save_scan_from(
    conn: psycopg.AsyncConnection[Any], scan_from: str, holder: str, forwarded_id: int
) -> None:
    await conn.execute(
        """
        INSERT INTO realtime_listener_state (name, scan_from, holder, heartbeat_at, forwarded_id)
        VALUES (%s, %s::xid8, %s, now(), %s)
        ON CONFLICT (name) DO UPDATE
        SET scan_from = EXCLUDED.scan_from, holder = EXCLUDED.holder,
            heartbeat_at = now(), forwarded_id = EXCLUDED.forwarded_id
        """,
        [STATE_NAME, scan_from, holder, forwarded_id],
    )

"""What operators do to violations: acknowledge them, add notes, take an acknowledgement back
for a few minutes (REALTIME_UNDO_SECONDS). Each action is kept with
who and when (OperatorAction, the row's history); the acknowledgement's row changes, and
its trigger (sql/007, realtime_state_v2) tells every screen through the event log."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from realtime.console.rows import ViolationRow
from realtime.models import Acknowledgement, OperatorAction

# Only the first acknowledgement counts: who saw it first, and when.
ACKNOWLEDGE_SQL = """
INSERT INTO realtime_acknowledgement (table_name, violation_id, acknowledged_by, acknowledged_at)
SELECT t, v, %(by)s, %(at)s FROM unnest(%(tables)s::text[], %(ids)s::bigint[]) AS w (t, v)
ON CONFLICT (table_name, violation_id) DO NOTHING
RETURNING table_name, violation_id
"""


def acknowledge(username: str, rows: Iterable[ViolationRow], now: datetime | None = None) -> int:
    """Acknowledges those of `rows` nobody has; returns how many that was."""
    wanted = [row for row in rows if not row.acknowledged]
    now = now or timezone.now()
    return _act(ACKNOWLEDGE_SQL, OperatorAction.ACKNOWLEDGE, username, now, wanted)


def _act(
    sql: str,
    action: str,
    username: str,
    now: datetime,
    rows: list[ViolationRow],
    **params: datetime,
) -> int:
    """Runs `sql` (which returns the (table, id) it changed) over `rows`, and records
    `action` by `username` at `now` for each it changed, in one transaction."""
    if not rows:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                **params,
                "by": username,
                "at": now,
                "tables": [row.kind.table for row in rows],
                "ids": [int(row.id) for row in rows],
            },
        )
        done = cursor.fetchall()
        OperatorAction.objects.bulk_create(
            OperatorAction(
                table_name=table,
                violation_id=pk,
                action=action,
                actor=username,
                at=now,
            )
            for table, pk in done
        )
    return len(done)


def add_note(username: str, row: ViolationRow, text: str) -> None:
    """A note on the violation's acknowledgement (acknowledging it first if nobody has)."""
    now = timezone.now()
    with transaction.atomic():
        acknowledge(username, [row], now)
        Acknowledgement.objects.filter(table_name=row.kind.table, violation_id=row.id).update(
            note=text, noted_by=username, noted_at=now
        )
        OperatorAction.objects.create(
            table_name=row.kind.table,
            violation_id=row.id,
            action=OperatorAction.NOTE,
            actor=username,
            at=now,
            text=text,
        )


# Only one's own, and only while it is recent: an acknowledgement is a record, not a toggle.
UNDO_SQL = """
DELETE FROM realtime_acknowledgement a
USING unnest(%(tables)s::text[], %(ids)s::bigint[]) AS w (t, v)
WHERE a.table_name = w.t AND a.violation_id = w.v
  AND a.acknowledged_by = %(by)s AND a.acknowledged_at >= %(since)s
RETURNING a.table_name, a.violation_id
"""


def undo_window() -> timedelta:
    return timedelta(seconds=settings.REALTIME_UNDO_SECONDS)


def can_undo(username: str, row: ViolationRow, now: datetime | None = None) -> bool:
    """Whether `username` may still take back their acknowledgement of `row`."""
    now = now or timezone.now()
    return (
        row.acknowledged
        and row.acknowledged_by == username
        and row.acknowledged_at is not None
        and row.acknowledged_at >= now - undo_window()
    )


def undo(username: str, rows: Iterable[ViolationRow], now: datetime | None = None) -> int:
    """Takes back `username`'s acknowledgements of `rows` made within the undo window (the
    others stay as they are); returns how many. The violation is unacknowledged again on
    every screen (its trigger logs a STATE event), and the history keeps both."""
    now = now or timezone.now()
    acknowledged = [row for row in rows if row.acknowledged]
    return _act(
        UNDO_SQL, OperatorAction.UNDO, username, now, acknowledged, since=now - undo_window()
    )


def history(row: ViolationRow) -> list[OperatorAction]:
    return list(OperatorAction.objects.filter(table_name=row.kind.table, violation_id=row.id))

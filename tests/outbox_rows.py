"""Outbox rows as the alerts' worker writes them (realtime.alerts.models.Notification), for
the tests of the pages that show them: a message is one row, or several sharing `batch`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from realtime.alerts.models import Contact, Notification

TABLES = {"ppe": "violation_ppedetections", "human": "violation_humandetections"}


def message(
    violations: list[tuple[str, int, int | None]],
    *,
    status: str = Notification.SENT,
    rule: str = "ppe-everywhere",
    step: int = 0,
    contact: str = "safety-team",
    minutes_ago: float = 1,
    batched: bool = True,
    **more: Any,
) -> list[Notification]:
    """One message about `violations` ((kind, id, camera), ...): its rows, the first one's
    id their batch (none when not `batched`: a message not sent yet). Returns the rows."""
    decided = timezone.now() - timedelta(minutes=minutes_ago)
    to = Contact.objects.filter(name=contact).first()
    rows = [
        Notification.objects.create(
            rule_name=rule,
            step=step,
            contact=to,
            contact_name=contact,
            table_name=TABLES[kind],
            violation_id=violation,
            camera_id=camera,
            event_id=1,
            committed_at=decided,
            due_at=decided,
            status=status,
            sent_at=decided if status == Notification.SENT else None,
            **more,
        )
        for kind, violation, camera in violations
    ]
    ids = [row.id for row in rows]
    batch = ids[0] if batched else None
    # decided_at is written by the database's clock (auto_now_add): set it as the test wants.
    Notification.objects.filter(id__in=ids).update(decided_at=decided, batch=batch)
    return list(Notification.objects.filter(id__in=ids).order_by("id"))


def key(rows: list[Notification]) -> int:
    """The message's number, as the page and its Resend URL name it."""
    first = rows[0]
    return first.batch if first.batch is not None else first.id

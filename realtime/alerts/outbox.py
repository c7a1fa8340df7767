"""The outbox's states: what is due is claimed (a lease, so that one worker sends each
message), sent, and then marked sent, retried or failed.

A message is the rows one contact gets at once: a rule's step for one violation, or, with
`consolidate_seconds`, for every violation of the window. Its `batch` (the first row's id)
is fixed when it is first claimed, so a retry, or a worker that takes over after another
died while sending, sends the same message with the same id (the receiver's
Idempotency-Key, the e-mail's Message-ID): nothing is sent twice that the receiver
cannot tell apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from realtime import metrics
from realtime.alerts.models import Contact, Notification
from realtime.alerts.rules import RuleView

# A worker holds what it claimed this long; one that died is taken over after it.
LEASE = timedelta(seconds=60)
CLAIM_LIMIT = 500
# Retries wait 2, 4, 8, ... seconds, at most this long.
BACKOFF_MAX = 30.0

ACKNOWLEDGED = "acknowledged"
# Before a message is sent (or sent again): its violation acknowledged since cancels it,
# and ends its escalation.
CANCEL_ACKNOWLEDGED_SQL = """
UPDATE realtime_notification n
   SET status = 'cancelled', cancelled_because = %s, lease_until = NULL
  FROM realtime_acknowledgement a
 WHERE a.table_name = n.table_name AND a.violation_id = n.violation_id
   AND (n.status = 'pending' OR (n.status = 'sending' AND n.lease_until < now()))
"""


@dataclass
class Message:
    batch: int
    rule_id: int | None
    rule_name: str
    step: int
    contact_name: str
    url: str
    rows: list[tuple[str, int]] = field(default_factory=list)  # (table, violation id)
    first_decided: datetime | None = None
    attempts: int = 1
    retry_from: datetime | None = None
    first_committed: datetime | None = None


def cancel_acknowledged() -> int:
    with connection.cursor() as cursor:
        cursor.execute(CANCEL_ACKNOWLEDGED_SQL, [ACKNOWLEDGED])
        cancelled = int(cursor.rowcount)
    if cancelled:
        metrics.ALERTS_CANCELLED.labels(ACKNOWLEDGED).inc(cancelled)
    return cancelled


class Due(NamedTuple):
    id: int
    batch: int | None
    rule_id: int | None
    rule_name: str
    step: int
    contact_id: int | None
    contact_name: str
    table_name: str
    violation_id: int
    decided_at: datetime
    attempts: int
    retry_from: datetime | None
    committed_at: datetime


def claim(rules: dict[int, RuleView], now: datetime | None = None) -> list[Message]:
    """The messages due now, leased to this worker (rows another worker holds are skipped).
    A consolidating rule's rows wait until its window, from the first of them, is over."""
    now = now or timezone.now()
    due = (
        Q(status=Notification.PENDING, due_at__lte=now)
        & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    ) | Q(status=Notification.SENDING, lease_until__lt=now)
    with transaction.atomic():
        rows = [
            Due(*values)
            for values in Notification.objects.select_for_update(skip_locked=True)
            .filter(due)
            .order_by("id")
            .values_list(*Due._fields)[:CLAIM_LIMIT]
        ]
        groups: dict[tuple[object, ...], list[Due]] = {}
        for row in rows:
            groups.setdefault(_message_of(row, rules), []).append(row)
        urls = dict(
            Contact.objects.filter(pk__in={r.contact_id for r in rows}).values_list("pk", "url")
        )
        messages = []
        for key, members in groups.items():
            first = members[0]
            rule = rules.get(first.rule_id) if first.rule_id is not None else None
            window = rule.consolidate_seconds if rule is not None else 0
            oldest = min(m.decided_at for m in members)
            if key[0] == "new" and window and oldest + timedelta(seconds=window) > now:
                continue  # the window is still open
            ids = [m.id for m in members]
            batch = first.batch or min(ids)
            Notification.objects.filter(pk__in=ids).update(
                status=Notification.SENDING,
                batch=batch,
                attempts=F("attempts") + 1,
                lease_until=now + LEASE,
            )
            messages.append(
                Message(
                    batch=batch,
                    rule_id=first.rule_id,
                    rule_name=first.rule_name,
                    step=first.step,
                    contact_name=first.contact_name,
                    url=urls.get(first.contact_id, "") if first.contact_id is not None else "",
                    rows=[(m.table_name, m.violation_id) for m in members],
                    first_decided=oldest,
                    attempts=first.attempts + 1,
                    retry_from=first.retry_from or oldest,
                    first_committed=min(m.committed_at for m in members),
                )
            )
    return messages


def _message_of(row: Due, rules: dict[int, RuleView]) -> tuple[object, ...]:
    """Which message a row goes in: its batch once it has one; else its rule's step for its
    contact, and, unless the rule consolidates, its violation."""
    if row.batch:
        return ("batch", row.batch)
    rule = rules.get(row.rule_id) if row.rule_id is not None else None
    key: tuple[object, ...] = ("new", row.rule_id, row.step, row.contact_id)
    if rule is None or not rule.consolidate_seconds:
        key += (row.table_name, row.violation_id)
    return key


def finished(message: Message, error: str | None, channel: str) -> str:
    """Records the outcome of sending `message`: sent; or retried later; or, past
    REALTIME_ALERT_RETRY_FOR since it was decided, failed. The status it now has."""
    now = timezone.now()
    rows = Notification.objects.filter(batch=message.batch, status=Notification.SENDING)
    step = "first" if message.step == 0 else "escalation"
    if error is None:
        rows.update(status=Notification.SENT, sent_at=now, lease_until=None, last_error="")
        metrics.ALERTS_SENT.labels(channel, step).inc()
        if message.step == 0 and message.first_committed is not None and message.attempts == 1:
            metrics.COMMIT_TO_ALERT.observe((now - message.first_committed).total_seconds())
        return Notification.SENT
    given_up = (
        message.retry_from is not None
        and now - message.retry_from >= settings.REALTIME_ALERT_RETRY_FOR
    )
    if given_up:
        rows.update(status=Notification.FAILED, lease_until=None, last_error=error[:2000])
        metrics.ALERTS_FAILED.labels(channel).inc()
        return Notification.FAILED
    wait = min(BACKOFF_MAX, 2.0 ** max(1, message.attempts))
    rows.update(
        status=Notification.PENDING,
        next_attempt_at=now + timedelta(seconds=wait),
        lease_until=None,
        last_error=error[:2000],
    )
    metrics.ALERTS_RETRIED.labels(channel).inc()
    return Notification.PENDING


def oldest_overdue() -> float | None:
    """Seconds since the oldest message still unsent was due (None: nothing is)."""
    now = timezone.now()
    oldest = (
        Notification.objects.filter(
            status__in=[Notification.PENDING, Notification.SENDING], due_at__lte=now
        )
        .order_by("due_at")
        .values_list("due_at", flat=True)
        .first()
    )
    return None if oldest is None else (now - oldest).total_seconds()

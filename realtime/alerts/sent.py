"""What was sent about violations, as operators read it: the outbox's messages (the rows sent
together share `batch`: one message; a row not sent yet is a message of its own), a
violation's messages, and a failed message handed back to the worker.

A reader sees a message with only the violations of the cameras they may see, and not at
all when that is none of them (realtime.access.scopes: a row without a camera only for
those who see every camera). Contacts appear by name only: a contact's URL may hold a secret.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import BigIntegerField, Case, Max, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from realtime.access import scopes
from realtime.access.scopes import Scope
from realtime.alerts.models import Notification
from realtime.console import media
from realtime.console.rows import ViolationRow
from realtime.violations import kinds, queries
from realtime.violations.kinds import Kind, Registry

logger = logging.getLogger(__name__)

VIEW_PERMISSION = "realtime.view_notifications"
PAGE_SIZE = 50
# A consolidated message may cover hundreds of violations: the page lists this many of each
# message's and counts the rest.
SHOWN_VIOLATIONS = 10
# The status of a message whose rows differ: the one that most needs someone's attention.
PRECEDENCE = (
    Notification.FAILED,
    Notification.SENDING,
    Notification.PENDING,
    Notification.SENT,
    Notification.CANCELLED,
)
BIGINT_MAX = 2**63 - 1


class NoSuchMessage(Exception):
    """No message of that number, or none of its violations is the reader's to see."""


class NotFailed(Exception):
    """Only a failed message is sent again; this one's status says why not."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def step_label(step: int) -> str:
    if step == 0:
        return _("first message")
    return _("escalation %(step)s") % {"step": step}


def status_of(statuses: set[str]) -> str:
    return next((status for status in PRECEDENCE if status in statuses), Notification.PENDING)


@dataclass(frozen=True)
class SentViolation:
    """One violation of a message as the page lists it (`kind` None: its table is no
    longer a kind; `image` empty: its row is gone)."""

    table_name: str
    id: int
    camera_id: int | None
    kind: Kind | None
    image: str = ""
    image_href: str = ""


@dataclass
class Message:
    """One message: its outbox rows the reader may see, and their violations."""

    key: int
    rows: list[Notification]
    violations: list[SentViolation] = field(default_factory=list)

    @property
    def status(self) -> str:
        return status_of({row.status for row in self.rows})

    def get_status_display(self) -> str:
        return str(dict(Notification.STATUSES)[self.status])

    @property
    def rule_names(self) -> list[str]:
        return sorted({row.rule_name for row in self.rows})

    @property
    def steps(self) -> list[str]:
        return [step_label(step) for step in sorted({row.step for row in self.rows})]

    @property
    def contact_names(self) -> list[str]:
        return sorted({row.contact_name for row in self.rows})

    @property
    def decided_at(self) -> datetime:
        return min(row.decided_at for row in self.rows)

    @property
    def sent_at(self) -> datetime | None:
        return max((row.sent_at for row in self.rows if row.sent_at), default=None)

    @property
    def next_attempt_at(self) -> datetime | None:
        return min((r.next_attempt_at for r in self.rows if r.next_attempt_at), default=None)

    @property
    def attempts(self) -> int:
        return max(row.attempts for row in self.rows)

    @property
    def last_error(self) -> str:
        return next((error_of(row) for row in self.rows if row.last_error), "")

    @property
    def cancelled_because(self) -> str:
        return next((r.cancelled_because for r in self.rows if r.cancelled_because), "")

    @property
    def shown(self) -> list[SentViolation]:
        return self.violations[:SHOWN_VIOLATIONS]

    @property
    def more(self) -> int:
        return max(0, len(self.violations) - SHOWN_VIOLATIONS)

    @property
    def can_resend(self) -> bool:
        return self.status == Notification.FAILED


def error_of(row: Notification) -> str:
    """The row's last error without its contact's URL, should a library have quoted it."""
    error = row.last_error
    url = row.contact.url if row.contact is not None else ""
    return error.replace(url, f"<{row.contact_name}>") if url else error


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    number: int
    has_next: bool


def in_scope(scope: Scope) -> Q:
    """The rows of the scope's cameras (one array parameter, however many cameras)."""
    if scope is None:
        return Q()
    return Q(camera_id__in=RawSQL("SELECT unnest(%s::bigint[])", (sorted(scope),)))


def _rows_of(keys: list[int]) -> Q:
    return Q(batch__in=keys) | Q(batch__isnull=True, id__in=keys)


def page(scope: Scope, number: int = 1) -> Page:
    """Page `number` (from 1) of the messages: the failed first, then the newest."""
    failed = Max(Case(When(status=Notification.FAILED, then=Value(1)), default=Value(0)))
    found = list(
        Notification.objects.filter(in_scope(scope))
        .annotate(message=Coalesce("batch", "id", output_field=BigIntegerField()))
        .values("message")
        .annotate(failed=failed, newest=Max("decided_at"))
        .order_by("-failed", "-newest", "-message")
        .values_list("message", flat=True)[(number - 1) * PAGE_SIZE : number * PAGE_SIZE + 1]
    )
    keys = found[:PAGE_SIZE]
    rows = _visible(scope).filter(_rows_of(keys)).order_by("id")
    grouped: dict[int, list[Notification]] = defaultdict(list)
    for row in rows:
        grouped[row.batch if row.batch is not None else row.id].append(row)
    messages = [Message(key, grouped[key]) for key in keys if grouped[key]]
    _add_violations(messages, scope)
    return Page(messages, number, len(found) > PAGE_SIZE)


def _visible(scope: Scope) -> QuerySet[Notification]:
    return Notification.objects.filter(in_scope(scope)).select_related("contact")


def _add_violations(messages: list[Message], scope: Scope) -> None:
    """Each message's violations, with their images read from the kinds' tables (one query
    per kind); a violation is listed once per message however many contacts got it."""
    registry = kinds.registry()
    wanted: dict[str, set[int]] = defaultdict(set)
    for message in messages:
        for row in message.rows:
            wanted[row.table_name].add(row.violation_id)
    found: dict[tuple[str, int], ViolationRow] = {}
    for table, ids in wanted.items():
        kind = registry.by_table.get(table)
        if kind is not None:
            for violation in queries.many(kind, sorted(ids), scope=scope):
                found[(table, int(violation.id))] = violation
    for message in messages:
        seen: dict[tuple[str, int], SentViolation] = {}
        for row in message.rows:
            ref = (row.table_name, row.violation_id)
            if ref not in seen:
                seen[ref] = _violation(registry, row, found.get(ref))
        message.violations = list(seen.values())


def _violation(registry: Registry, row: Notification, found: ViolationRow | None) -> SentViolation:
    kind = registry.by_table.get(row.table_name)
    if found is None:
        return SentViolation(row.table_name, row.violation_id, row.camera_id, kind)
    image = media.row_image(found)
    return SentViolation(
        row.table_name,
        row.violation_id,
        row.camera_id,
        kind,
        found.violation_image,
        image.href if image is not None else "",
    )


def of_violation(user: Any, kind: Kind, violation_id: int) -> list[Notification] | None:
    """A violation's outbox rows, oldest first, for its detail; None for a user who may not
    read them (the detail then has no such section). The caller has checked that the user
    may see the violation."""
    if not user.has_perm(VIEW_PERMISSION):
        return None
    found = Notification.objects.filter(table_name=kind.table, violation_id=violation_id)
    rows = list(found.select_related("contact").order_by("decided_at", "step", "id"))
    for row in rows:
        row.last_error = error_of(row)  # as shown; the rows are never saved from here
    return rows


def resend(key: int, *, scope: Scope, by: str) -> int:
    """Hand failed message `key` back to the worker: its failed rows pending again, from
    their first attempt, as the same batch (so the same Idempotency-Key and Message-ID);
    their last error stays until the next attempt's. The number of rows handed back."""
    if not 0 < key <= BIGINT_MAX:
        raise NoSuchMessage
    with transaction.atomic():
        rows = list(Notification.objects.select_for_update().filter(_rows_of([key])))
        if not any(scopes.covers(scope, row.camera_id) for row in rows):
            raise NoSuchMessage
        status = status_of({row.status for row in rows})
        if status != Notification.FAILED:
            raise NotFailed(status)
        failed = [row.id for row in rows if row.status == Notification.FAILED]
        Notification.objects.filter(id__in=failed).update(
            status=Notification.PENDING,
            attempts=0,
            next_attempt_at=None,
            lease_until=None,
            retry_from=timezone.now(),  # a new period of retries
        )
    logger.info(
        "message handed back to be sent", extra={"batch": key, "rows": len(failed), "by": by}
    )
    return len(failed)

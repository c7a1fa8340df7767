"""What is to be sent, decided from the event log (never from a NOTIFY's word): each new
violation a rule covers becomes outbox rows (realtime.alerts.models.Notification), one per
contact of the rule's first message and of each escalation step, written in the same
transaction that moves the worker's place in the log. A worker that dies at any point
reads the same changes again; the rows' uniqueness makes that a no-op.

Several workers may run: the one that holds the place's row (FOR UPDATE SKIP LOCKED)
decides, the others only send.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from realtime import metrics
from realtime.alerts import presence
from realtime.alerts.models import AlertProgress, Notification
from realtime.alerts.rules import RuleCache, RuleView
from realtime.pipeline import event_log
from realtime.pipeline.changes import ChangeEvent
from realtime.pipeline.positions import Position
from realtime.violations import cameras, kinds

logger = logging.getLogger(__name__)

PROGRESS = "notify"
# Changes read from the log per transaction.
READ_LIMIT = 500

SHELVED = "camera shelved"
COOLDOWN = "cooldown"


def start_position() -> None:
    """The worker's place, made at its first start: from now on (an install does not send
    the messages of every violation it already holds)."""
    if not AlertProgress.objects.filter(name=PROGRESS).exists():
        AlertProgress.objects.get_or_create(
            name=PROGRESS, defaults={"position": str(event_log.current_position())}
        )


def decide(rule_cache: RuleCache) -> tuple[int, bool]:
    """Reads the changes after the worker's place and writes what they call for; how many
    changes it read, and whether there may be more. (0, False) when another worker is
    deciding."""
    start_position()
    # Where the log is now, read before the rules (each read in a snapshot of its own, never
    # half a rule being saved): a rule made since finds its violations on the next round.
    now_at = event_log.current_position()
    rules = rule_cache.get() or rule_cache.refresh()
    with transaction.atomic():
        progress = (
            AlertProgress.objects.select_for_update(skip_locked=True).filter(name=PROGRESS).first()
        )
        if progress is None:
            return 0, False
        position = Position.parse(progress.position)
        if not event_log.servable(position):
            # Pruned past the place (the workers were down longer than the log is kept):
            # what was lost cannot be decided; go on from now, and say so.
            logger.error(
                "alerts: the event log was pruned past the worker's place; skipped to now",
                extra={"from": str(position), "to": str(now_at)},
            )
            metrics.ALERTS_SKIPPED.inc()
            progress.position = str(now_at)
            progress.save(update_fields=["position", "updated_at"])
            return 0, False
        if not rules:
            # Nothing to decide: a rule applies to the violations after it exists.
            progress.position = str(now_at)
            progress.save(update_fields=["position", "updated_at"])
            return 0, False
        registry = kinds.registry()  # sync: read when stale
        read = event_log.replay(position, READ_LIMIT, [kind.table for kind in registry])
        planner = Planner(rules, timezone.now())
        for change in read.changes:
            planner.plan(change, registry, read.written_at.get(change["id"]))
        if planner.rows:
            Notification.objects.bulk_create(planner.rows, ignore_conflicts=True)
        progress.position = str(read.position)
        progress.save(update_fields=["position", "updated_at"])
    return len(read.changes), read.more


class Planner:
    """The outbox rows for a batch of changes, decided at `now`."""

    def __init__(self, rules: list[RuleView], now: datetime) -> None:
        self.rules, self.now = rules, now
        self.rows: list[Notification] = []
        # (rule, camera) -> when its last first message was decided, within this batch.
        self._recent: dict[tuple[int, int], datetime] = {}

    def plan(
        self, change: ChangeEvent, registry: kinds.Registry, written_at: float | None = None
    ) -> None:
        if change["op"] != "INSERT":
            return
        kind = registry.by_table.get(change["table"])
        data = change["data"]
        if kind is None or not isinstance(data, dict) or data.get("id") is None:
            return
        camera = data.get("camera_id")
        camera_id = camera if cameras.is_camera(camera) else None
        committed = self.now
        if written_at is not None:
            committed = min(self.now, datetime.fromtimestamp(written_at, tz=UTC))
        for rule in self.rules:
            if rule.covers(kind.slug, camera_id):
                self._for_rule(rule, change, int(data["id"]), camera_id, committed)

    def _for_rule(
        self,
        rule: RuleView,
        change: ChangeEvent,
        violation_id: int,
        camera: int | None,
        committed: datetime,
    ) -> None:
        def row(step: int, contact: tuple[int, str], due: datetime, why: str = "") -> None:
            self.rows.append(
                Notification(
                    rule_id=rule.id,
                    rule_name=rule.name,
                    step=step,
                    contact_id=contact[0],
                    contact_name=contact[1],
                    table_name=change["table"],
                    violation_id=violation_id,
                    camera_id=camera,
                    event_id=change["id"],
                    committed_at=committed,
                    due_at=due,
                    status=Notification.CANCELLED if why else Notification.PENDING,
                    cancelled_because=why,
                )
            )

        # A shelved camera's violations notify nobody; the cancelled rows say why.
        why = SHELVED if change.get("shelved") else ""
        if not why and self._cooling(rule, camera, change["table"], violation_id):
            why = COOLDOWN
        for contact in rule.contacts:
            row(0, contact, self.now, why)
        if why:
            return
        if rule.cooldown_seconds and camera is not None:
            self._recent[(rule.id, camera)] = self.now
        now_escalate = rule.escalate_when_unwatched and rule.steps and not _watched(camera)
        for step in rule.steps:
            due = self.now + timedelta(seconds=step.after_seconds)
            if now_escalate and step.number == 1:
                due = self.now  # nobody has a live table of this camera open
            for contact in step.contacts:
                row(step.number, contact, due)

    def _cooling(self, rule: RuleView, camera: int | None, table: str, violation: int) -> bool:
        """Whether the rule sent a first message for this camera within its cooldown."""
        if not rule.cooldown_seconds or camera is None:
            return False
        since = self.now - timedelta(seconds=rule.cooldown_seconds)
        if self._recent.get((rule.id, camera), since) > since:
            return True
        return (
            Notification.objects.filter(
                rule_id=rule.id, step=0, camera_id=camera, decided_at__gt=since
            )
            .exclude(status=Notification.CANCELLED)
            .exclude(table_name=table, violation_id=violation)
            .exists()
        )


def _watched(camera: int | None) -> bool:
    return presence.is_watched(camera)

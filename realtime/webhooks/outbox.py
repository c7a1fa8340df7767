"""What each webhook is to receive, decided from the event log, and its delivery.

Deciding: every change after the webhooks' place in the log (realtime_alert_progress,
"webhooks") becomes, for each enabled subscription that covers it, a delivery row: the
change as a stream of the subscription's cameras sees it (realtime.streams.membership: a
row that leaves its cameras is a DELETE of the row as it knew it), in the JSON the
`/events/violations/` stream sends. Rows and the new place are written in one transaction;
a delivery is unique per subscription and change, so a change read again is no second one.

Sending: in order per violation (a change is sent once every earlier one of the same
violation to the same subscription is), each signed as the Standard Webhooks
specification says (`webhook-id`: the change's id, the same on every attempt), retried
with back-off while the receiver fails; a subscription failing for
REALTIME_WEBHOOK_DISABLE_AFTER is disabled with the reason, its deliveries kept.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks import Webhook as Signer

from realtime.access import scopes
from realtime.alerts.models import AlertProgress
from realtime.pipeline import event_log
from realtime.pipeline.bus import change_message
from realtime.pipeline.changes import STATE, ChangeEvent
from realtime.pipeline.positions import Position
from realtime.streams.formats import json_text
from realtime.streams.membership import seen_through
from realtime.violations import kinds
from realtime.webhooks.models import Webhook, WebhookDelivery

logger = logging.getLogger(__name__)

PROGRESS = "webhooks"
READ_LIMIT = 500
# A worker holds what it claimed for LEASE; a round sends for at most half of it and hands
# the rest back, so a lease never runs out under a live worker (only a dead one's does, and
# another takes its deliveries over then).
CLAIM_LIMIT = 50
LEASE = timedelta(seconds=30)
BACKOFF_MAX = 30.0
TIMEOUT = 10.0


@dataclass(frozen=True)
class Subscription:
    id: int
    tables: frozenset[str] | None  # None: every kind
    cameras: scopes.Scope  # None: every camera


def subscriptions() -> list[Subscription]:
    registry = kinds.registry()
    found = []
    for hook in Webhook.objects.filter(enabled=True).prefetch_related("sites"):
        sites = list(hook.sites.all())
        tables = (
            frozenset(registry.by_slug[k].table for k in hook.kinds if k in registry.by_slug)
            if hook.kinds
            else None
        )
        cameras = frozenset(c for site in sites for c in site.cameras) if sites else None
        found.append(Subscription(hook.pk, tables, cameras))
    return found


def hold_place_for(webhook: Webhook) -> None:
    """In the transaction that creates `webhook`: the changes committed after it are its,
    whether or not a worker has run yet. The webhooks' place starts here if it does not
    exist, and moves here if there is no other enabled subscription (none is owed what
    came before; a worker that was down would otherwise send the new one what happened
    before it existed). Beside others, it starts where they are."""
    now_at = str(event_log.current_position())
    progress, created = AlertProgress.objects.select_for_update().get_or_create(
        name=PROGRESS, defaults={"position": now_at}
    )
    if not created and not Webhook.objects.filter(enabled=True).exclude(pk=webhook.pk).exists():
        progress.position = now_at
        progress.save(update_fields=["position", "updated_at"])


def decide() -> bool:
    """Reads the changes after the webhooks' place, writes their deliveries and the new
    place; whether there may be more at once."""
    if not AlertProgress.objects.filter(name=PROGRESS).exists():
        AlertProgress.objects.get_or_create(
            name=PROGRESS, defaults={"position": str(event_log.current_position())}
        )
    now_at = event_log.current_position()
    subscribed = subscriptions()
    with transaction.atomic():
        progress = (
            AlertProgress.objects.select_for_update(skip_locked=True).filter(name=PROGRESS).first()
        )
        if progress is None:
            return False
        position = Position.parse(progress.position)
        if not subscribed or not event_log.servable(position):
            progress.position = str(now_at)  # nothing subscribed (or pruned past): from now
            progress.save(update_fields=["position", "updated_at"])
            return False
        read = event_log.replay(position, READ_LIMIT)
        rows = [row for change in read.changes for row in _deliveries(change, subscribed)]
        WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
        progress.position = str(read.position)
        progress.save(update_fields=["position", "updated_at"])
    return read.more


def _deliveries(change: ChangeEvent, subscribed: list[Subscription]) -> list[WebhookDelivery]:
    message = change_message(change)
    rows = []
    for sub in subscribed:
        if sub.tables is not None and change["table"] not in sub.tables:
            continue
        seen = seen_through(message, scopes.keeper(sub.cameras))
        if seen is None:
            continue
        _, data = json_text(seen)  # what /events/violations/ sends
        frame = json.loads(data)
        op = "acknowledgement" if seen["op"] == STATE else str(seen["op"]).lower()
        payload = {
            "type": f"violation.{op}",
            "timestamp": timezone.now().isoformat(),
            "data": frame,
        }
        # The violation's id (an acknowledgement's is its row_id): the order is per violation.
        row = json.loads(seen["frame"]).get("data")
        violation = row.get("id") if isinstance(row, dict) else None
        rows.append(
            WebhookDelivery(
                webhook_id=sub.id,
                event_id=change["id"],
                event_type=str(payload["type"]),
                table_name=change["table"],
                violation_id=violation if isinstance(violation, int) else None,
                payload=json.dumps(payload, separators=(",", ":")),
            )
        )
    return rows


# The first pending delivery of each violation per subscription (earlier ones sent first).
DUE_SQL = """
SELECT d.id FROM realtime_webhook_delivery d
  JOIN realtime_webhook w ON w.id = d.webhook_id AND w.enabled
 WHERE ((d.status = 'pending' AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= now()))
        OR (d.status = 'sending' AND d.lease_until < now()))
   AND NOT EXISTS (
        SELECT 1 FROM realtime_webhook_delivery e
         WHERE e.webhook_id = d.webhook_id AND e.table_name = d.table_name
           AND e.violation_id IS NOT DISTINCT FROM d.violation_id
           AND e.id < d.id AND e.status IN ('pending', 'sending'))
 ORDER BY d.id
 LIMIT %s
   FOR UPDATE OF d SKIP LOCKED
"""


def claim() -> list[WebhookDelivery]:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(DUE_SQL, [CLAIM_LIMIT])
            ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return []
        WebhookDelivery.objects.filter(pk__in=ids).update(
            status=WebhookDelivery.SENDING, lease_until=timezone.now() + LEASE
        )
        return list(
            WebhookDelivery.objects.filter(pk__in=ids).select_related("webhook").order_by("id")
        )


def send(delivery: WebhookDelivery) -> str | None:
    """POSTs it, signed; None when the receiver answered 2xx, else what went wrong."""
    hook = delivery.webhook
    now = datetime.now(UTC)
    msg_id = str(delivery.event_id)
    signature = Signer(hook.secret).sign(msg_id, now, delivery.payload)
    request = urllib.request.Request(
        hook.url,
        data=delivery.payload.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "safety-violations-webhooks",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            delivery.response_status = answer.status
    except urllib.error.HTTPError as exc:
        delivery.response_status = exc.code
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    return None


def finished(delivery: WebhookDelivery, error: str | None) -> None:
    now = timezone.now()
    hook = delivery.webhook
    if error is None:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.SENT,
            sent_at=now,
            attempts=delivery.attempts + 1,
            lease_until=None,
            last_error="",
            response_status=delivery.response_status,
        )
        if hook.failing_since is not None:
            Webhook.objects.filter(pk=hook.pk).update(failing_since=None)
        return
    attempts = delivery.attempts + 1
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.PENDING,
        attempts=attempts,
        next_attempt_at=now + timedelta(seconds=min(BACKOFF_MAX, 2.0**attempts)),
        lease_until=None,
        last_error=error,
        response_status=delivery.response_status,
    )
    since = hook.failing_since or now
    if hook.failing_since is None:
        Webhook.objects.filter(pk=hook.pk, failing_since__isnull=True).update(failing_since=now)
    if now - since >= settings.REALTIME_WEBHOOK_DISABLE_AFTER:
        Webhook.objects.filter(pk=hook.pk).update(
            enabled=False,
            disabled_reason=f"failing since {since:%Y-%m-%d %H:%M:%S %Z}: {error}"[:1000],
        )


PRUNE_BATCH = 10_000


def prune_sent() -> int:
    """Deletes up to PRUNE_BATCH of the deliveries sent more than
    REALTIME_WEBHOOK_DELIVERIES_KEPT ago (one not sent is owed, and kept); how many. One
    batch at a time, between the worker's sends: a backlog of millions does not hold up
    the alerts."""
    before = timezone.now() - settings.REALTIME_WEBHOOK_DELIVERIES_KEPT
    batch = (
        WebhookDelivery.objects.filter(status=WebhookDelivery.SENT, sent_at__lt=before)
        .order_by("sent_at")
        .values("pk")[:PRUNE_BATCH]
    )
    deleted, _ = WebhookDelivery.objects.filter(pk__in=batch).delete()
    return deleted


def deliver_due() -> int:
    """Sends what is due, in order; how many were tried."""
    claimed = claim()
    failed_hooks: set[int] = set()
    started = time.monotonic()
    for delivery in claimed:
        if time.monotonic() - started > LEASE.total_seconds() / 2:
            failed_hooks.add(delivery.webhook_id)  # handed back below, sent next round
        if delivery.webhook_id in failed_hooks:
            # This round, its receiver already failed: back to pending, tried next time.
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                status=WebhookDelivery.PENDING, lease_until=None
            )
            continue
        error = send(delivery)
        finished(delivery, error)
        if error is not None:
            failed_hooks.add(delivery.webhook_id)
            logger.warning(
                "webhook delivery failed; tried again later",
                extra={"webhook": delivery.webhook_id, "event": delivery.event_id, "error": error},
            )
    return len(claimed)

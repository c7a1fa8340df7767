"""/healthz: open to probes, 200 only when violations can be delivered."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db(transaction=True)


def set_heartbeat(pg, seconds_ago: float, forwarded_id: int | None = None) -> None:
    newest = pg.execute("SELECT coalesce(max(id), 0) FROM realtime_event").fetchone()[0]
    pg.execute(
        "INSERT INTO realtime_listener_state (name, scan_from, holder, heartbeat_at, forwarded_id)"
        " VALUES ('default', pg_current_xact_id(), 'test', now() - make_interval(secs => %s), %s)"
        " ON CONFLICT (name) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at,"
        " forwarded_id = EXCLUDED.forwarded_id",
        [seconds_ago, newest if forwarded_id is None else forwarded_id],
    )


def five_minutes_behind_then_ok(settings: Any, part: str, seconds: str) -> None:
    """/healthz answers 200 "degraded", `part` behind by about five minutes; "ok" once
    REALTIME_ALERT_BACKLOG_LIMIT is ten."""
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body[part]["state"] == "behind", body
    assert 299 < body[part][seconds] < 320
    settings.REALTIME_ALERT_BACKLOG_LIMIT = timedelta(minutes=10)
    assert Client().get("/healthz").json()["status"] == "ok"


def test_healthy_when_the_listener_beats(pg) -> None:
    set_heartbeat(pg, 1)
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == {"ok": True}
    assert body["listener"]["state"] == "active" and body["listener"]["lag_seconds"] == 0.0
    assert 0 <= body["notify_queue_usage"] < 1
    assert "redis" not in body
    assert "holder" not in str(body) and "password" not in str(body)


def test_unhealthy_when_the_listener_is_silent(pg) -> None:
    set_heartbeat(pg, 3600)
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["listener"]["state"] == "down"


def test_lag_counts_from_the_oldest_event_not_forwarded(pg) -> None:
    from tests.helpers import insert_violation

    set_heartbeat(pg, 1)
    forwarded = pg.execute("SELECT coalesce(max(id), 0) FROM realtime_event").fetchone()[0]
    insert_violation(pg)
    pg.execute(
        "UPDATE realtime_event SET created_at = now() - interval '30 seconds' WHERE id > %s",
        [forwarded],
    )
    set_heartbeat(pg, 1, forwarded_id=forwarded)
    lag = Client().get("/healthz").json()["listener"]["lag_seconds"]
    assert 29 <= lag < 40


def test_unreachable_redis_is_unhealthy(pg) -> None:
    set_heartbeat(pg, 1)
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["redis"] == {"ok": False}


@pytest.mark.e2e
def test_a_running_stack_is_healthy(database_url, tmp_path) -> None:
    from django.conf import settings

    from tests.helpers import Stack

    stack = Stack.start("redis", database_url, settings.TEST_REDIS_URL, tmp_path)
    try:
        body = httpx.get(f"{stack.http}/healthz").json()
        assert body["status"] == "ok", body
        assert body["redis"] == {"ok": True}
        assert body["listener"]["state"] == "active"
        assert body["listener"]["standby"] == 0
        # Daphne's internals that bound slow clients were found where they were expected.
        assert body["server_internals"]["pending_bytes"] == "ok"
    finally:
        stack.stop()


def test_an_alert_backlog_makes_it_degraded_not_down(pg, settings) -> None:
    """Messages due for longer than REALTIME_ALERT_BACKLOG_LIMIT and still unsent: the
    screens work (200), but no sender keeps up; a cancelled or sent one does not count."""

    from django.utils import timezone

    from realtime.models import Notification

    set_heartbeat(pg, 1)
    due = timezone.now() - timedelta(minutes=5)
    row = {"rule_name": "r", "contact_name": "c", "table_name": "violation_ppedetections"}
    Notification.objects.create(
        **row, violation_id=1, event_id=1, committed_at=due, due_at=due, status="sent"
    )
    assert Client().get("/healthz").json()["alerts"] == {
        "oldest_overdue_seconds": None,
        "state": "ok",
    }
    Notification.objects.create(**row, violation_id=2, event_id=2, committed_at=due, due_at=due)
    five_minutes_behind_then_ok(settings, "alerts", "oldest_overdue_seconds")


def test_webhook_deliveries_owed_too_long_or_a_failing_webhook_make_it_degraded(
    pg, settings
) -> None:
    """A program's webhook that nothing delivers (no `notify`, or its receiver down): the
    screens work (200), but someone should look."""

    from django.utils import timezone

    from realtime.models import Webhook, WebhookDelivery

    set_heartbeat(pg, 1)
    assert Client().get("/healthz").json()["webhooks"] == {
        "oldest_owed_seconds": None,
        "failing": 0,
        "state": "ok",
    }
    hook = Webhook.objects.create(url="http://127.0.0.1:9/hook-secret-path", secret="whsec_x")
    row = {"event_type": "violation.insert", "table_name": "violation_ppedetections"}
    sent = WebhookDelivery.objects.create(webhook=hook, event_id=1, **row, status="sent")
    owed = WebhookDelivery.objects.create(webhook=hook, event_id=2, **row)
    five_minutes_ago = timezone.now() - timedelta(minutes=5)
    WebhookDelivery.objects.filter(pk__in=[sent.pk, owed.pk]).update(created_at=five_minutes_ago)
    five_minutes_behind_then_ok(settings, "webhooks", "oldest_owed_seconds")
    # Disabled after failing for REALTIME_WEBHOOK_DISABLE_AFTER: its deliveries wait.
    Webhook.objects.filter(pk=hook.pk).update(enabled=False, disabled_reason="failing: 503")
    body = Client().get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["webhooks"] == {"oldest_owed_seconds": None, "failing": 1, "state": "failing"}
    # Anyone may ask /healthz: it counts, and names no receiver nor why it fails.
    assert "hook-secret-path" not in str(body) and "503" not in str(body)
    # Disabled by hand: nothing to look at.
    Webhook.objects.filter(pk=hook.pk).update(disabled_reason="")
    assert Client().get("/healthz").json()["status"] == "ok"


def test_an_mqtt_publisher_behind_or_never_started_makes_it_degraded(pg, settings) -> None:

    from realtime.models import AlertProgress
    from realtime.pipeline.positions import Position
    from tests.helpers import insert_violation

    set_heartbeat(pg, 1)
    assert "mqtt" not in Client().get("/healthz").json()  # no broker configured
    settings.REALTIME_MQTT_URL = "mqtt://127.0.0.1:1883/plant"
    body = Client().get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["mqtt"] == {"behind_seconds": None, "state": "not started"}
    published = pg.execute("SELECT coalesce(max(id), 0) FROM realtime_event").fetchone()[0]
    AlertProgress.objects.create(name="mqtt", position=str(Position(published)))
    assert Client().get("/healthz").json()["mqtt"] == {"behind_seconds": 0.0, "state": "ok"}
    insert_violation(pg)
    insert_violation(pg)
    pg.execute(
        "UPDATE realtime_event SET created_at = now() - interval '5 minutes' WHERE id > %s",
        [published],
    )
    five_minutes_behind_then_ok(settings, "mqtt", "behind_seconds")

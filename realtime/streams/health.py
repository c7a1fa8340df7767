"""/healthz: can this deployment deliver violations right now?"""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection

from realtime.alerts import outbox
from realtime.alerts.models import AlertProgress
from realtime.integrations.mqtt import PROGRESS as MQTT_PROGRESS
from realtime.pipeline.event_log import STATE_NAME
from realtime.pipeline.listener import LISTENER_APPLICATION_NAME
from realtime.pipeline.positions import Position
from realtime.streams import server_internals

# The active listener writes a heartbeat every catch-up (5 s); older than this, it is down.
LISTENER_STALE_AFTER = 20.0

LISTENER_SQL = """
SELECT extract(epoch FROM now() - s.heartbeat_at),
       s.heartbeat_at,
       (SELECT extract(epoch FROM now() - min(e.created_at))
          FROM realtime_event e WHERE e.id > s.forwarded_id),
       (SELECT count(*) FROM pg_stat_activity
         WHERE application_name = %s AND datname = current_database())
FROM realtime_listener_state s WHERE s.name = %s
"""


def check() -> tuple[bool, dict[str, Any]]:
    report: dict[str, Any] = {"database": {"ok": False}, "listener": {"state": "down"}}
    try:
        report["notify_queue_usage"], report["listener"] = database_report()
        report["database"]["ok"] = True
    except DatabaseError:
        pass
    if settings.REDIS_URL:
        report["redis"] = {"ok": _redis_ok(settings.REDIS_URL)}
    # The private-API probes of this process (realtime.streams.server_internals): a "failed" one is
    # a safeguard that is off, such as the bound on clients that stopped reading.
    report["server_internals"] = dict(server_internals.probes)
    healthy = (
        report["database"]["ok"]
        and report["listener"]["state"] == "active"
        and report.get("redis", {"ok": True})["ok"]
    )
    status = "ok" if healthy else "fail"
    if report["database"]["ok"]:
        # Alerts behind: the screens still work (200), but someone should look.
        overdue = outbox.oldest_overdue()
        late = (
            overdue is not None and overdue > settings.REALTIME_ALERT_BACKLOG_LIMIT.total_seconds()
        )
        report["alerts"] = {
            "oldest_overdue_seconds": None if overdue is None else round(overdue, 1),
            "state": "behind" if late else "ok",
        }
        try:
            report.update(integrations_report())
        except DatabaseError:
            pass
        states = [
            report[name]["state"] for name in ("alerts", "webhooks", "mqtt") if name in report
        ]
        if healthy and any(state != "ok" for state in states):
            status = "degraded"
    return healthy, {"status": status, **report}


def integrations_report() -> dict[str, Any]:
    """What the programs get: webhook deliveries owed (by enabled webhooks) and webhooks
    disabled for failing; with a broker configured, how far behind the MQTT publisher's
    place is (the first change after it, by id: the log may be long behind it)."""
    limit = settings.REALTIME_ALERT_BACKLOG_LIMIT.total_seconds()
    with connection.cursor() as cursor:
        cursor.execute(WEBHOOKS_SQL)
        owed, failing = cursor.fetchone()
    state = "failing" if failing else "behind" if owed is not None and owed > limit else "ok"
    report: dict[str, Any] = {
        "webhooks": {
            "oldest_owed_seconds": None if owed is None else round(float(owed), 1),
            "failing": int(failing),
            "state": state,
        }
    }
    if settings.REALTIME_MQTT_URL:
        place = AlertProgress.objects.filter(name=MQTT_PROGRESS).values_list("position", flat=True)
        if not place:
            report["mqtt"] = {"behind_seconds": None, "state": "not started"}
        else:
            with connection.cursor() as cursor:
                cursor.execute(MQTT_SQL, [Position.parse(place[0]).after])
                row = cursor.fetchone()
            behind = 0.0 if row is None else max(0.0, float(row[0]))
            report["mqtt"] = {
                "behind_seconds": round(behind, 1),
                "state": "behind" if behind > limit else "ok",
            }
    return report


WEBHOOKS_SQL = """
SELECT (SELECT extract(epoch FROM now() - min(d.created_at))
          FROM realtime_webhook_delivery d JOIN realtime_webhook w ON w.id = d.webhook_id
         WHERE w.enabled AND d.status IN ('pending', 'sending')),
       (SELECT count(*) FROM realtime_webhook WHERE NOT enabled AND disabled_reason <> '')
"""

MQTT_SQL = """
SELECT extract(epoch FROM now() - created_at) FROM realtime_event
 WHERE id > %s ORDER BY id LIMIT 1
"""


def database_report() -> tuple[float, dict[str, Any]]:
    """The NOTIFY queue's usage and the listener's state, as the database knows them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notification_queue_usage()")
        usage = float(cursor.fetchone()[0])
        cursor.execute(LISTENER_SQL, [LISTENER_APPLICATION_NAME, STATE_NAME])
        row = cursor.fetchone()
    if row is None:
        return usage, {"state": "down"}
    age, heartbeat_at, lag, connected = row
    alive = float(age) < LISTENER_STALE_AFTER
    return usage, {
        "state": "active" if alive else "down",
        "last_heartbeat": heartbeat_at.isoformat(),
        "heartbeat_age_seconds": round(float(age), 3),
        # Committed events it had not yet forwarded at its last heartbeat, oldest first.
        "lag_seconds": round(float(lag), 3) if lag is not None else 0.0,
        "standby": max(0, int(connected) - (1 if alive else 0)),
    }


def _redis_ok(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()

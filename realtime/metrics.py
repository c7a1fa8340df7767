"""Prometheus metrics, multiprocess-safe (set PROMETHEUS_MULTIPROC_DIR in every process).

With several processes (Daphne workers, listen_notify) each writes its samples under
PROMETHEUS_MULTIPROC_DIR and /metrics of any Daphne adds them up.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

EVENTS_FORWARDED = Counter(
    "realtime_events_forwarded", "Changes forwarded by the listener.", ["table", "op"]
)
COMMIT_TO_FORWARD = Histogram(
    "realtime_commit_to_forward_seconds",
    "From the row's write in PostgreSQL to the listener handing it to the channel layer.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CONNECTED_CLIENTS = Gauge(
    "realtime_connected_clients",
    "Open WebSocket and SSE connections.",
    ["transport"],
    multiprocess_mode="livesum",
)
LISTENER_RECONNECTS = Counter("realtime_listener_reconnects", "Listener reconnections.")
LISTENER_FAILOVERS = Counter(
    "realtime_listener_failovers", "Times a standby listener took over forwarding."
)
LOG_READS = Counter(
    "realtime_pushpin_log_reads",
    "Reads of the log for Pushpin's requests: made, or shared with an identical one in flight.",
    ["outcome"],
)
EVENTS_REPLAYED = Counter(
    "realtime_events_replayed",
    "Events delivered from the event log instead of live.",
    ["source"],
)

STREAMS_REFUSED = Counter(
    "realtime_streams_refused",
    "WebSocket and SSE streams refused (per_user_cap: REALTIME_MAX_STREAMS_PER_USER).",
    ["transport", "reason"],
)
THUMBNAILS_MADE = Counter(
    "realtime_thumbnails_made",
    "Thumbnails made from the detectors' images (once per file version; then read from disk).",
)
IMAGE_PLACEHOLDERS = Counter(
    "realtime_image_placeholders",
    "Requests for a violation's image (size=full) or thumbnail answered with the placeholder:"
    " the file is missing, unreadable, not a picture or outside the media root, or there is"
    " no such violation (each file is also logged once per process).",
    ["size"],
)
STREAMS_CLOSED = Counter(
    "realtime_streams_closed",
    "Streams the server closed (credentials_ended: a token revoked or expired, a user"
    " deactivated).",
    ["reason"],
)
STREAM_RESETS = Counter(
    "realtime_stream_resets",
    "Resume points the event log could not serve (pruned, or ahead of the log): the client"
    " was sent stream-reset.",
    ["transport"],
)
FRAMES_REDUCED = Counter(
    "realtime_frames_reduced",
    "Changes whose JSON text was longer than REALTIME_FRAME_MAX_BYTES, sent in their reduced"
    " form (counted each time one is encoded: forwarded, replayed or healed).",
    ["table"],
)
BUS_MESSAGES_REFUSED = Counter(
    "realtime_bus_messages_refused",
    "Messages on the Redis bus this deployment did not sign, refused by a bridge (unsigned,"
    " forged, expired: outside REALTIME_BUS_MAX_AGE, replayed: a nonce seen before).",
    ["reason"],
)

ALERTS_SENT = Counter(
    "realtime_alerts_sent",
    "Alert messages handed to the SMTP server or the contact's service, by channel (email,"
    " apprise) and step (first, escalation).",
    ["channel", "step"],
)
ALERTS_RETRIED = Counter(
    "realtime_alerts_retried", "Alert messages that failed and will be tried again.", ["channel"]
)
ALERTS_FAILED = Counter(
    "realtime_alerts_failed",
    "Alert messages given up after REALTIME_ALERT_RETRY_FOR (listed first on /notifications/).",
    ["channel"],
)
ALERTS_CANCELLED = Counter(
    "realtime_alerts_cancelled",
    "Outbox rows not sent: acknowledged before their time, a shelved camera, a cooldown.",
    ["reason"],
)
MQTT_PUBLISHED = Counter(
    "realtime_mqtt_published",
    "Changes sent to the MQTT broker (a repeat after an outage counts again).",
)
ALERTS_SKIPPED = Counter(
    "realtime_alerts_skipped",
    "Times the alerts' worker found the event log pruned past its place and went on from now.",
)
COMMIT_TO_ALERT = Histogram(
    "realtime_commit_to_alert_seconds",
    "From the violation's write in PostgreSQL (its log row, in the detector's transaction) to"
    " its first message's hand-over to the SMTP server or the contact's service (a"
    " consolidated message: from its window's first violation).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class NotifyQueueCollector(Collector):
    """pg_notification_queue_usage(), read when scraped."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from django.db import DatabaseError, connection

        family = GaugeMetricFamily(
            "realtime_notify_queue_usage", "Fraction of PostgreSQL's NOTIFY queue in use."
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notification_queue_usage()")
                family.add_metric([], float(cursor.fetchone()[0]))
        except DatabaseError:
            family.add_metric([], float("nan"))
        yield family


def exposition() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    queue = CollectorRegistry()
    queue.register(NotifyQueueCollector())
    return generate_latest(registry) + generate_latest(queue)

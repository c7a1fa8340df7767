"""The plant's MQTT broker hears every change: `manage.py publish_mqtt` (supervised beside
listen_notify), or a thread of the server in make run's one process, when
REALTIME_MQTT_URL is set (docs/how-to/mqtt.md).

Published from the event log, never from a NOTIFY's word (a notification only wakes the
publisher up): each violation change to `<prefix>/violations/<kind>/<camera_id>`, each
acknowledgement or note (a STATE event) to `<prefix>/state/<kind>/<id>`, QoS 1, as the
WebSocket carries them, each as soon as it is read (the broker's acknowledgements are
counted as they come). Its place in the log (realtime_alert_progress, name "mqtt") moves
only once the broker acknowledged (PUBACK) every message up to it: a broker outage or a
publisher restart loses nothing, and sends again, in order, what was not acknowledged (a
subscriber may see a change twice, and drops it by its "id"). Shelved cameras, which are
no change in the log, are retained per camera (realtime.integrations.mqtt_shelves).

Several may run: the one holding a PostgreSQL advisory lock publishes, the others stand by
(as listen_notify does).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import deque
from typing import Any

import psycopg
from django.db import DatabaseError, connection, connections, transaction
from psycopg import sql

from realtime import metrics
from realtime.alerts.models import AlertProgress
from realtime.integrations.broker import BrokerAddress, BrokerConnection, BrokerGone, parse_url
from realtime.integrations.mqtt_shelves import ShelfMessages
from realtime.pipeline import event_log
from realtime.pipeline.bus import change_message
from realtime.pipeline.changes import NOTIFY_CHANNEL, STATE, ChangeEvent
from realtime.pipeline.database import conninfo_from_django
from realtime.pipeline.positions import Position
from realtime.pipeline.retry import backoff_delay
from realtime.streams.formats import json_text
from realtime.violations import kinds

logger = logging.getLogger(__name__)

PROGRESS = "mqtt"
# pg_advisory_lock key of the publishers of a database ("rt-mqtt1" in ASCII).
LOCK_KEY = int.from_bytes(b"rt-mqtt1", "big")
APPLICATION_NAME = "realtime publish_mqtt"
# Changes read from the log and published at a time.
READ_LIMIT = 500
# How long the broker has to acknowledge a batch before the session counts as broken.
ACK_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
STOP_ACK_TIMEOUT = 2.0
# Messages sent and not yet acknowledged before the publisher waits for the broker.
MAX_UNACKNOWLEDGED = 1000
# Idle, the publisher looks at the log and the broker's session this often without a NOTIFY.
IDLE_SECONDS = 0.5
STANDBY_SECONDS = 1.0
BACKOFF_INITIAL, BACKOFF_MAX = 0.5, 30.0

# (topic, payload, retain)
Message = tuple[str, str, bool]


def outgoing(
    changes: list[ChangeEvent], registry: kinds.Registry, to: BrokerAddress
) -> list[Message]:
    """The messages of these changes, in order: the WebSocket's JSON text of each."""
    messages = []
    for change in changes:
        kind = registry.by_table.get(change["table"])
        slug = kind.slug if kind is not None else change["table"]
        message = change_message(change)
        _, text = json_text(message)
        if change["op"] == STATE:
            topic = to.topic("state", slug, str(change["data"].get("id")))
        else:
            camera = message.get("camera")
            topic = to.topic("violations", slug, "none" if camera is None else str(camera))
        messages.append((topic, text, False))
    return messages


def place() -> Position:
    """The publisher's place, made at its first start: from now on (an install does not
    publish every violation it already holds)."""
    progress, _ = AlertProgress.objects.get_or_create(
        name=PROGRESS, defaults={"position": str(event_log.current_position())}
    )
    return Position.parse(progress.position)


def move_to(position: Position) -> None:
    # Without waiting for the disk: a place lost in a crash of the database only means a
    # repeat, and the next batch is not held up by a flush.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO off")
        AlertProgress.objects.filter(name=PROGRESS).update(position=str(position))


class Publisher:
    def __init__(self, url: str, conninfo: str) -> None:
        self.address = parse_url(url)
        self.conninfo = conninfo
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        # Ids of the last read: a later read may return them again (committed late, see
        # realtime.pipeline.positions), and they were published.
        self._published: set[int] = set()
        # The place as stored, where reading goes on (ahead of it by what is not yet
        # acknowledged), and each batch sent since: where it leads, its message ids.
        self._saved = Position(0)
        self._read_at = Position(0)
        self._pending: deque[tuple[Position, list[int]]] = deque()
        self.shelves = ShelfMessages(self.address)

    def stop(self) -> None:
        self.stopping.set()

    def _where(self) -> dict[str, str]:
        return {"broker": str(self.address), "holder": self.holder}

    def run(self) -> None:
        logger.info("mqtt publisher started", extra=self._where())
        attempt = 0
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as pg:
                    if self._stand_by_until_locked(pg):
                        attempt = 0
                        self._publish_while_locked(pg)
            except (psycopg.Error, DatabaseError, OSError) as exc:
                delay = backoff_delay(attempt, BACKOFF_INITIAL, BACKOFF_MAX)
                attempt += 1
                logger.warning(
                    "mqtt publisher: database connection lost; trying again",
                    extra={"error": repr(exc), "retry_in": round(delay, 2)},
                )
                self.stopping.wait(delay)
            finally:
                connection.close()
        logger.info("mqtt publisher stopped", extra={"holder": self.holder})

    def _stand_by_until_locked(self, pg: psycopg.Connection[Any]) -> bool:
        told = False
        while not self.stopping.is_set():
            row = pg.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()
            if row and row[0]:
                return True
            if not told:
                logger.info("mqtt publisher standing by", extra={"holder": self.holder})
                told = True
            self.stopping.wait(STANDBY_SECONDS)
        return False

    def _publish_while_locked(self, pg: psycopg.Connection[Any]) -> None:
        pg.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
        # Read once while the lock is held (no other publisher moves it); made before
        # `online`: whatever commits once a subscriber sees that is published.
        self._saved = self._servable(place())
        broker: BrokerConnection | None = None
        attempt = 0
        try:
            while not self.stopping.is_set():
                if broker is None or broker.gone:
                    if broker is not None:
                        logger.warning("mqtt broker connection lost", extra=self._where())
                        broker.close()
                    # What was not acknowledged is sent again, in order, on the next session.
                    self._pending.clear()
                    self._read_at, self._published = self._saved, set()
                    broker = self._connect(attempt)
                    attempt = 0 if broker is not None else attempt + 1
                    continue
                try:
                    more = self._round(broker)
                except BrokerGone as exc:
                    logger.warning("mqtt broker connection lost", extra={"error": str(exc)})
                    broker.close()
                    broker = None
                    continue
                if not more:
                    # A NOTIFY, or IDLE_SECONDS: then read the log again (the truth).
                    for _ in pg.notifies(timeout=IDLE_SECONDS, stop_after=1):
                        pass
        finally:
            if broker is not None:
                self._finish(broker)

    def _servable(self, position: Position) -> Position:
        if event_log.servable(position):
            return position
        # Pruned past the place (no publisher ran for longer than the log is kept): what
        # was lost cannot be published; go on from now, and say so.
        now_at = event_log.current_position()
        logger.error(
            "mqtt: the event log was pruned past the publisher's place; skipped to now",
            extra={"from": str(position), "to": str(now_at)},
        )
        move_to(now_at)
        return now_at

    def _connect(self, attempt: int) -> BrokerConnection | None:
        broker = BrokerConnection(self.address)
        try:
            broker.open(CONNECT_TIMEOUT)
        except BrokerGone as exc:
            broker.close()
            delay = backoff_delay(attempt, BACKOFF_INITIAL, BACKOFF_MAX)
            logger.warning(
                "mqtt broker unreachable; trying again",
                extra={"broker": str(self.address), "error": str(exc), "retry_in": round(delay, 2)},
            )
            self.stopping.wait(delay)
            return None
        logger.info("mqtt publisher online", extra=self._where())
        # The broker may have lost what it retained (a restart without persistence).
        self.shelves.new_session()
        return broker

    def _round(self, broker: BrokerConnection) -> bool:
        """Send what follows the place in the log, and move the place over what the broker
        acknowledged; whether there may be more at once."""
        self._settle(broker)
        if sum(len(mids) for _, mids in self._pending) >= MAX_UNACKNOWLEDGED:
            broker.wait_acked(self._pending[0][1], ACK_TIMEOUT)
            self._settle(broker)
        registry = kinds.registry()
        read = event_log.replay(self._read_at, READ_LIMIT, [kind.table for kind in registry])
        after = self._read_at.after
        fresh = [c for c in read.changes if c["id"] > after or c["id"] not in self._published]
        mids = broker.send(outgoing(fresh, registry, self.address)) if fresh else []
        metrics.MQTT_PUBLISHED.inc(len(fresh))
        self._published = {c["id"] for c in read.changes}
        if read.position != self._read_at:
            self._pending.append((read.position, mids))
            self._read_at = read.position
        self._settle(broker)
        shelf_messages, held = self.shelves.due()
        if shelf_messages:
            broker.publish_all(shelf_messages, ACK_TIMEOUT)
        self.shelves.acknowledged(held)
        return read.more

    def _settle(self, broker: BrokerConnection) -> None:
        """Store the place after the batches the broker acknowledged, oldest first."""
        newest = None
        while self._pending and broker.all_acked(self._pending[0][1]):
            newest = self._pending.popleft()[0]
        if newest is not None:
            move_to(newest)
            self._saved = newest

    def _finish(self, broker: BrokerConnection) -> None:
        """A clean end: the place after what the broker acknowledged, then `offline`."""
        try:
            if self._pending and not broker.gone:
                broker.wait_acked(self._pending[-1][1], STOP_ACK_TIMEOUT)
            self._settle(broker)
        except (BrokerGone, DatabaseError):
            pass
        finally:
            broker.close(say_offline=True)


def make_publisher(url: str) -> Publisher:
    conninfo = conninfo_from_django(
        connections["default"].settings_dict, application_name=APPLICATION_NAME
    )
    return Publisher(url, conninfo)


class PublisherThread:
    """The publisher inside the server (make run): a thread with its own database
    connections, stopped with the server."""

    def __init__(self, url: str) -> None:
        self.publisher = make_publisher(url)
        self.thread = threading.Thread(
            target=self.publisher.run, name="mqtt-publisher", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.publisher.stop()
        self.thread.join(timeout)

"""The alerts' worker: `manage.py notify` (beside listen_notify, supervised like it), or a
thread of the server in make run's one process. Each round it decides from the event log
(realtime.alerts.decide), cancels what an acknowledgement made moot, and sends what is due
(realtime.alerts.outbox). Several may run: each message is sent by one.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from django.db import DatabaseError, close_old_connections, connection, connections
from psycopg import sql

from realtime.alerts import delivery, messages, outbox
from realtime.alerts.decide import decide
from realtime.alerts.rules import RuleCache
from realtime.pipeline.changes import NOTIFY_CHANNEL
from realtime.pipeline.database import conninfo_from_django
from realtime.webhooks import outbox as webhooks

logger = logging.getLogger(__name__)

# With nothing to do, the worker waits for the trigger's NOTIFY (a wake-up only: what to do
# is read from the log), at most this long: due escalations and retries, and a NOTIFY the
# trigger skipped (a queue over half full), are found by then.
POLL_SECONDS = 1.0
# The channel's connection, once lost, is made again after this long.
RELISTEN_SECONDS = 2.0
# After a database error, before trying again.
RETRY_SECONDS = 2.0
# Sent webhook deliveries past REALTIME_WEBHOOK_DELIVERIES_KEPT are pruned this often.
PRUNE_SECONDS = 600.0


class Worker:
    def __init__(self) -> None:
        self.rules = RuleCache()
        self.stopping = threading.Event()
        self.wakeup = Wakeup()
        self.pruned_at = float("-inf")

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        logger.info("alerts worker started")
        try:
            while not self.stopping.is_set():
                try:
                    busy = self.round()
                except DatabaseError:
                    logger.warning("alerts worker: database error; trying again", exc_info=True)
                    connection.close()
                    self.stopping.wait(RETRY_SECONDS)
                    continue
                if not busy and not self.stopping.is_set():
                    self.wakeup.wait(POLL_SECONDS)
        finally:
            connection.close()
            self.wakeup.close()
            logger.info("alerts worker stopped")

    def round(self) -> bool:
        """One pass; whether there may be more to do at once."""
        close_old_connections()
        _, more = decide(self.rules)
        outbox.cancel_acknowledged()
        claimed = outbox.claim(self.rules.by_id())
        for message in claimed:
            self.send(message)
        # The programs' webhooks, from the same log, through their own outbox.
        more_hooks = webhooks.decide()
        delivered = webhooks.deliver_due()
        pruning = time.monotonic() - self.pruned_at >= PRUNE_SECONDS
        pruned = webhooks.prune_sent() if pruning else 0
        if pruned:
            logger.info("pruned sent webhook deliveries", extra={"deliveries": pruned})
        if pruning and pruned < webhooks.PRUNE_BATCH:
            self.pruned_at = time.monotonic()  # none left: again in PRUNE_SECONDS
        return more or bool(claimed) or more_hooks or bool(delivered) or pruned > 0

    def send(self, message: outbox.Message) -> None:
        kind = delivery.channel(message.url)
        started = time.monotonic()
        try:
            subject, body = messages.compose(message)
        except DatabaseError:
            raise
        except Exception as exc:  # a message that cannot be written is recorded, not lost
            logger.exception("alerts: could not write message %s", message.batch)
            outbox.finished(message, f"could not write the message: {exc}", kind)
            return
        error = delivery.deliver(message.url, subject, body, message.batch)
        status = outbox.finished(message, error, kind)
        logger.info(
            "alert message %s",
            status,
            extra={
                "batch": message.batch,
                "rule": message.rule_name,
                "step": message.step,
                "contact": message.contact_name,
                "violations": len(message.rows),
                "seconds": round(time.monotonic() - started, 3),
                "error": error or "",
            },
        )


class Wakeup:
    """LISTEN on the trigger's channel: a change committed wakes the worker at once."""

    def __init__(self) -> None:
        self.conn: psycopg.Connection[Any] | None = None
        self._failed_at = float("-inf")

    def wait(self, timeout: float) -> None:
        """Until a NOTIFY arrives or `timeout` passes."""
        try:
            conn = self._connection()
            if conn is None:
                time.sleep(timeout)
                return
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error:
            logger.warning("alerts worker: its LISTEN connection failed", exc_info=True)
            self.close()
            self._failed_at = time.monotonic()

    def _connection(self) -> psycopg.Connection[Any] | None:
        if self.conn is not None and not self.conn.closed:
            return self.conn
        if time.monotonic() - self._failed_at < RELISTEN_SECONDS:
            return None
        info = conninfo_from_django(
            connections["default"].settings_dict, application_name="realtime-notify"
        )
        self.conn = psycopg.connect(info, autocommit=True)
        self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class WorkerThread:
    """The worker inside the server (make run): a thread of its own, with its own database
    connection, stopped with the server."""

    def __init__(self) -> None:
        self.worker = Worker()
        self.thread = threading.Thread(target=self.worker.run, name="alerts-worker", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.worker.stop()
        self.thread.join(timeout)

"""What runs beside the server in each process: the bridge and, optionally, the listener.

Daphne sends no ASGI lifespan events, so `RuntimeMiddleware` starts them on the first
connection (or on lifespan startup where a server sends it). Never from
`AppConfig.ready()`: that also runs in every management command and test.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import signal
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connections

from realtime.access import scopes
from realtime.access.held_streams import held_streams
from realtime.access.open_streams import open_streams
from realtime.alerts import presence
from realtime.pipeline import bus
from realtime.pipeline.changes import ChangeEvent
from realtime.pipeline.database import conninfo_from_django
from realtime.pipeline.listener import LISTENER_APPLICATION_NAME, LogListener, LogListenerSettings
from realtime.streams import liveness, pushpin, server_internals, sse_fanout
from realtime.streams.bridge import Bridge
from realtime.violations import kinds

if TYPE_CHECKING:
    from realtime.alerts.worker import WorkerThread
    from realtime.integrations.mqtt import PublisherThread

logger = logging.getLogger(__name__)

# A server that cannot reach its channel layer still answers, but says so in the log.
READY_TIMEOUT = 10.0
# From SIGTERM to the exit of listen_notify, whatever holds it (a thread, a C call, a
# database that does not answer a cancel): past it, it prints every thread's stack and
# exits with status 1. A clean stop takes milliseconds (tests/test_failover.py).
LISTENER_EXIT_TIMEOUT = 4.0
# How long a server's runtime waits for its tasks when the server shuts down.
STOP_TIMEOUT = 3.0


async def forward(events: list[ChangeEvent]) -> None:
    # The kinds name a too-long change's page (realtime.pipeline.changes.reduced), and
    # Pushpin's rows.
    known = kinds.cached().by_table
    await kinds.arefresh(next((e["table"] for e in events if e["table"] not in known), None))
    await bus.publish(events)
    if settings.GRIP_URL:
        every_scope = await scopes.every_scope()
        for event in events:
            pushpin.publish_change(event, every_scope)  # never blocks (a publisher thread)


async def after_catch_up(newest_id: int, horizon: str) -> None:
    """The active listener's after each catch-up: the heartbeat, and Pushpin's streams."""
    await bus.publish_heartbeat(newest_id, horizon)
    if settings.GRIP_URL:
        await held_streams.check()


def make_listener() -> LogListener:
    conninfo = conninfo_from_django(
        connections["default"].settings_dict, application_name=LISTENER_APPLICATION_NAME
    )
    return LogListener(
        LogListenerSettings(conninfo=conninfo, retention=settings.REALTIME_EVENT_RETENTION),
        forward=forward,
        heartbeat=after_catch_up,
    )


class ProcessRuntime:
    def __init__(self) -> None:
        self.bridge: Bridge | None = None
        self.listener: LogListener | None = None
        self.alerts: WorkerThread | None = None  # the alerts' worker, when embedded
        self.mqtt: PublisherThread | None = None  # the MQTT publisher, when embedded
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = False

    async def ensure_started(self) -> Bridge:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._start(loop)
        assert self.bridge is not None
        if not self._ready:
            await self._wait_ready()
        return self.bridge

    async def _wait_ready(self) -> None:
        # The first connection waits until changes can reach it, so none is missed.
        assert self.bridge is not None
        waits: list[Coroutine[Any, Any, object]] = [self.bridge.ready.wait()]
        if self.listener is not None:
            waits.append(self.listener.wait_settled())
        try:
            await asyncio.wait_for(asyncio.gather(*waits), READY_TIMEOUT)
        except TimeoutError:
            logger.error("realtime runtime not ready: channel layer or database unreachable")
        self._ready = True

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if settings.REALTIME_GC_THRESHOLDS is not None:
            # Fewer, not shorter, collections: what a delivery allocates mostly dies young,
            # but with Python's thresholds every frame in flight reached the oldest
            # generation, and a full collection walks every object of every connection.
            gc.set_threshold(*settings.REALTIME_GC_THRESHOLDS)
        self._loop = loop
        self._ready = False
        self.bridge = Bridge()
        self._tasks = [
            loop.create_task(self.bridge.run(), name="realtime-bridge"),
            loop.create_task(open_streams.watch(), name="realtime-credentials"),
            loop.create_task(presence.publish(), name="realtime-presence"),
            loop.create_task(liveness.watch.run(), name="realtime-pipeline"),
        ]
        if settings.REALTIME_EMBEDDED_LISTENER:
            self.listener = make_listener()
            self._tasks.append(loop.create_task(self.listener.run(), name="realtime-listener"))
        if settings.REALTIME_EMBEDDED_NOTIFY and self.alerts is None:
            from realtime.alerts.worker import WorkerThread

            self.alerts = WorkerThread()
            self.alerts.start()
        if settings.REALTIME_MQTT_URL and settings.REALTIME_EMBEDDED_MQTT and self.mqtt is None:
            from realtime.integrations.mqtt import PublisherThread

            self.mqtt = PublisherThread(settings.REALTIME_MQTT_URL)
            self.mqtt.start()
        logger.info(
            "realtime runtime started",
            extra={
                "embedded_listener": settings.REALTIME_EMBEDDED_LISTENER,
                "embedded_notify": settings.REALTIME_EMBEDDED_NOTIFY,
                "embedded_mqtt": self.mqtt is not None,
            },
        )

    async def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        if self.alerts is not None:
            await asyncio.to_thread(self.alerts.stop)
            self.alerts = None
        if self.mqtt is not None:
            await asyncio.to_thread(self.mqtt.stop)
            self.mqtt = None
        for task in self._tasks:
            task.cancel()
        pending: set[asyncio.Task[None]] = set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
        if pending:
            logger.warning(
                "realtime runtime stopped without waiting for every task",
                extra={"tasks": sorted(task.get_name() for task in pending)},
            )
        self._tasks = []
        self._loop = None


runtime = ProcessRuntime()
liveness.watch.on_change(sse_fanout.wake_every_stream)


class RuntimeMiddleware:
    """ASGI middleware starting the process runtime before the first connection is served."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await runtime.ensure_started()
        if scope["type"] in ("websocket", "http"):
            scope = dict(
                scope,
                **{
                    server_internals.SCOPE_KEY: server_internals.pending_bytes_reader(send),
                    server_internals.SERVER_SEND_KEY: send,
                },
            )
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await runtime.ensure_started()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def serve_listener() -> None:
    """`manage.py listen_notify`: run one listener until SIGTERM or SIGINT."""
    listener = make_listener()
    task = asyncio.create_task(listener.run(), name="listen_notify")

    def on_signal() -> None:
        if not listener.stopping:
            # Bounded whatever happens next, even in a C call that holds the GIL.
            faulthandler.dump_traceback_later(LISTENER_EXIT_TIMEOUT, exit=True)
        listener.stop()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    logger.info("listen_notify started", extra={"holder": listener.settings.holder})
    try:
        await task
    except asyncio.CancelledError:
        pass
    logger.info("listen_notify stopped", extra={"holder": listener.settings.holder})

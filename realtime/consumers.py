from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from realtime import metrics
from realtime.bridge import Bridge
from realtime.bus import ChangeMessage
from realtime.runtime import runtime

logger = logging.getLogger(__name__)

# Frames waiting for one client; a client this far behind has stopped reading.
OUTBOX_SIZE = 10_000
# "Try again later": a client dropped for falling behind should reconnect.
CLOSE_TOO_SLOW = 1013


class ViolationConsumer(AsyncWebsocketConsumer):
    """/ws/violations/ and /ws/table/: one JSON text frame per change, nothing to receive."""

    # Changes come from this process's bridge, not from a channel-layer channel per socket.
    channel_layer_alias = "realtime-none"

    bridge: Bridge | None = None
    pump: asyncio.Task[None] | None = None
    closing: asyncio.Future[None] | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()  # before accept(): the handshake is refused with HTTP 403
            return
        self.outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=OUTBOX_SIZE)
        self.bridge = await runtime.ensure_started()
        self.bridge.subscribe(self.violation_changed)
        await self.accept()
        metrics.CONNECTED_CLIENTS.labels("websocket").inc()
        self.pump = asyncio.create_task(self._pump())

    async def disconnect(self, code: int) -> None:
        if self.bridge is not None:
            self.bridge.unsubscribe(self.violation_changed)
            metrics.CONNECTED_CLIENTS.labels("websocket").dec()
        if self.pump is not None:
            self.pump.cancel()

    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        """Clients only listen; whatever they send is ignored."""

    def violation_changed(self, message: ChangeMessage) -> None:
        try:
            self.outbox.put_nowait(message["frame"])
        except asyncio.QueueFull:
            logger.warning("dropping a websocket client that stopped reading")
            if self.bridge is not None:
                self.bridge.unsubscribe(self.violation_changed)
            self.closing = asyncio.ensure_future(self.close(code=CLOSE_TOO_SLOW))

    async def _pump(self) -> None:
        while True:
            frame = await self.outbox.get()
            await self.send(text_data=frame)

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from realtime import metrics
from realtime.access import scopes
from realtime.access.auth import TOKEN_ID_ATTR
from realtime.access.open_streams import Holder, TooManyStreams, open_streams
from realtime.pipeline import event_log
from realtime.pipeline.bus import ChangeMessage, change_message
from realtime.pipeline.changes import STATE
from realtime.pipeline.positions import BadPosition, Position, parse_stream_position
from realtime.runtime import runtime
from realtime.streams import server_internals
from realtime.streams.bridge import Bridge
from realtime.streams.membership import seen_through

logger = logging.getLogger(__name__)

# Frames waiting for one client; a client this far behind has stopped reading.
OUTBOX_SIZE = 10_000
# "Try again later": a client dropped for falling behind should reconnect.
CLOSE_TOO_SLOW = 1013
# Its token was revoked or expired, or its user deactivated (like HTTP's 401).
CLOSE_CREDENTIALS_ENDED = 4401
# Its user's sites changed: reconnect (with ?lastEventId=) to get the new scope's changes.
CLOSE_SCOPE_CHANGED = 4409
REPLAY_BATCH = 1000


class ViolationConsumer(AsyncWebsocketConsumer):
    """/ws/violations/ and /ws/table/: one JSON text frame per change, nothing to receive.

    `?lastEventId=` (the `resume` of the last frame a client handled, realtime.pipeline.positions)
    first replays, from the event log, what it lacks: a client that was dropped or went
    away resumes. A position the log cannot serve (its successors pruned, or ahead of the
    log) gets a `stream-reset` frame first, as SSE streams get a `stream-reset` event: the
    client should reload what it shows.
    """

    # Changes come from this process's bridge, not from a channel-layer channel per socket.
    channel_layer_alias = "realtime-none"

    bridge: Bridge | None = None
    pump: asyncio.Task[None] | None = None
    closing: asyncio.Future[None] | None = None
    # True while the pump waits on an empty outbox: a frame may then be written at once.
    idle = False
    write_now: server_internals.WriteText | None = None
    pending: server_internals.PendingBytes | None = None
    stream_handle: int | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()  # before accept(): the handshake is refused with HTTP 403
            return
        resume_after, valid = resume_point(self.scope.get("query_string", b""))
        if not valid:
            await self.close()  # a resume point that is not an event id: refused
            return
        # The cameras this client may see (its user's sites, realtime.access.scopes): what
        # the process read of them in the last seconds, else from the database.
        cameras = scopes.recent(user)
        if isinstance(cameras, scopes.Unknown):
            cameras = await database_sync_to_async(scopes.of_user)(user)
        self.cameras = cameras
        try:
            self.stream_handle = open_streams.open(
                Holder(user.pk, self.scope.get(TOKEN_ID_ATTR)),
                self._credentials_ended,
                "websocket",
                self.cameras,
            )
        except TooManyStreams:
            await self.close()  # refused, as the handshake of any stream it may not open
            return
        self.outbox: asyncio.Queue[tuple[int, str]] = asyncio.Queue(maxsize=OUTBOX_SIZE)
        server_send = self.scope.get(server_internals.SERVER_SEND_KEY)
        self.write_now = server_internals.direct_text_writer(server_send)
        server_internals.send_at_once(server_send)
        self.pending = self.scope.get(server_internals.SCOPE_KEY)
        # Sent by the replay of ?lastEventId=: not again when the bus brings them too.
        self.replayed: set[int] = set()
        self.bridge = await runtime.ensure_started()
        # Subscribe before reading the replay: what arrives meanwhile waits in the outbox.
        self.bridge.subscribe(self.violation_changed, self.cameras)
        await self.accept()
        metrics.CONNECTED_CLIENTS.labels("websocket").inc()
        self.pump = asyncio.create_task(self._pump(resume_after))

    def _credentials_ended(self, scope_changed: bool = False) -> None:
        # The token was revoked or expired, or the user deactivated; or the user's sites
        # changed: the client comes back with ?lastEventId= and its new scope.
        if self.bridge is not None:
            self.bridge.unsubscribe(self.violation_changed)
        code = CLOSE_SCOPE_CHANGED if scope_changed else CLOSE_CREDENTIALS_ENDED
        self.closing = asyncio.ensure_future(self.close(code=code))

    async def disconnect(self, code: int) -> None:
        if self.stream_handle is not None:
            open_streams.close(self.stream_handle)
            self.stream_handle = None
        if self.bridge is not None:
            self.bridge.unsubscribe(self.violation_changed)
            metrics.CONNECTED_CLIENTS.labels("websocket").dec()
        if self.pump is not None:
            self.pump.cancel()

    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        """Clients only listen; whatever they send is ignored."""

    def violation_changed(self, messages: list[ChangeMessage]) -> None:
        # Changes only: an acknowledgement is not a change of the row (the documented
        # client would ping for it).
        messages = [message for message in messages if message["op"] != STATE]
        if not messages:
            return
        if self.idle and self.write_now is not None:
            pending = self.pending
            if pending is None or pending() <= settings.REALTIME_CLIENT_MAX_BUFFER:
                # Nothing waits before these, and the client keeps up: no pump step.
                for message in messages:
                    if message["id"] not in self.replayed:
                        self.write_now(message["frame"])
                return
        try:
            for message in messages:
                self.outbox.put_nowait((message["id"], message["frame"]))
        except asyncio.QueueFull:
            logger.warning("dropping a websocket client that stopped reading")
            if self.bridge is not None:
                self.bridge.unsubscribe(self.violation_changed)
            self.closing = asyncio.ensure_future(self.close(code=CLOSE_TOO_SLOW))

    async def _pump(self, resume_from: Position | None) -> None:
        replayed = self.replayed
        if resume_from is not None:
            reset = await reset_frame(resume_from)
            if reset is not None:
                await self.send(text_data=reset)
                resume_from = None
        while resume_from is not None:
            batch, resume_from = await events_after(resume_from, REPLAY_BATCH, self.cameras)
            for event_id, frame in batch:
                await self.send(text_data=frame)
                replayed.add(event_id)
            metrics.EVENTS_REPLAYED.labels("websocket_resume").inc(len(batch))
        pending = self.pending
        limit = settings.REALTIME_CLIENT_MAX_BUFFER
        # Frames go straight to the server: channels' session middleware, which wraps
        # `self.send` for the whole connection, checks the session on every message
        # (docs/performance.md has its cost), and a frame never changes the session.
        send = self.scope.get(server_internals.SERVER_SEND_KEY, self.base_send)
        while True:
            self.idle = self.outbox.empty()
            event_id, frame = await self.outbox.get()
            self.idle = False
            if event_id in replayed:
                continue
            if not await server_internals.drained(
                pending, limit, settings.REALTIME_CLIENT_STALL_TIMEOUT
            ):
                # Stopped reading: drop it rather than buffer without end; it can come
                # back with ?lastEventId= and get what it missed from the log.
                logger.warning(
                    "dropping a websocket client that stopped reading",
                    extra={"buffered_bytes": pending() if pending else 0, "event_id": event_id},
                )
                await self.close(code=CLOSE_TOO_SLOW)
                return
            await send({"type": "websocket.send", "text": frame})


def resume_point(query_string: bytes) -> tuple[Position | None, bool]:
    """`?lastEventId=`: a frame's `resume`, or an SSE event's id (realtime.pipeline.positions)."""
    values = parse_qs(query_string.decode("latin-1")).get("lastEventId")
    if not values:
        return None, True
    try:
        return parse_stream_position(values[-1])[1], True
    except BadPosition:
        return None, False


class RefusedConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: the handshake is refused (HTTP 403), with no traceback."""

    async def connect(self) -> None:
        await self.close()


@database_sync_to_async
def reset_frame(position: Position) -> str | None:
    """The `stream-reset` frame for a position the log cannot serve (None: it can)."""
    if event_log.servable(position):
        return None
    metrics.STREAM_RESETS.labels("websocket").inc()
    now = event_log.current_position()
    return json.dumps({"type": "stream-reset", "resume": str(now)}, separators=(",", ":"))


@database_sync_to_async
def events_after(
    position: Position, limit: int, cameras: scopes.Scope = scopes.EVERYTHING
) -> tuple[list[tuple[int, str]], Position | None]:
    """Frames a client at `position` lacks, of the cameras, and where to read on from
    (None: caught up)."""
    # Acknowledgements and other sites' changes are skipped here too; a batch may then hold
    # fewer than `limit` frames, so the replay goes on from where the read ended.
    read = event_log.replay(position, limit)
    keeps = scopes.keeper(cameras)
    frames = [
        (seen["id"], seen["frame"])
        for c in read.changes
        if c["op"] != STATE and (seen := seen_through(change_message(c), keeps)) is not None
    ]
    return frames, (read.position if read.more else None)

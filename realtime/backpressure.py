"""How many bytes a WebSocket client has not yet taken, where the server can tell.

Daphne gives an application no back-pressure: `send` returns at once and Twisted keeps
what the socket will not take. Daphne's `send` is `partial(server.handle_reply, protocol)`;
from the protocol's Twisted transport we read the bytes still waiting to be written. Any
other server (or a Daphne that changes this) yields None, and nothing is bounded here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

PendingBytes = Callable[[], int]
SCOPE_KEY = "realtime.pending_bytes"
# A text frame written to a Daphne WebSocket at once, or None where that is not known.
WriteText = Callable[[str], None]


def _daphne_parts(send: Any) -> tuple[Any, Any] | None:
    """(server, protocol) of Daphne's `send`, `partial(server.handle_reply, protocol)`."""
    if not isinstance(send, partial) or not send.args:
        return None
    return getattr(send.func, "__self__", None), send.args[0]


def pending_bytes_reader(send: Any) -> PendingBytes | None:
    parts = _daphne_parts(send)
    if parts is None:
        return None
    transport = getattr(parts[1], "transport", None)
    if transport is None or not hasattr(transport, "dataBuffer"):
        return None

    def pending() -> int:
        waiting = len(transport.dataBuffer) - getattr(transport, "offset", 0)
        return waiting + getattr(transport, "_tempDataLen", 0)

    return pending


async def drained(pending: PendingBytes | None, limit: int, patience: float) -> bool:
    """Wait while more than `limit` bytes are unread; False if that lasts past `patience`.

    A slow reader is waited for (what it misses meanwhile is replayed from the log); a
    client that takes nothing for `patience` seconds has stopped reading.
    """
    if pending is None or pending() <= limit:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while pending() > limit:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def text_writer(send: Any) -> WriteText | None:
    """Writes a WebSocket text frame now, as Daphne's `send` would, without a task step.

    Daphne's `send` is a coroutine that does no I/O of its own: if the connection is
    still open it hands the message to the protocol, which frames it into the Twisted
    transport. Awaiting it costs a task and a step of the event loop per frame; at 2,000
    clients that was several percent of the server. None under any other server.
    """
    parts = _daphne_parts(send)
    if parts is None:
        return None
    server, protocol = parts
    connections = getattr(server, "connections", None)
    if not isinstance(connections, dict) or not hasattr(protocol, "serverSend"):
        return None

    def write(text: str) -> None:
        state = connections.get(protocol)
        if state is not None and not state.get("disconnected"):
            protocol.serverSend(text, False)

    return write

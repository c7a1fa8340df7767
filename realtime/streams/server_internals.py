"""What the product reads and does past the ASGI interface: Daphne's and asgiref's internals.

- Back-pressure. Daphne gives an application none: `send` returns at once and Twisted keeps
  what the socket will not take. Daphne's `send` is `partial(server.handle_reply,
  protocol)`; from the protocol's Twisted transport we read the bytes still waiting.
- A WebSocket frame written at once, as Daphne's `send` would, without a task step.
- The request thread of a long SSE stream given back (asgiref's per-request executors).

Each is a probe of something undocumented, pinned in requirements.txt. Where one fails
under the server it was written for (an upgrade changed it), that is said once in the
log and in /healthz (`server_internals`), instead of falling back silently: slow clients
would no longer be bounded. Under another server they are simply not available.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, MutableMapping
from functools import partial
from typing import Any, Literal

from asgiref.sync import SyncToAsync

logger = logging.getLogger(__name__)

PendingBytes = Callable[[], int]
SCOPE_KEY = "realtime.pending_bytes"
# A text frame written to a Daphne WebSocket at once, or None where that is not known.
WriteText = Callable[[str], None]
ProbeState = Literal["ok", "failed", "not available"]

# What the probes found, for /healthz: name -> state.
probes: dict[str, ProbeState] = {}


def _found(name: str, state: ProbeState, why: str = "") -> None:
    if probes.get(name) == state:
        return
    probes[name] = state
    if state == "failed":
        logger.warning(
            "a private API probe failed: that safeguard is off until the code is adapted",
            extra={"probe": name, "why": why},
        )


def _daphne_parts(send: Any) -> tuple[Any, Any] | None:
    """(server, protocol) of Daphne's `send`, `partial(server.handle_reply, protocol)`."""
    if not isinstance(send, partial) or not send.args:
        return None
    server = getattr(send.func, "__self__", None)
    try:
        from daphne.server import Server
    except ImportError:  # pragma: no cover - Daphne is a requirement
        return None
    if not isinstance(server, Server):
        return None
    return server, send.args[0]


def pending_bytes_reader(send: Any) -> PendingBytes | None:
    parts = _daphne_parts(send)
    if parts is None:
        _found("pending_bytes", "not available")
        return None
    transport = getattr(parts[1], "transport", None)
    if transport is None or not hasattr(transport, "dataBuffer"):
        _found("pending_bytes", "failed", "no Twisted transport with a dataBuffer")
        return None
    _found("pending_bytes", "ok")

    def pending() -> int:
        waiting = len(transport.dataBuffer) - getattr(transport, "offset", 0)
        return int(waiting + getattr(transport, "_tempDataLen", 0))

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


def direct_text_writer(send: Any) -> WriteText | None:
    """Writes a WebSocket text frame now, as Daphne's `send` would, without a task step.

    Daphne's `send` is a coroutine that does no I/O of its own: if the connection is
    still open it hands the message to the protocol, which frames it into the Twisted
    transport. Awaiting it costs a task and a step of the event loop per frame. None
    under any other server.
    """
    parts = _daphne_parts(send)
    if parts is None:
        _found("direct_writer", "not available")
        return None
    server, protocol = parts
    connections = getattr(server, "connections", None)
    if not isinstance(connections, dict) or not hasattr(protocol, "serverSend"):
        _found("direct_writer", "failed", "no server.connections or protocol.serverSend")
        return None
    _found("direct_writer", "ok")

    def write(text: str) -> None:
        state = connections.get(protocol)
        if state is not None and not state.get("disconnected"):
            protocol.serverSend(text, False)

    return write


def release_request_thread() -> None:
    """Lets the thread Django gave this request end while its stream goes on.

    Django runs each request's sync code (the view, the login, reading the log) in a
    thread of its own that lives as long as the request; for a stream that is for days,
    and it was most of an idle SSE connection's memory. Called after each read of the
    log; the next read gets a new thread from asgiref, as the first did.
    """
    context_var = getattr(SyncToAsync, "thread_sensitive_context", None)
    # A WeakKeyDictionary in asgiref 3.13.
    executors = getattr(SyncToAsync, "context_to_thread_executor", None)
    if context_var is None or not isinstance(executors, MutableMapping):
        _found("request_threads", "failed", "asgiref's per-request executors changed")
        return
    try:
        context = context_var.get()
    except LookupError:  # not under Django's ASGI handler
        return
    _found("request_threads", "ok")
    executor = executors.pop(context, None)
    if executor is not None:
        executor.shutdown(wait=False)

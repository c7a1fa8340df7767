"""What the product reads and does past the ASGI interface: Daphne's and asgiref's internals.

- Back-pressure. Daphne gives an application none: `send` returns at once and Twisted keeps
  what the socket will not take. Daphne's `send` is `partial(server.handle_reply,
  protocol)`; from the protocol's Twisted transport we read the bytes still waiting.
- A WebSocket frame, or a chunk of an SSE stream's body, written at once, as Daphne's
  `send` would, without a task step.
- A stream's bytes handed to its socket at once, where Twisted would wait for the next turn
  of the event loop (Twisted's transport, below Daphne).
- The request thread of a long SSE stream given back (asgiref's per-request executors).

Each is a probe of something undocumented, pinned in requirements.txt. Where one fails
under the server it was written for (an upgrade changed it), that is said once in the
log and in /healthz (`server_internals`), instead of falling back silently: slow clients
would no longer be bounded. Under another server they are simply not available.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable, MutableMapping
from functools import partial
from typing import Any, Literal

from asgiref.sync import SyncToAsync

logger = logging.getLogger(__name__)

PendingBytes = Callable[[], int]
SCOPE_KEY = "realtime.pending_bytes"
# The server's own `send` for this connection, before any middleware wraps it: the streams
# write through it (ViolationConsumer._pump, realtime.streams.sse).
SERVER_SEND_KEY = "realtime.server_send"
# A text frame written to a Daphne WebSocket at once, or None where that is not known.
WriteText = Callable[[str], None]
# A chunk of an HTTP response's body written at once (the response has started).
WriteBody = Callable[[bytes], None]
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
    found = _open_connection(send, "direct_writer", "serverSend")
    if found is None:
        return None
    is_open, protocol = found
    # autobahn refuses a frame once the WebSocket closes (Disconnected), which comes before
    # Daphne marks the connection disconnected: such a frame is dropped, as autobahn drops
    # what follows a close, and the client resumes by id.
    closing = {getattr(protocol, name, name) for name in ("STATE_CLOSING", "STATE_CLOSED")}

    def write(text: str) -> None:
        if is_open() and getattr(protocol, "state", None) not in closing:
            protocol.serverSend(text, False)

    return write


def _open_connection(send: Any, probe: str, method: str) -> tuple[Callable[[], bool], Any] | None:
    """Daphne's protocol behind `send`, if it has `method`, and a check that its connection
    is still open (Daphne's own test before it hands a message on); the probe says which."""
    parts = _daphne_parts(send)
    if parts is None:
        _found(probe, "not available")
        return None
    server, protocol = parts
    connections = getattr(server, "connections", None)
    if not isinstance(connections, dict) or not hasattr(protocol, method):
        _found(probe, "failed", f"no server.connections or protocol.{method}")
        return None
    _found(probe, "ok")

    def is_open() -> bool:
        state = connections.get(protocol)
        return state is not None and not state.get("disconnected")

    return is_open, protocol


# The Twisted transport's state read before a write goes to the socket at once
# (twisted.internet.abstract.FileDescriptor, twisted.internet.tcp.Connection).
_TRANSPORT_STATE = (
    "socket",
    "dataBuffer",
    "offset",
    "_tempDataLen",
    "connected",
    "disconnecting",
    "_writeDisconnecting",
    "_writeDisconnected",
    "TLS",
)


def send_at_once(send: Any) -> None:
    """From now on, what Daphne writes to this connection goes to its socket at once while
    nothing waits in Twisted's buffer before it.

    Twisted's TCP transport only buffers a write and registers the socket with the event
    loop; the next turn of the loop finds it writable, sends, and unregisters it: two
    `epoll_ctl` calls, a callback and Twisted's logging context per write. For a row
    fanned out to thousands of streams, that was most of the cost after the `send` itself
    (docs/performance.md). What the socket does not take, and anything written while
    something waits, goes through Twisted's own write as before: its order, its buffer
    (read by `pending_bytes_reader`), its producer pausing and its handling of a lost
    connection are unchanged.
    """
    parts = _daphne_parts(send)
    if parts is None:
        _found("send_at_once", "not available")
        return
    transport = getattr(parts[1], "transport", None)
    if transport is None or not all(hasattr(transport, name) for name in _TRANSPORT_STATE):
        _found("send_at_once", "failed", "no Twisted TCP transport with the expected state")
        return
    if isinstance(getattr(transport.__dict__.get("write"), "__self__", None), _AtOnce):
        return  # a connection's second request (keep-alive), or a second stream
    if "write" in transport.__dict__ or "writeSequence" in transport.__dict__:
        _found("send_at_once", "failed", "the transport's write is already replaced")
        return
    _found("send_at_once", "ok")
    at_once = _AtOnce(transport)
    transport.write = at_once.write
    transport.writeSequence = at_once.write_sequence


class _AtOnce:
    """A Twisted TCP transport's `write` and `writeSequence` that send at once
    (send_at_once), and otherwise are Twisted's own. It holds the transport weakly: the
    transport holds it, and a closed connection must not wait for the cyclic collector."""

    def __init__(self, transport: Any) -> None:
        self._transport = weakref.ref(transport)
        self._class = type(transport)

    def write(self, data: bytes) -> None:
        transport = self._transport()
        if transport is None:
            return
        sent = _sent_at_once(transport, data) if type(data) is bytes and data else 0
        if sent < len(data):
            self._class.write(transport, data[sent:] if sent else data)

    def write_sequence(self, iovec: Iterable[bytes]) -> None:
        transport = self._transport()
        if transport is None:
            return
        parts = list(iovec)
        for part in parts:
            if type(part) is not bytes:
                self._class.writeSequence(transport, parts)  # Twisted's own error
                return
        data = b"".join(parts)
        sent = _sent_at_once(transport, data) if data else 0
        if sent < len(data):
            self._class.writeSequence(transport, [data[sent:]] if sent else parts)


def _sent_at_once(transport: Any, data: bytes) -> int:
    """How much of `data` the socket took now; 0 where Twisted must write it itself."""
    if (
        transport.TLS
        or not transport.connected
        or transport.disconnecting
        or transport._writeDisconnecting
        or transport._writeDisconnected
        or transport._tempDataLen
        or len(transport.dataBuffer) != transport.offset
    ):
        return 0
    try:
        sent: int = transport.socket.send(data)
    except OSError:
        # Full, interrupted, or the connection is gone: Twisted's own write finds out.
        return 0
    return sent


def direct_body_writer(send: Any) -> WriteBody | None:
    """Writes a chunk of a started HTTP response's body now, as Daphne's `send` would for
    `http.response.body` with `more_body`, without a task step.

    Through `send`, a chunk of an SSE stream goes from the stream's generator through
    Django's (ASGIHandler.send_response, StreamingHttpResponse's two wrappers) and its task
    must be woken first, per stream. None under any other server.
    """
    found = _open_connection(send, "direct_body_writer", "handle_reply")
    if found is None:
        return None
    is_open, protocol = found

    def write(body: bytes) -> None:
        if is_open():
            protocol.handle_reply({"type": "http.response.body", "body": body, "more_body": True})

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

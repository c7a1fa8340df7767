"""Writes at once into Daphne's connections (realtime.streams.server_internals): Twisted's
transport state they read, and Daphne's reply they stand for. Fails if an upgrade of
Twisted or Daphne changes them; tests/test_stalled.py checks the probes under a running
Daphne."""

from __future__ import annotations

import re
import socket
import weakref
from collections.abc import Iterator
from functools import partial
from importlib.metadata import version
from typing import Any

import pytest
from daphne.server import Server
from twisted.internet import tcp
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor
from twisted.python.failure import Failure

from realtime.streams import server_internals
from tests.helpers import ROOT


@pytest.mark.parametrize("package", ["daphne", "Twisted"])
def test_installed_version_is_the_pinned_one(package) -> None:
    pin = re.search(rf"^{package}==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert pin is not None
    assert version(package) == pin.group(1)


class DaphneLike(Server):
    """Daphne's server as `send` reaches it: partial(server.handle_reply, protocol)."""

    def __init__(self) -> None:  # Daphne's own needs an application and endpoints
        self.connections: dict[Any, dict[str, Any]] = {}

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        raise AssertionError("the writers do not go through the coroutine")


class Connection:
    """What Daphne's protocols hold: a Twisted transport; the replies they were handed."""

    def __init__(self, transport: Any = None) -> None:
        self.transport = transport
        self.replies: list[dict[str, Any]] = []

    def handle_reply(self, message: dict[str, Any]) -> None:
        self.replies.append(message)


@pytest.fixture
def reactor() -> Any:
    """Twisted's own reactor for tests: it records which descriptors wait to write."""
    return MemoryReactor()  # type: ignore[no-untyped-call]


@pytest.fixture
def pair(reactor: Any) -> Iterator[tuple[Any, socket.socket]]:
    """A Twisted TCP transport over one end of a socket pair, and the other end."""
    ours, peer = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    peer.setblocking(False)
    yield server_transport(ours, reactor), peer
    ours.close()
    peer.close()


def server_transport(sock: socket.socket, reactor: Any) -> Any:
    """Twisted's transport of an accepted connection, as Daphne's protocols have it."""
    return tcp.Server(sock, Protocol(), ("127.0.0.1", 1), None, 0, reactor)  # type: ignore[arg-type]


def closed(transport: Any) -> None:
    transport.connectionLost(Failure(ConnectionDone()))  # type: ignore[no-untyped-call]


def at_once(transport: Any) -> Any:
    server = DaphneLike()
    server_internals.send_at_once(partial(server.handle_reply, Connection(transport)))
    return transport


def received(peer: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            chunk = b""
        if not chunk:  # nothing more now, or closed
            return b"".join(chunks)
        chunks.append(chunk)


def waiting_in_twisted(transport: Any) -> int:
    return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)


def test_a_write_reaches_the_socket_without_a_turn_of_the_loop(pair, reactor) -> None:
    transport, peer = pair
    at_once(transport).write(b"data: 1\n\n")
    transport.writeSequence([b"9\r\n", b"data: 2\n\n", b"\r\n"])  # chunked, as Twisted's HTTP
    assert received(peer) == b"data: 1\n\n9\r\ndata: 2\n\n\r\n"
    assert reactor.getWriters() == []
    assert server_internals.probes["send_at_once"] == "ok"


def test_what_the_socket_does_not_take_waits_in_twisted_and_what_follows_waits_behind(
    pair, reactor
) -> None:
    transport, peer = pair
    big = bytes(range(256)) * 4096  # 1 MiB, far past both buffers
    at_once(transport).write(big)
    assert 0 < waiting_in_twisted(transport) < len(big)
    assert reactor.getWriters() == [transport]
    transport.write(b"after")
    transport.writeSequence([b"and", b" after"])
    got = received(peer)
    while waiting_in_twisted(transport):
        transport.doWrite()  # what the loop does when the socket is writable
        got += received(peer)
    assert got == big + b"after" + b"and after"
    assert reactor.getWriters() == []


def test_a_closing_or_closed_connection_is_left_to_twisted(pair) -> None:
    transport, peer = pair
    at_once(transport).loseConnection()
    transport.write(b"late")
    assert received(peer) == b""
    assert waiting_in_twisted(transport) == 4  # Twisted writes it, then closes
    closed(transport)
    transport.write(b"later")
    assert received(peer) == b""


def test_wrong_types_fail_as_in_twisted(pair) -> None:
    transport, _ = pair
    at_once(transport)
    with pytest.raises(TypeError):
        transport.write("text")
    with pytest.raises(TypeError):
        transport.writeSequence([b"a", "b"])


def test_installed_once_per_connection(pair) -> None:
    transport, peer = pair
    at_once(transport)
    write = transport.write
    at_once(transport)  # a second stream on a kept-alive connection
    assert transport.write is write
    transport.write(b"once")
    assert received(peer) == b"once"


def test_another_server_or_transport_is_left_alone() -> None:
    async def send(message: dict[str, Any]) -> None: ...

    server_internals.send_at_once(send)
    assert server_internals.probes["send_at_once"] == "not available"
    server_internals.send_at_once(None)
    server_internals.send_at_once(partial(DaphneLike().handle_reply, Connection(object())))
    assert server_internals.probes.pop("send_at_once") == "failed"


def test_body_writer_replies_as_daphne_only_while_the_connection_is_open() -> None:
    server, connection = DaphneLike(), Connection()
    write = server_internals.direct_body_writer(partial(server.handle_reply, connection))
    assert write is not None
    write(b"before it is known")
    server.connections[connection] = {}
    write(b"open")
    server.connections[connection]["disconnected"] = True
    write(b"after")
    assert connection.replies == [
        {"type": "http.response.body", "body": b"open", "more_body": True}
    ]
    assert server_internals.probes["direct_body_writer"] == "ok"


async def test_body_writer_is_none_under_another_server() -> None:
    async def send(message: dict[str, Any]) -> None: ...

    assert server_internals.direct_body_writer(send) is None
    assert server_internals.direct_body_writer(None) is None


def test_a_closed_connection_is_freed_without_the_cyclic_collector(reactor) -> None:
    ours, peer = socket.socketpair()
    transport = at_once(server_transport(ours, reactor))
    gone = weakref.ref(transport)
    reactor.removeReader(transport)
    closed(transport)
    del transport
    assert gone() is None
    peer.close()


@pytest.mark.parametrize("state", ["STATE_CLOSING", "STATE_CLOSED"])
def test_a_websocket_closing_takes_no_frame_and_raises_nothing(state) -> None:
    """Between a client's close and Daphne marking the connection disconnected, autobahn
    refuses frames with `Disconnected`: the bridge logged a traceback for each such client
    at each change. The frame is dropped; the client resumes by id when it comes back."""
    from daphne.ws_protocol import WebSocketProtocol

    server, protocol = DaphneLike(), WebSocketProtocol()
    server.connections[protocol] = {}
    protocol.state = getattr(WebSocketProtocol, state)
    protocol.client_addr = ["127.0.0.1", 50000]  # what Daphne's own debug line names
    write = server_internals.direct_text_writer(partial(server.handle_reply, protocol))
    assert write is not None
    write('{"id": 1}')
    assert server_internals.probes["direct_writer"] == "ok"

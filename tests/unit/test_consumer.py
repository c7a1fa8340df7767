"""The WebSocket consumer's own logic, without a server: what goes out at once, what waits."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import pytest
from daphne.server import Server

from realtime.pipeline.bus import change_message
from realtime.streams import server_internals
from realtime.streams.websocket import ViolationConsumer


def message(event_id: int) -> Any:
    return change_message({"id": event_id, "table": "t", "op": "INSERT", "data": {"n": event_id}})


def idle_consumer(written: list[str], pending: int = 0) -> ViolationConsumer:
    """A consumer whose pump waits on an empty outbox, as after its replay."""
    consumer = ViolationConsumer()
    consumer.pending = lambda: pending
    consumer.outbox = asyncio.Queue()
    consumer.replayed = set()
    consumer.write_now = written.append
    consumer.idle = True
    return consumer


async def test_an_idle_consumer_writes_at_once_but_not_what_its_replay_sent() -> None:
    written: list[str] = []
    consumer = idle_consumer(written)
    consumer.replayed = {5}
    consumer.violation_changed([message(5), message(6)])
    assert written == [message(6)["frame"]]
    assert consumer.outbox.empty()


@pytest.mark.parametrize("busy", ["pump", "client"])
async def test_frames_wait_in_the_outbox_behind_others_or_for_a_slow_client(settings, busy) -> None:
    written: list[str] = []
    consumer = idle_consumer(written, pending=settings.REALTIME_CLIENT_MAX_BUFFER + 1)
    if busy == "pump":
        consumer.pending = None
        consumer.idle = False
    consumer.violation_changed([message(7)])
    assert written == []
    assert consumer.outbox.get_nowait() == (7, message(7)["frame"])


class DaphneLike(Server):
    """Daphne's server, as much of it as the writer touches."""

    """Daphne's server as `send` reaches it: partial(server.handle_reply, protocol)."""

    def __init__(self) -> None:  # Daphne's own needs an application and endpoints
        self.connections: dict[Any, dict[str, Any]] = {}

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        raise AssertionError("the writer does not go through the coroutine")


class Protocol:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bool]] = []

    def serverSend(self, content: str, binary: bool) -> None:  # autobahn's name
        self.sent.append((content, binary))


def test_text_writer_writes_only_while_daphne_has_the_connection_open() -> None:
    server, protocol = DaphneLike(), Protocol()
    write = server_internals.direct_text_writer(partial(server.handle_reply, protocol))
    assert write is not None
    write("before it is known")
    server.connections[protocol] = {}
    write("open")
    server.connections[protocol]["disconnected"] = True
    write("after")
    assert protocol.sent == [("open", False)]


async def test_text_writer_is_none_under_another_server() -> None:
    async def send(message: dict[str, Any]) -> None: ...

    assert server_internals.direct_text_writer(send) is None
    assert server_internals.direct_text_writer(None) is None


def test_a_probe_that_fails_under_daphne_is_said_once_and_shown(caplog) -> None:
    """A Daphne upgrade that changed its transport: the bound on slow clients is off."""
    server, protocol = DaphneLike(), Protocol()  # a protocol without a Twisted transport
    server_internals.probes.pop("pending_bytes", None)
    for _ in range(3):
        assert server_internals.pending_bytes_reader(partial(server.handle_reply, protocol)) is None
    warnings = [r for r in caplog.records if "private API probe failed" in r.getMessage()]
    assert [r.probe for r in warnings] == ["pending_bytes"]
    assert server_internals.probes["pending_bytes"] == "failed"
    server_internals.probes.pop("pending_bytes")

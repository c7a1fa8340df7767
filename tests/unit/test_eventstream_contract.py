"""django-eventstream internals the bridge relies on; fails if an upgrade changes them (its
storage over the event log in tests/test_eventstream_contract.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from importlib.metadata import version

import pytest
from django_eventstream.views import Listener, get_listener_manager

from realtime.pipeline.bus import change_message
from realtime.streams.names import JSON_STREAM as SSE_CHANNEL
from realtime.streams.sse_fanout import STREAM_PENDING_MAX, wake_sse_streams
from tests.helpers import ROOT


def test_installed_version_is_the_pinned_one() -> None:
    pin = re.search(
        r"^django-eventstream==(\S+)$",
        (ROOT / "requirements.txt").read_text(),
        re.MULTILINE,
    )
    assert pin is not None
    assert version("django-eventstream") == pin.group(1)


@pytest.fixture
async def stream() -> AsyncIterator[Listener]:
    """What django-eventstream registers for one open /events/violations/ stream."""
    listener = Listener()
    listener.channels = {SSE_CHANNEL}
    listener.assign_loop()
    manager = get_listener_manager()
    manager.add_listener(listener)
    yield listener
    manager.remove_listener(listener)


async def test_listener_manager_queues_and_wakes_a_stream(stream) -> None:
    message = change_message({"id": 5, "table": "t", "op": "INSERT", "data": {"id": 1}})
    wake_sse_streams([message])
    await asyncio.wait_for(stream.aevent.wait(), 1)
    [event] = stream.channel_items[SSE_CHANNEL]
    # Its id is the change's position: the bare id from a message without one.
    assert (event.type, event.id, event.data) == ("message", "5", message["frame"])


async def test_a_stream_is_woken_once_per_batch_and_told_when_it_overflows(stream) -> None:
    messages = [
        change_message({"id": n, "table": "t", "op": "INSERT", "data": {"id": n}})
        for n in range(1, STREAM_PENDING_MAX + 6)
    ]
    wake_sse_streams(messages[:5])
    assert stream.aevent.is_set()
    assert [e.id for e in stream.channel_items[SSE_CHANNEL]] == ["1", "2", "3", "4", "5"]
    assert not stream.overflow
    wake_sse_streams(messages[5:])
    # Full: the stream keeps the first ones and re-reads the rest from the log (storage).
    assert len(stream.channel_items[SSE_CHANNEL]) == STREAM_PENDING_MAX
    assert stream.channel_items[SSE_CHANNEL][-1].id == str(STREAM_PENDING_MAX)
    assert stream.overflow

"""django-eventstream internals the bridge relies on; fails if an upgrade changes them."""

from __future__ import annotations

import pytest
from django_eventstream.storage import EventDoesNotExist

from realtime.streams.names import JSON_STREAM as SSE_CHANNEL
from realtime.streams.storage import EventLogStorage
from tests.helpers import event_number, insert_violation


def test_storage_replays_after_an_id_and_resets_unknown_ones(pg) -> None:
    storage = EventLogStorage()
    # A position (realtime.pipeline.positions): the newest id, and the oldest running transaction.
    current = storage.get_current_id(SSE_CHANNEL)
    before = event_number(current)
    insert_violation(pg, image="/media/a.jpg")
    insert_violation(pg, image="/media/b.jpg")
    events = storage.get_events(SSE_CHANNEL, before)
    assert [event_number(e.id) for e in events] == [before + 1, before + 2]
    assert '"violation_image":"/media/b.jpg"' in events[1].data
    assert storage.get_events(SSE_CHANNEL, before + 2) == []
    with pytest.raises(EventDoesNotExist):
        storage.get_events(SSE_CHANNEL, before + 1000)

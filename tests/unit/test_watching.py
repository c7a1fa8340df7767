"""Which open streams are a person watching (presence, issue 25), decided without a
database: a session's live table is, a token's stream or another stream is not; a user's
live tables add up their cameras (the rest in tests/test_presence.py)."""

from __future__ import annotations

import pytest

from realtime.access.open_streams import Holder, OpenStreams, Watch
from realtime.streams import names
from realtime.streams.sse import watch

SESSION = Holder(7, None)
TOKEN = Holder(7, 12)
NORTH = frozenset({1, 2, 3, 4, 5})


@pytest.mark.parametrize(
    ("holder", "base", "scope", "expected"),
    [
        (SESSION, "table/*/*", NORTH, Watch(NORTH)),
        (SESSION, "table.de/*/*", NORTH, Watch(NORTH)),  # the live table in German
        (SESSION, "table/ppe/*", None, Watch(None)),  # a kind's filter: still its cameras
        (SESSION, "table/*/3", NORTH, Watch(frozenset({3}))),  # one camera's table
        (SESSION, "table/*/8", NORTH, Watch(frozenset())),  # a camera not theirs
        (TOKEN, "table/*/*", NORTH, None),  # a program, not a person
        (SESSION, "admin/*/*", NORTH, None),  # the admin's changelist
        (SESSION, names.JSON_STREAM, None, None),
    ],
)
def test_only_a_sessions_live_table_watches(holder, base, scope, expected) -> None:
    assert watch(holder, base, scope) == expected


def test_a_users_live_tables_add_up_and_close() -> None:
    streams = OpenStreams()
    first = streams.open(SESSION, lambda moved: None, "sse", NORTH, Watch(frozenset({1, 2})))
    second = streams.open(SESSION, lambda moved: None, "sse", NORTH, Watch(frozenset({3})))
    streams.open(Holder(8, None), lambda moved: None, "sse", None, Watch(None))
    streams.open(Holder(9, 4), lambda moved: None, "sse", None)  # a token's: not watching
    assert streams.watching() == {7: frozenset({1, 2, 3}), 8: None}
    streams.close(first)
    assert streams.watching() == {7: frozenset({3}), 8: None}
    streams.close(second)
    assert streams.watching() == {8: None}
    streams.open(Holder(8, None), lambda moved: None, "sse", NORTH, Watch(NORTH))
    assert streams.watching() == {8: None}, "every camera and some: every camera"

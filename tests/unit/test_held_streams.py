"""Whose streams Pushpin holds are ended, from two reads of the rights
(realtime.access.held_streams)."""

from __future__ import annotations

from realtime.access.held_streams import Rights, ending

NORTH = frozenset({1, 2, 3})
SOUTH = frozenset({4, 5, 6})


def test_nothing_changed_ends_nothing() -> None:
    rights = Rights({1: NORTH, 2: None}, {10: 1, 20: 2})
    assert not ending(rights, Rights(dict(rights.scopes), dict(rights.tokens)))


def test_a_user_gone_or_deactivated_is_forbidden_and_only_them() -> None:
    before = Rights({1: NORTH, 2: SOUTH}, {10: 1, 20: 2})
    ended = ending(before, Rights({2: SOUTH}, {20: 2}))
    assert ended.forbidden == {1}
    assert ended.moved == set()


def test_a_token_ended_or_sites_changed_reconnect_that_user_only() -> None:
    before = Rights({1: NORTH, 2: SOUTH, 3: None}, {10: 1, 11: 1, 20: 2})
    now = Rights({1: NORTH, 2: NORTH | SOUTH, 3: None}, {11: 1, 20: 2})
    ended = ending(before, now)
    assert ended.forbidden == set()
    assert ended.moved == {1, 2}


def test_a_new_user_or_token_ends_nothing() -> None:
    before = Rights({1: NORTH}, {10: 1})
    assert not ending(before, Rights({1: NORTH, 2: SOUTH}, {10: 1, 20: 2}))

"""What an SSE stream remembers having sent (realtime.streams.sent_ids): pure logic."""

from __future__ import annotations

import random

from realtime.streams import sent_ids
from realtime.streams.sent_ids import SentIds
from realtime.streams.sse_fanout import StreamEvent, event


def test_ids_in_order_make_one_run_and_each_is_fresh_once() -> None:
    sent = SentIds()
    items = [event("violations", "message", "{}", f"{n}.77") for n in range(1, 2501)]
    assert sent.fresh(items) == items
    assert sent.fresh(items) == []
    assert 0 not in sent and 2501 not in sent
    assert sent._low == [1] and sent._high == [2500]


def test_late_ids_fill_the_gaps_and_runs_join() -> None:
    sent = SentIds()
    for n in (1, 2, 5, 6, 4, 3, 10, 8):
        sent.add(n)
    assert (sent._low, sent._high) == ([1, 8, 10], [6, 8, 10])
    sent.add(9)
    assert (sent._low, sent._high) == ([1, 8], [6, 10])
    assert [n for n in range(12) if n in sent] == [1, 2, 3, 4, 5, 6, 8, 9, 10]


def test_any_order_remembers_exactly_what_was_added() -> None:
    rng = random.Random(7)
    for _ in range(200):
        ids = rng.sample(range(1, 400), rng.randint(1, 300))
        sent = SentIds()
        for n in ids:
            sent.add(n)
        assert {n for n in range(0, 402) if n in sent} == set(ids)
        assert all(h + 1 < lo for h, lo in zip(sent._high, sent._low[1:], strict=False))


def test_past_its_runs_it_forgets_the_lowest(monkeypatch) -> None:
    monkeypatch.setattr(sent_ids, "SENT_RUNS", 3)
    sent = SentIds()
    for n in (10, 20, 30, 40):
        sent.add(n)
    assert 10 not in sent and all(n in sent for n in (20, 30, 40))


def test_events_without_a_position_always_go() -> None:
    sent = SentIds()
    bare: StreamEvent = event("violations", "message", "{}", "5")
    nameless = StreamEvent("violations", "message", "{}")
    assert sent.fresh([bare, nameless]) == [bare, nameless]
    assert sent.fresh([bare, nameless]) == [nameless]

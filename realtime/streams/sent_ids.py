"""What one stream sent, so that it sends each change once (docs/guarantees.md, promise 2)."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from realtime.pipeline.positions import BadPosition, Position

if TYPE_CHECKING:
    pass
from realtime.streams.sse_fanout import StreamEvent

# Runs of consecutive ids a stream remembers having sent (SentIds): a few KB.
SENT_RUNS = 1000


class SentIds:
    """The event ids one stream sent, as runs of consecutive ids (one run for a stream that
    gets every change), the lowest forgotten past SENT_RUNS runs.

    A stream sends an event at most once (docs/guarantees.md, promise 2), but two sources
    can bring the same one: a read of the log and the bridge. A read can run ahead of the
    bus (the listener behind, or none during a failover: the bridge brings those later),
    and a read from a position repeats what committed above its horizon
    (realtime.pipeline.positions), which includes changes the stream sent live when a transaction
    still ran as it took the position (a 2,500-row statement, say) or a read that follows
    another (more to read, or more queued meanwhile).
    """

    def __init__(self) -> None:
        self._low: list[int] = []  # each run's first id, ascending
        self._high: list[int] = []  # each run's last id

    def __contains__(self, event_id: int) -> bool:
        if not self._high or event_id > self._high[-1]:
            return False  # the usual case: a new change
        at = bisect.bisect_right(self._low, event_id) - 1
        return at >= 0 and event_id <= self._high[at]

    def add(self, event_id: int) -> None:
        if self._high and self._high[-1] + 1 == event_id:
            self._high[-1] = event_id  # the usual case
            return
        at = bisect.bisect_right(self._low, event_id)
        if at and event_id <= self._high[at - 1] + 1:
            self._high[at - 1] = max(self._high[at - 1], event_id)
        elif at < len(self._low) and event_id == self._low[at] - 1:
            self._low[at] = event_id
        else:
            self._low.insert(at, event_id)
            self._high.insert(at, event_id)
            if len(self._low) > SENT_RUNS:
                del self._low[0], self._high[0]
            return
        # Two runs that now touch become one.
        at = max(at - 1, 0)
        if at + 1 < len(self._low) and self._high[at] + 1 >= self._low[at + 1]:
            self._high[at] = max(self._high[at], self._high[at + 1])
            del self._low[at + 1], self._high[at + 1]

    def fresh(self, items: list[StreamEvent]) -> list[StreamEvent]:
        """The items not sent yet, now counted as sent."""
        out = []
        for item in items:
            event_id = event_number(item)
            if event_id is None:
                out.append(item)
            elif event_id not in self:
                self.add(event_id)
                out.append(item)
        return out


def event_number(item: StreamEvent) -> int | None:
    """The log id of a stream's event (its id is its position, realtime.pipeline.positions); read
    once per event, whatever the number of streams it is queued on."""
    number: int | str | None = getattr(item, "event_number", "unread")
    if number == "unread":
        try:
            number = Position.parse(str(item.id)).after if item.id is not None else None
        except BadPosition:
            number = None
        item.event_number = number
    assert not isinstance(number, str)
    return number

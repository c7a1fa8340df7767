"""Where a client is in the stream of changes, and so what it lacks when it comes back.

Event ids are taken when a row is written, but transactions commit in another order: a
detector's transaction may take id 41, another's 42 and commit first, and 41 commit a
moment later. A client that got 42 and then went away (a phone on plant Wi-Fi, a server
restart) must not resume "after 42" alone, or 41 is lost (issue 22, finding 7).

So a position is an event id and a transaction horizon: "this client has every change up
to `after` whose transaction had ended before transaction `horizon` began" (an xid8; every
transaction below it had committed or aborted). Resuming from it replays the changes
above `after`, and those at or below it written by transactions at or above `horizon`
(committed since; the client already has some of them, and drops those by id, as every
client must after a reconnect: docs/guarantees.md, promise 2).

Written as `<after>.<horizon>` ("812.7733"): the `id:` of every SSE event after its stream's
name ("violations:812.7733"), the `resume` of every WebSocket frame, and what
`Last-Event-ID` and `?lastEventId=` take back. A bare id ("812", or "violations:812", as
clients of earlier versions hold) still works, and resumes after that id alone.

Who sets the horizon:
- the listener: its catch-up horizon (realtime.pipeline.listener), below which it has forwarded
  every change (at most `catch_up_interval` old);
- a read of the log (a replay, the bridge's healing, a page drawn from the tables): the
  oldest transaction running when it read, and, for a replay, never above the horizon of
  the position it resumed from until the changes committed late below it are sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ASCII digits only ("²".isdigit() is true, and int("²") raises); at most a bigint.
POSITION = re.compile(r"([0-9]{1,18})(?:\.([0-9]{1,20}))?", re.ASCII)
# "violations:812.7733": the stream's name (URL-quoted, as django-eventstream writes it).
STREAM_POSITION = re.compile(r"(?:([\w/%*.~-]+):)?([0-9.]+)", re.ASCII)


class BadPosition(ValueError):
    pass


@dataclass(frozen=True)
class Position:
    after: int
    # An xid8 as text, or None: a bare id (every change above `after`, no more).
    horizon: str | None = None

    def __str__(self) -> str:
        return str(self.after) if self.horizon is None else f"{self.after}.{self.horizon}"

    @classmethod
    def parse(cls, raw: str) -> Position:
        match = POSITION.fullmatch(raw)
        if match is None:
            raise BadPosition(f"not an event id: {raw[:40]!r} (as 812 or 812.7733)")
        horizon = match[2]
        if horizon is not None and int(horizon) >= 2**64:
            raise BadPosition(f"not an event id: {raw[:40]!r} (as 812 or 812.7733)")
        return cls(int(match[1]), horizon)


def parse_stream_position(raw: str) -> tuple[str | None, Position]:
    """`Last-Event-ID` or `?lastEventId=`: the stream's name it carries (None for a bare
    position), and the position."""
    match = STREAM_POSITION.fullmatch(raw.strip())
    if match is None:
        raise BadPosition(f"not an event id: {raw[:40]!r} (as violations:812.7733 or 812)")
    return match[1], Position.parse(match[2])


def after_change(event_id: int, horizon: str | None) -> str:
    """The position a client is at once it has handled change `event_id` (its resume)."""
    return str(Position(event_id, horizon))

"""A change as one stream sees it: whether a row stays in, leaves, or enters what the
stream keeps (issue 29).

Every filter of the product goes by the violation's camera: a user's sites
(realtime.access.scopes), a page's ?camera=, the per-camera rows streams. An UPDATE that moves
a row to another camera (sql/009 logs the row as it was) is therefore, to a stream:

- an UPDATE, if it keeps both cameras;
- a DELETE of the row as it was, if it kept only the old one: the row left it, and it
  must not learn the new values (another site's);
- an INSERT of the row as it is, if it keeps only the new one: the row entered it;
- nothing, if it keeps neither.

Every route asks here: the bridge's fan-out to WebSockets and SSE streams, the replays
and Pushpin's publishes.
"""

from __future__ import annotations

from collections.abc import Callable

from realtime.pipeline.bus import ChangeMessage, message_camera

# Whether a stream keeps the changes of a camera (an int, or None when a row has none).
Keeps = Callable[[int | None], bool]


def seen_through(message: ChangeMessage, keeps: Keeps) -> ChangeMessage | None:
    """The change as a stream that keeps what `keeps` accepts sees it, or None."""
    now_in = keeps(message_camera(message))
    left = message.get("left")
    if left is None:
        return message if now_in else None
    was_in = keeps(message_camera(left))
    if was_in:
        return message if now_in else left
    return message["entered"] if now_in else None

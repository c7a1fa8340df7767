"""/api/v1/changes/: the changes the streams carry, for programs that poll.

Read as the caller's SSE stream reads them when it resumes (realtime.streams.storage:
the event log's replay, seen through the caller's sites), so the ids, the order and the
data are the stream's: an id from here resumes a stream (`Last-Event-ID`), and a
stream's id is an `after` here.
"""

from __future__ import annotations

import json

from django.http import HttpRequest
from django_eventstream.storage import EventDoesNotExist
from django_eventstream.utils import make_id
from ninja import Router
from ninja.errors import HttpError
from ninja.params.functions import Query
from ninja.responses import codes_4xx

from realtime.api.auth import scope_of
from realtime.api.schemas import Change, ChangePage, Error
from realtime.pipeline import event_log
from realtime.pipeline.positions import BadPosition, parse_stream_position
from realtime.streams import names
from realtime.streams.storage import EventLogStorage

router = Router(tags=["changes"])

CHANGES_MAX = 1000


@router.get("/", response={200: ChangePage, codes_4xx: Error}, url_name="api-changes")
def list_changes(
    request: HttpRequest,
    after: str | None = Query(
        None,
        description="An event id as a stream sent it (violations:812.7733) or its number"
        " (812), or the `next` of the previous answer; none: from now.",
    ),
    limit: int = Query(100, ge=1, le=CHANGES_MAX),
) -> ChangePage:
    """The changes after `after`, oldest first, as the caller's stream sends them."""
    stream = names.scoped(names.JSON_STREAM, scope_of(request))
    if after is None:
        now = event_log.current_position()
        return ChangePage(results=[], next=_id(stream, str(now)), more=False)
    try:
        _, position = parse_stream_position(after)
    except BadPosition as exc:
        raise HttpError(400, str(exc)) from exc
    try:
        read = EventLogStorage().read(stream, position, limit)
    except EventDoesNotExist as exc:
        # The stream sends a stream-reset here: start again from now (and read the list).
        raise HttpError(
            410, f"The log no longer holds (or never held) what follows {after[:40]!r}: {exc}"
        ) from exc
    return ChangePage(
        results=[
            Change(id=_id(stream, str(e.id)), event=e.type, data=json.loads(e.data))
            for e in read.events
        ],
        next=_id(stream, str(read.position)),
        more=read.more,
    )


def _id(stream: str, position: str) -> str:
    """An event id as django-eventstream writes it: the stream's name, then the position."""
    made: str = make_id({stream: position})
    return made

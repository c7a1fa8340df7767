"""What travels through the pipeline: a change to a watched row, and its wire format."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict, TypeGuard, get_args

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from realtime import metrics
from realtime.violations import kinds

logger = logging.getLogger(__name__)

Op = Literal["INSERT", "UPDATE", "DELETE"]
# A change of the product's own state of a violation (its acknowledgement, sql/006): in
# the event log beside the detectors' changes, but never sent as a change of the row.
STATE: Literal["STATE"] = "STATE"
LoggedOp = Literal["INSERT", "UPDATE", "DELETE", "STATE"]
OPS: frozenset[str] = frozenset(get_args(LoggedOp))

TRANSACTION_ID = re.compile(r"[0-9]{1,20}")

# The PostgreSQL NOTIFY channel the triggers in sql/002 and sql/004 write to.
NOTIFY_CHANNEL = "realtime_changed_v1"


class ViolationState(TypedDict):
    """What the product knows of a violation (realtime_acknowledgement), as ISO text."""

    acknowledged_by: str
    acknowledged_at: str
    # The latest note, when there is one.
    note: NotRequired[str]
    noted_by: NotRequired[str]
    noted_at: NotRequired[str]


def violation_state(
    acknowledged_by: str,
    acknowledged_at: datetime | None,
    note: str | None = "",
    noted_by: str | None = "",
    noted_at: datetime | None = None,
) -> ViolationState | None:
    """The state from the columns of realtime_acknowledgement (None: not acknowledged)."""
    if acknowledged_at is None:
        return None
    state: ViolationState = {
        "acknowledged_by": acknowledged_by,
        "acknowledged_at": acknowledged_at.isoformat(),
    }
    if note and noted_at is not None:
        state["note"] = note
        state["noted_by"] = noted_by or ""
        state["noted_at"] = noted_at.isoformat()
    return state


class ChangeEvent(TypedDict):
    """One change, as sent on /ws/violations/ and as `data:` on /events/violations/.

    Read from the event log, it may be a STATE event, and carries the violation's `state`
    at the time of reading and whether it is `shelved`; none of those is part of what the
    JSON streams send as a change.
    """

    id: int
    table: str
    op: LoggedOp
    data: dict[str, Any]
    state: NotRequired[ViolationState | None]
    # Read from the log: whether a shelf covers the violation (realtime.console.shelves).
    shelved: NotRequired[bool]
    # Read from the log: the row as it was, when this UPDATE moved it to another camera
    # (sql/009): streams that kept the old camera are told it left (realtime.streams.membership).
    old: NotRequired[dict[str, Any]]
    # Where a client is once it has handled this change (realtime.pipeline.positions): what it
    # sends back as Last-Event-ID or ?lastEventId= to resume.
    resume: NotRequired[str]


class NotifyPayload(TypedDict):
    """The NOTIFY payload: a ChangeEvent whose data is missing when the row is too big.

    `written_at` (epoch seconds, when the trigger ran) is for latency metrics only; it is
    not part of what clients receive.
    """

    id: int
    table: str
    op: LoggedOp
    data: NotRequired[dict[str, Any]]
    written_at: NotRequired[float]


class StatementNotice(TypedDict):
    """One statement changed more rows than get a notification each (sql/004).

    The rows are in the event log: ids first_id..last_id written by transaction `xid`.
    """

    table: str
    op: LoggedOp
    first_id: int
    last_id: int
    rows: int
    xid: str
    written_at: NotRequired[float]


class InvalidPayload(ValueError):
    """A NOTIFY payload that is not ours (anyone may NOTIFY on the channel)."""


def parse_notify_payload(raw: str) -> NotifyPayload | StatementNotice:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidPayload("not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidPayload("not a JSON object")
    if not isinstance(value.get("table"), str) or not value["table"]:
        raise InvalidPayload("no table name")
    if value.get("op") not in OPS:
        raise InvalidPayload("op is not INSERT, UPDATE, DELETE or STATE")
    payload: NotifyPayload | StatementNotice
    if "first_id" in value:
        payload = _statement_notice(value)
    else:
        event_id = value.get("id")
        if not _positive_int(event_id):
            raise InvalidPayload("no positive integer id")
        if "data" in value and not isinstance(value["data"], dict):
            raise InvalidPayload("data is not a JSON object")
        payload = {"id": event_id, "table": value["table"], "op": value["op"]}
        if "data" in value:
            payload["data"] = value["data"]
    written_at = value.get("written_at")
    if isinstance(written_at, (int, float)) and not isinstance(written_at, bool):
        payload["written_at"] = float(written_at)
    return payload


def _statement_notice(value: dict[str, Any]) -> StatementNotice:
    first_id, last_id, rows = value.get("first_id"), value.get("last_id"), value.get("rows")
    if not (_positive_int(first_id) and _positive_int(last_id) and _positive_int(rows)):
        raise InvalidPayload("first_id, last_id and rows must be positive integers")
    if first_id > last_id:
        raise InvalidPayload("first_id is above last_id")
    xid = value.get("xid")
    # ASCII digits: "²".isdigit() is true, and int("²") raises.
    if not isinstance(xid, str) or TRANSACTION_ID.fullmatch(xid) is None:
        raise InvalidPayload("xid is not a transaction id")
    return {
        "table": value["table"],
        "op": value["op"],
        "first_id": first_id,
        "last_id": last_id,
        "rows": rows,
        "xid": xid,
    }


def _positive_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def encode_frame(event: ChangeEvent) -> str:
    """The one JSON text for an event: a WebSocket frame and an SSE `data:` line; in its
    reduced form when longer than REALTIME_FRAME_MAX_BYTES."""
    frame = {"id": event["id"], "table": event["table"], "op": event["op"], "data": event["data"]}
    if "resume" in event:
        frame["resume"] = event["resume"]
    text = to_json(frame)
    return text if fits(text) else to_json(reduced(frame))


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def fits(text: str) -> bool:
    """Whether a frame is at most REALTIME_FRAME_MAX_BYTES long in UTF-8 (what Daphne counts)."""
    limit: int = settings.REALTIME_FRAME_MAX_BYTES
    # At most 4 bytes a character: most frames are measured without being encoded.
    return len(text) * 4 <= limit or len(text.encode()) <= limit


# What a client needs to show a violation and find it: the last columns a reduced frame omits.
KEY_COLUMNS = ("id", "camera_id", "violation_date", "violation_time")


def reduced(frame: dict[str, Any]) -> dict[str, Any]:
    """A frame too long to send: its longest columns left out, largest first, until it fits.

    `{..., "data": {the columns kept}, "truncated": true, "omitted": [the columns left out,
    in the table's order], "links": {"page": the violation's page}}` (docs/reference/streams.md,
    "Changes too long for a frame"). Everything else of the frame stays as it was.
    """
    data: dict[str, Any] = frame["data"]
    out = {**frame, "data": {}, "truncated": True, "omitted": [], "links": full_row_links(frame)}
    value_sizes = {name: _size(value) for name, value in data.items()}
    # The whole reduced frame before any column is left out: `"name":value` per column, commas.
    size = _size(out) + sum(_size(n) + 1 + v for n, v in value_sizes.items())
    size += max(len(data) - 1, 0)
    left_out: set[str] = set()
    for name in sorted(data, key=lambda n: (n in KEY_COLUMNS, -value_sizes[n])):
        if size <= settings.REALTIME_FRAME_MAX_BYTES:
            break
        left_out.add(name)
        # Out goes `"name":value` (and maybe a comma), in comes `"name"` (and a comma).
        size -= value_sizes[name]
    out["data"] = {name: value for name, value in data.items() if name not in left_out}
    out["omitted"] = [name for name in data if name in left_out]
    _reduced_changes.add(frame, out["omitted"])
    return out


def full_row_links(frame: dict[str, Any]) -> dict[str, str]:
    """Where a client reads the whole row: `page`, the violation's page (the JSON API, when
    it comes, adds `api`). Empty for a DELETE (the row is gone) or a table that is no kind."""
    kind = kinds.cached().by_table.get(frame["table"])
    row_id = frame["data"].get("id")
    if kind is None or frame["op"] == "DELETE" or not _positive_int(row_id):
        return {}
    try:
        return {"page": reverse("violation-detail", args=[kind.slug, row_id])}
    except NoReverseMatch:  # a slug the URL does not take
        return {}


def _size(value: Any) -> int:
    return len(to_json(value).encode())


class ReducedChanges:
    """Counted, and told at most once a minute: one detector may write many such rows."""

    LOG_INTERVAL = 60.0

    def __init__(self) -> None:
        self.since_told = 0
        self.told_at: float | None = None

    def add(self, frame: dict[str, Any], omitted: list[str]) -> None:
        metrics.FRAMES_REDUCED.labels(frame["table"]).inc()
        self.since_told += 1
        now = time.monotonic()
        if self.told_at is None or now - self.told_at >= self.LOG_INTERVAL:
            logger.warning(
                "changes too long for a frame were sent in their reduced form",
                extra={
                    "changes": self.since_told,
                    "event_id": frame["id"],
                    "table": frame["table"],
                    "omitted": omitted,
                    "limit": settings.REALTIME_FRAME_MAX_BYTES,
                },
            )
            self.since_told, self.told_at = 0, now


_reduced_changes = ReducedChanges()


def acknowledgement_frame(event: ChangeEvent) -> str:
    """A STATE event as the `acknowledgement` event of /events/violations/."""
    state = event.get("state")
    return json.dumps(
        {
            "id": event["id"],
            "table": event["table"],
            "row_id": event["data"].get("id"),
            "acknowledged": state is not None,
            "acknowledged_by": state["acknowledged_by"] if state else None,
            "acknowledged_at": state["acknowledged_at"] if state else None,
            "note": state.get("note") if state else None,
            "noted_by": state.get("noted_by") if state else None,
            "noted_at": state.get("noted_at") if state else None,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )

"""What travels through the pipeline: a change to a watched row, and its wire format."""

from __future__ import annotations

import json
from typing import Any, Literal, NotRequired, TypedDict, get_args

Op = Literal["INSERT", "UPDATE", "DELETE"]
OPS: frozenset[str] = frozenset(get_args(Op))

# The PostgreSQL NOTIFY channel the trigger in sql/002_notify_function.sql writes to.
NOTIFY_CHANNEL = "realtime_changed_v1"


class ChangeEvent(TypedDict):
    """One change, as sent on /ws/violations/ and as `data:` on /events/violations/."""

    id: int
    table: str
    op: Op
    data: dict[str, Any]


class NotifyPayload(TypedDict):
    """The NOTIFY payload: a ChangeEvent whose data is missing when the row is too big.

    `written_at` (epoch seconds, when the trigger ran) is for latency metrics only; it is
    not part of what clients receive.
    """

    id: int
    table: str
    op: Op
    data: NotRequired[dict[str, Any]]
    written_at: NotRequired[float]


class InvalidPayload(ValueError):
    """A NOTIFY payload that is not ours (anyone may NOTIFY on the channel)."""


def parse_notify_payload(raw: str) -> NotifyPayload:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidPayload("not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidPayload("not a JSON object")
    event_id = value.get("id")
    if not isinstance(event_id, int) or isinstance(event_id, bool) or event_id < 1:
        raise InvalidPayload("no positive integer id")
    if not isinstance(value.get("table"), str) or not value["table"]:
        raise InvalidPayload("no table name")
    if value.get("op") not in OPS:
        raise InvalidPayload("op is not INSERT, UPDATE or DELETE")
    if "data" in value and not isinstance(value["data"], dict):
        raise InvalidPayload("data is not a JSON object")
    payload: NotifyPayload = {"id": event_id, "table": value["table"], "op": value["op"]}
    if "data" in value:
        payload["data"] = value["data"]
    written_at = value.get("written_at")
    if isinstance(written_at, (int, float)) and not isinstance(written_at, bool):
        payload["written_at"] = float(written_at)
    return payload


def encode_frame(event: ChangeEvent) -> str:
    """The one JSON text for an event: a WebSocket frame and an SSE `data:` line."""
    return json.dumps(
        {"id": event["id"], "table": event["table"], "op": event["op"], "data": event["data"]},
        ensure_ascii=False,
        separators=(",", ":"),
    )

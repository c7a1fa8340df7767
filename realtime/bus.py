"""The Channels group every change is sent to; the listener's only way out."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from channels.layers import BaseChannelLayer, get_channel_layer

from realtime.changes import ChangeEvent, ViolationState, encode_frame

GROUP = "violations"
# One group message carries every change the listener had at hand (up to a size): one
# Redis round trip and one wake-up per process for a burst, instead of one per row.
BATCH_TYPE = "violation.changes"
# A single change: what listeners before batching sent; servers still accept it.
MESSAGE_TYPE = "violation.changed"
# Sent by the active listener after each catch-up: the newest event id it has forwarded.
HEARTBEAT_TYPE = "violation.heartbeat"
# channels-redis capacities match on this prefix (see CHANNEL_LAYERS in config/settings.py).
BRIDGE_CHANNEL_PREFIX = "realtime.bridge"


class ChangeMessage(TypedDict):
    type: str
    id: int
    table: str
    op: str
    frame: str
    # The violation's acknowledgement when the change was read from the log (UPDATE and
    # STATE events; None for the others). Not in `frame`: the JSON streams do not send it.
    state: NotRequired[ViolationState | None]


def change_message(event: ChangeEvent) -> ChangeMessage:
    # Encoded once here, by the listener; every process and connection reuses the text.
    return {
        "type": MESSAGE_TYPE,
        "id": event["id"],
        "table": event["table"],
        "op": event["op"],
        "frame": encode_frame(event),
        "state": event.get("state"),
    }


def channel_layer() -> BaseChannelLayer:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS is not configured.")
    return layer


class ChangeBatch(TypedDict):
    type: str
    changes: list[ChangeMessage]


# Limits of one group message; a longer run of changes goes in several, in order.
BATCH_MAX_CHANGES = 500
BATCH_MAX_BYTES = 512 * 1024


def batches(events: list[ChangeEvent]) -> list[ChangeBatch]:
    out: list[ChangeBatch] = []
    changes: list[ChangeMessage] = []
    size = 0
    for event in events:
        message = change_message(event)
        if changes and (
            len(changes) >= BATCH_MAX_CHANGES or size + len(message["frame"]) > BATCH_MAX_BYTES
        ):
            out.append({"type": BATCH_TYPE, "changes": changes})
            changes, size = [], 0
        changes.append(message)
        size += len(message["frame"])
    if changes:
        out.append({"type": BATCH_TYPE, "changes": changes})
    return out


async def publish(events: list[ChangeEvent], layer: Any = None) -> None:
    layer = layer or channel_layer()
    for batch in batches(events):
        await layer.group_send(GROUP, batch)


async def publish_heartbeat(newest_id: int, layer: Any = None) -> None:
    await (layer or channel_layer()).group_send(
        GROUP, {"type": HEARTBEAT_TYPE, "newest_id": newest_id}
    )

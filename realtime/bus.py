"""The Channels group every change is sent to; the listener's only way out."""

from __future__ import annotations

from typing import Any, TypedDict

from channels.layers import BaseChannelLayer, get_channel_layer

from realtime.changes import ChangeEvent, encode_frame

GROUP = "violations"
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


def change_message(event: ChangeEvent) -> ChangeMessage:
    # Encoded once here, by the listener; every process and connection reuses the text.
    return {
        "type": MESSAGE_TYPE,
        "id": event["id"],
        "table": event["table"],
        "op": event["op"],
        "frame": encode_frame(event),
    }


def channel_layer() -> BaseChannelLayer:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS is not configured.")
    return layer


async def publish(event: ChangeEvent, layer: Any = None) -> None:
    await (layer or channel_layer()).group_send(GROUP, change_message(event))


async def publish_heartbeat(newest_id: int, layer: Any = None) -> None:
    await (layer or channel_layer()).group_send(
        GROUP, {"type": HEARTBEAT_TYPE, "newest_id": newest_id}
    )

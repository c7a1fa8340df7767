"""The Channels group every change is sent to; the listener's only way out.

A deployment has an identity (docs/decisions/011-a-deployment-has-an-identity.md): the
PostgreSQL server's system identifier and the database's name, which every process of a
deployment shares and no other deployment has. Redis pub/sub ignores the database number
of REDIS_URL, so the channel layer's names are prefixed with it (or with
REALTIME_BUS_PREFIX), and every batch carries it: a neighbour on the same Redis can neither
show nor hide anything.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from typing import Any, NotRequired, TypedDict

import psycopg
from channels.layers import BaseChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from django.db import connections

from realtime.pipeline import signing
from realtime.pipeline.changes import ChangeEvent, ViolationState, encode_frame
from realtime.violations import cameras

GROUP = "violations"
# One group message carries every change the listener had at hand (up to a size): one
# Redis round trip and one wake-up per process for a burst, instead of one per row.
BATCH_TYPE = "violation.changes"
# Sent by the active listener after each catch-up: the newest event id it has forwarded.
HEARTBEAT_TYPE = "violation.heartbeat"
# Sent after operators shelved or unshelved a camera: the screens read the shelves again
# (realtime.console.shelves). It carries nothing else.
SHELVES_TYPE = "violation.shelves"
# channels-redis capacities match on this prefix (see CHANNEL_LAYERS in config/settings.py).
BRIDGE_CHANNEL_PREFIX = "realtime.bridge"


class ChangeMessage(TypedDict):
    id: int
    table: str
    op: str
    frame: str
    # The violation's acknowledgement when the change was read from the log (UPDATE and
    # STATE events; None for the others). Not in `frame`: the JSON streams do not send it.
    state: NotRequired[ViolationState | None]
    # Whether a shelf covers the violation (read with it from the log; realtime.console.shelves).
    shelved: NotRequired[bool]
    # The violation's camera_id (an int, or None): who may see it (realtime.access.scopes).
    camera: NotRequired[int | None]
    # Where a client is once it has this change (realtime.pipeline.positions): the `id:`
    # of its SSE events.
    resume: NotRequired[str]
    # An UPDATE that moved the row to another camera: the change as a stream that kept
    # the old camera only sees it (a DELETE of the row as it was), and as one that keeps
    # the new camera only sees it (an INSERT). Chosen by realtime.streams.membership.
    left: NotRequired[ChangeMessage]
    entered: NotRequired[ChangeMessage]


def message_position(message: ChangeMessage) -> str:
    """The `id:` of a change's SSE events: its position (its bare id when it has none)."""
    return message.get("resume") or str(message["id"])


def message_camera(message: ChangeMessage) -> int | None:
    """The camera of a change: who may see it (realtime.access.scopes)."""
    return message.get("camera")


def change_message(event: ChangeEvent) -> ChangeMessage:
    # Encoded once here, by the listener; every process and connection reuses the text.
    message: ChangeMessage = {
        "id": event["id"],
        "table": event["table"],
        "op": event["op"],
        "frame": encode_frame(event),
        "state": event.get("state"),
        "shelved": event.get("shelved", False),
        "camera": cameras.of(event.get("data")),
    }
    if "resume" in event:
        message["resume"] = event["resume"]
    old = event.get("old")
    if old is not None:
        left: ChangeEvent = {
            "id": event["id"],
            "table": event["table"],
            "op": "DELETE",
            "data": old,
        }
        if "resume" in event:
            left["resume"] = event["resume"]
        message["left"] = change_message(left)
        entered: ChangeEvent = {**event, "op": "INSERT"}
        del entered["old"]
        message["entered"] = change_message(entered)
    return message


def message_size(message: ChangeMessage) -> int:
    """The bytes of text a message carries (its frame, and those of its variants)."""
    size = len(message["frame"])
    if "left" in message:
        size += len(message["left"]["frame"])
    if "entered" in message:
        size += len(message["entered"]["frame"])
    return size


def channel_layer() -> BaseChannelLayer:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS is not configured.")
    return layer


class ChangeBatch(TypedDict):
    type: str
    changes: list[ChangeMessage]
    # The deployment that sent it (deployment()); bridges drop other deployments' batches.
    deployment: NotRequired[str]
    # Who published it (one run of a listener), and its number in that run (`sequence`).
    publisher: NotRequired[str]
    seq: NotRequired[int]


@functools.cache
def deployment() -> str:
    """This deployment's identity: the database server's system identifier and the
    database's name (read once per process)."""
    from realtime.pipeline.database import conninfo_from_django

    conninfo = conninfo_from_django(connections["default"].settings_dict)
    with psycopg.connect(conninfo, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT system_identifier::text, current_database() FROM pg_control_system()"
        ).fetchone()
    assert row is not None
    return f"{row[0]}/{row[1]}"


def bus_prefix() -> str:
    """The prefix of every Redis channel of this deployment's bus."""
    if settings.REALTIME_BUS_PREFIX:
        return str(settings.REALTIME_BUS_PREFIX)
    return "rt." + hashlib.sha256(deployment().encode()).hexdigest()[:16] + "."


class DeploymentChannelLayer(RedisPubSubChannelLayer):
    """channels-redis' pub/sub layer, its channels named after this deployment and every
    message signed by it (realtime.pipeline.signing: what it did not sign never reaches a bridge).

    The prefix is found on first use (a query), not when settings are read.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "serializer_format": signing.FORMAT})

    def _get_layer(self) -> Any:
        if "prefix" not in self._kwargs:
            self._kwargs["prefix"] = bus_prefix()
        return super()._get_layer()


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
            len(changes) >= BATCH_MAX_CHANGES or size + message_size(message) > BATCH_MAX_BYTES
        ):
            out.append(_batch(changes))
            changes, size = [], 0
        changes.append(message)
        size += message_size(message)
    if changes:
        out.append(_batch(changes))
    return out


class _Sequence:
    """This process's run of publishing, and the number of its last batch: a bridge that
    sees a number skipped knows the bus lost a batch, and reads it from the log before it
    sends on anything newer (realtime.streams.bridge)."""

    def __init__(self) -> None:
        self.publisher = uuid.uuid4().hex
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


sequence = _Sequence()


def _batch(changes: list[ChangeMessage]) -> ChangeBatch:
    return {
        "type": BATCH_TYPE,
        "changes": changes,
        "deployment": deployment(),
        "publisher": sequence.publisher,
        "seq": sequence.next(),
    }


async def publish(events: list[ChangeEvent], layer: Any = None) -> None:
    layer = layer or channel_layer()
    for batch in batches(events):
        await layer.group_send(GROUP, batch)


async def publish_heartbeat(newest_id: int, horizon: str = "", layer: Any = None) -> None:
    """Everything up to `newest_id` is forwarded, and every change of a transaction below
    `horizon` (the listener's catch-up horizon: the heal's positions,
    realtime.pipeline.positions)."""
    await (layer or channel_layer()).group_send(
        GROUP,
        {
            "type": HEARTBEAT_TYPE,
            "newest_id": newest_id,
            "horizon": horizon,
            "deployment": deployment(),
            "publisher": sequence.publisher,
            "seq": sequence.last,
        },
    )


async def publish_shelves_changed(layer: Any = None) -> None:
    await (layer or channel_layer()).group_send(
        GROUP, {"type": SHELVES_TYPE, "deployment": deployment()}
    )


def ours(message: dict[str, Any]) -> bool:
    """Whether a bus message is this deployment's (every message names its sender)."""
    return bool(message.get("deployment") == deployment())

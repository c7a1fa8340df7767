"""Shelved cameras on the broker: `<prefix>/shelves/<camera_id>`, retained, the camera's
shelf as it is now (a shelf is a camera's state, not a change of a violation, and is not
in the event log: realtime.console.shelves).

Each new session sends every camera that ever had a shelf (whatever the broker retained
from before is made right); then a camera's message is sent again when its shelf starts,
ends early or runs out.
"""

from __future__ import annotations

import time

from realtime.console import shelves
from realtime.integrations.broker import BrokerAddress
from realtime.models import Shelf
from realtime.pipeline.changes import to_json

# The shelves are read at most this often (a shelf that runs out is told within it).
READ_SECONDS = 0.5

# (topic, payload, retain)
Message = tuple[str, str, bool]


def shelf_text(camera: int, shelf: Shelf | None) -> str:
    if shelf is None:
        return to_json({"camera_id": camera, "shelved": False})
    return to_json(
        {
            "camera_id": camera,
            "shelved": True,
            "shelved_by": shelf.shelved_by,
            "shelved_at": shelf.shelved_at.isoformat(),
            "until": shelf.until.isoformat(),
            "reason": shelf.reason,
        }
    )


class ShelfMessages:
    def __init__(self, address: BrokerAddress) -> None:
        self.address = address
        # What this session's broker holds, by camera (None: a new session).
        self.sent: dict[int, str] | None = None
        self.read_at = 0.0

    def new_session(self) -> None:
        self.sent, self.read_at = None, 0.0

    def due(self) -> tuple[list[Message], dict[int, str]]:
        """The messages to send now, and what the broker holds once they are acknowledged."""
        now = time.monotonic()
        if self.sent is not None and now - self.read_at < READ_SECONDS:
            return [], self.sent
        self.read_at = now
        cameras = set(self.sent or ())
        if self.sent is None:
            # Before the shelves in force: a shelf made between the two reads is in both.
            cameras |= set(Shelf.objects.values_list("camera_id", flat=True).distinct())
        current = {shelf.camera_id: shelf for shelf in shelves.active(None)}
        cameras |= set(current)
        texts = {camera: shelf_text(camera, current.get(camera)) for camera in cameras}
        sent = self.sent or {}
        messages = [
            (self.address.topic("shelves", str(camera)), text, True)
            for camera, text in sorted(texts.items())
            if sent.get(camera) != text
        ]
        return messages, texts

    def acknowledged(self, texts: dict[int, str]) -> None:
        self.sent = texts

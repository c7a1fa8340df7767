"""A change written for each output, as each stream sees it: the JSON streams' text, the
rows streams' `<tr>` (drawn once per layout and form), for this process's streams or for
the ones Pushpin may hold.

Who may see a change is decided by realtime.streams.membership and the streams' names
(realtime.streams.names); how it travels, by the bridge and the streams."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import cast

from realtime.access import scopes
from realtime.console.rows import render_change
from realtime.pipeline.bus import (
    ChangeMessage,
    message_camera,
)
from realtime.pipeline.changes import STATE, ChangeEvent, acknowledgement_frame
from realtime.streams import names
from realtime.streams.membership import seen_through
from realtime.violations import kinds

# Its event type for an acknowledgement (onmessage clients, which take changes, skip it).
ACKNOWLEDGEMENT_EVENT = "acknowledgement"


def in_scope(messages: list[ChangeMessage], scope: scopes.Scope) -> list[ChangeMessage]:
    """The changes as a stream of the scope sees them (realtime.streams.membership)."""
    if scope is None:
        return messages
    keeps = scopes.keeper(scope)
    return [seen for m in messages if (seen := seen_through(m, keeps)) is not None]


def json_text(message: ChangeMessage) -> tuple[str, str]:
    """/events/violations/: (event type, data) of a change: `message` and the change's
    frame, or an acknowledgement as its own event."""
    if message["op"] == STATE:
        change = cast(ChangeEvent, {**json.loads(message["frame"]), "state": message.get("state")})
        return ACKNOWLEDGEMENT_EVENT, acknowledgement_frame(change)
    return "message", message["frame"]


@dataclass
class Targets:
    """The rows streams to fan out to, by base name: each (stream name, its scope)."""

    by_base: dict[str, list[tuple[str, scopes.Scope]]]
    # Instead: every base, in each of these scopes.
    every_scope: Collection[scopes.Scope] | None = None

    @classmethod
    def of(cls, stream_names: Collection[str]) -> Targets:
        """The rows streams among these (the ones this process's streams listen to)."""
        by_base: dict[str, list[tuple[str, scopes.Scope]]] = {}
        for name in stream_names:
            base, scope = names.split(name)
            if base != names.JSON_STREAM:
                by_base.setdefault(base, []).append((name, scope))
        return cls(by_base)

    @classmethod
    def every(cls, every_scope: Collection[scopes.Scope]) -> Targets:
        """Every rows stream in each of these scopes (Pushpin, which may hold any)."""
        return cls({}, every_scope)

    def named(self, base: str) -> list[tuple[str, scopes.Scope]]:
        """The streams of a base name: (stream name, its scope)."""
        if self.every_scope is not None:
            return [(names.scoped(base, scope), scope) for scope in self.every_scope]
        return self.by_base.get(base, [])


def row_fragments(
    message: ChangeMessage, registry: kinds.Registry, targets: Targets | None = None
) -> list[tuple[str, str]]:
    """(rows stream, `<tr>`) for every rows stream of `targets` (every unscoped one if not
    given) that keeps this change, as it sees it (realtime.streams.membership): drawn once per
    layout and form, and not at all for a layout no stream wants."""
    kind = registry.by_table.get(message["table"])
    if kind is None:
        return []
    cameras = [message_camera(message)]
    if "left" in message:
        cameras.append(message_camera(message["left"]))
    out: list[tuple[str, str]] = []
    for layout in names.layouts():
        drawn: dict[int, str | None] = {}
        bases = dict.fromkeys(
            b for c in cameras for b in names.rows_streams_for(layout, kind.slug, c)
        )
        for base in bases:
            named = [(base, scopes.EVERYTHING)] if targets is None else targets.named(base)
            for channel, scope in named:
                seen = seen_through(message, names.keeper(base, scope))
                if seen is None:
                    continue
                if id(seen) not in drawn:
                    drawn[id(seen)] = render_change(
                        seen["frame"],
                        seen.get("state"),
                        layout,
                        registry,
                        seen.get("shelved", False),
                    )
                html = drawn[id(seen)]
                if html is not None:
                    out.append((channel, html))
    return out

"""What the API answers, as pydantic schemas (the OpenAPI schema is made from them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema

from realtime.console.rows import ViolationRow
from realtime.models import OperatorAction, Shelf


class Error(Schema):
    detail: str = Field(examples=["kind must be one of human, ppe, loto"])


class Violation(Schema):
    kind: str = Field(description="The kind's slug (GET /api/v1/kinds/).")
    id: int
    camera_id: int | None
    violation_date: str | None = Field(description="As the detector wrote it (ISO date).")
    violation_time: str | None = Field(description="As the detector wrote it (ISO time).")
    violation_image: str
    data: dict[str, Any] = Field(description="The detectors' other columns, as JSON values.")
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    shelved: bool = Field(description="A shelf of its camera covers it.")

    @classmethod
    def of(cls, row: ViolationRow) -> Violation:
        others = {name: row.data.get(name) for name, _ in row.extra}
        return cls(
            kind=row.kind.slug,
            id=int(row.id),
            camera_id=row.camera_id,
            violation_date=row.date_text or None,
            violation_time=row.time_text or None,
            violation_image=row.violation_image,
            data=others,
            acknowledged_by=row.acknowledged_by or None,
            acknowledged_at=row.acknowledged_at,
            shelved=row.shelved,
        )


class ViolationPage(Schema):
    results: list[Violation]
    next: str | None = Field(description="The `cursor` of the next page; null on the last.")


class Action(Schema):
    action: str = Field(description="acknowledge, note or undo")
    actor: str
    at: datetime
    text: str

    @classmethod
    def of(cls, action: OperatorAction) -> Action:
        return cls(action=action.action, actor=action.actor, at=action.at, text=action.text)


class ViolationDetail(Violation):
    notes: list[Action] = Field(description="Its notes, oldest first.")
    history: list[Action] = Field(description="Everything done to it, oldest first.")


class AcknowledgeIn(Schema):
    note: str | None = Field(None, description="A note to keep with the acknowledgement.")


class NoteIn(Schema):
    text: str


class ShelfOut(Schema):
    id: int
    camera_id: int
    shelved_by: str
    shelved_at: datetime
    until: datetime
    reason: str

    @classmethod
    def of(cls, shelf: Shelf) -> ShelfOut:
        return cls(
            id=shelf.pk,
            camera_id=shelf.camera_id,
            shelved_by=shelf.shelved_by,
            shelved_at=shelf.shelved_at,
            until=shelf.until,
            reason=shelf.reason,
        )


class ShelfIn(Schema):
    camera: int
    minutes: int
    reason: str = ""


class KindOut(Schema):
    slug: str
    label: str
    colour: str


class Change(Schema):
    id: str = Field(description="The event's id as the stream sends it (its `id:`).")
    event: str = Field(description="message (a change) or acknowledgement, as on the stream.")
    data: dict[str, Any] = Field(description="The event's data, as on the stream.")


class ChangePage(Schema):
    results: list[Change] = Field(
        description="Oldest first. A change that committed late may come again: drop those"
        " you have by their number (the id's part before the dot), as a stream's client does."
    )
    next: str = Field(
        description="Where to ask from next (`after`), or to resume a stream from"
        " (`Last-Event-ID`)."
    )
    more: bool = Field(description="More changes may be read at once: ask again now.")

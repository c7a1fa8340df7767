"""Violations as table rows: filters, page cursors, and the `<tr>` fragments.

A row is drawn from the violation's data as `row_to_json` gives it (a live change, a
replay, or a page read from the table) and the product's state of it, by one
constructor, so live, reloaded and admin rows look the same.
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any

from django.http import QueryDict
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, translation
from django.utils.translation import gettext as _

from realtime.pipeline.changes import ViolationState
from realtime.streams import names
from realtime.streams.names import Layout
from realtime.violations import cameras, kinds
from realtime.violations.contract import REQUIRED_COLUMNS
from realtime.violations.kinds import Kind, Registry

PAGE_SIZE = 50
# A path on this origin: a slash, then no spaces, control characters or backslashes.
SAFE_PATH = re.compile(r"/[^\s\\\x00-\x1f\x7f]*")
# A page cursor: the sort key of the last row shown (see realtime.violations.queries).
CURSOR = re.compile(
    r"(?P<date>-?infinity|[0-9]{4,5}-[0-9]{2}-[0-9]{2}),"
    r"(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?),"
    r"(?P<kind>[-a-zA-Z0-9_]{1,40}),(?P<id>-?[0-9]{1,18})"
)


class InvalidFilter(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: rows after it in the page order (newest first) come next."""

    date: str  # ISO, or -infinity for rows without a date
    time: str  # ISO, 00:00:00 for rows without a time
    kind: str
    id: int

    def __str__(self) -> str:
        return f"{self.date},{self.time},{self.kind},{self.id}"

    @classmethod
    def parse(cls, raw: str) -> Cursor:
        match = CURSOR.fullmatch(raw)
        if match is None or match["kind"] not in kinds.knowing(slug=match["kind"]).by_slug:
            raise InvalidFilter(_("before must be a cursor from the page's Load older button"))
        try:
            if "infinity" not in match["date"]:
                _calendar_date(match["date"])
            if match["time"] != "24:00:00":  # PostgreSQL's end of day
                time.fromisoformat(match["time"])
        except ValueError as exc:
            raise InvalidFilter(
                _("before must be a cursor from the page's Load older button")
            ) from exc
        return cls(match["date"], match["time"], match["kind"], int(match["id"]))


def _calendar_date(text: str) -> None:
    """Raises ValueError unless `text` (YYYY-MM-DD or YYYYY-MM-DD) is a day of the calendar.

    PostgreSQL's dates run far past Python's year 9999 (a detector may write 10000-03-01),
    so `calendar` checks a five-digit year; PostgreSQL would refuse 12345-99-99 with an error.
    """
    year, month, day = (int(part) for part in text.split("-"))
    if year < 1 or not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise ValueError(f"no such day: {text}")


@dataclass(frozen=True)
class RowFilter:
    kind: str | None = None
    camera: int | None = None
    # Hide acknowledged rows: applied by the server to the rows it renders, and by the
    # page to live rows (an acknowledgement re-draws a row already shown).
    unacknowledged: bool = False
    # The history's filters (realtime.console.history parses them): only acknowledged rows, and a
    # range of the detectors' date and time (plant local time, naive), `since` included,
    # `until` not.
    acknowledged: bool = False
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def from_query(cls, query: QueryDict) -> RowFilter:
        kind = query.get("kind") or None
        if kind is not None and kind not in kinds.knowing(slug=kind).by_slug:
            raise InvalidFilter(
                _("kind must be one of %(kinds)s") % {"kinds": ", ".join(kinds.registry().by_slug)}
            )
        raw_camera = query.get("camera") or None
        camera = None
        if raw_camera is not None:
            try:
                camera = cameras.parse(raw_camera)
            except cameras.BadCamera as exc:
                raise InvalidFilter(_("camera must be a camera number")) from exc
        raw_ack = query.get("unacknowledged") or "0"
        if raw_ack not in ("0", "1"):
            raise InvalidFilter(_("unacknowledged must be 0 or 1"))
        return cls(kind, camera, raw_ack == "1")

    def stream_name(self, layout: Layout) -> str:
        """The name of the rows stream this filter lets through (realtime.streams.names)."""
        return names.rows(layout, self.kind, self.camera)

    def kinds(self, registry: Registry) -> list[Kind]:
        return [registry.by_slug[self.kind]] if self.kind else list(registry)

    def as_query(self) -> dict[str, str]:
        query = {}
        if self.kind:
            query["kind"] = self.kind
        if self.camera is not None:
            query["camera"] = str(self.camera)
        if self.unacknowledged:
            query["unacknowledged"] = "1"
        if self.acknowledged:
            query["acknowledged"] = "1"
        if self.since is not None:
            query["from"] = self.since.isoformat()
        if self.until is not None:
            query["to"] = self.until.isoformat()
        return query

    def stream_query(self) -> dict[str, str]:
        """What the rows stream filters on (hiding acknowledged rows is the page's job)."""
        return {k: v for k, v in self.as_query().items() if k in ("kind", "camera")}


@dataclass(frozen=True)
class ViolationRow:
    kind: Kind
    id: Any
    camera_id: Any
    date_value: date | None
    time_value: time | None
    # As the database wrote them, when they are not a plain date or time (infinity).
    date_text: str
    time_text: str
    violation_image: str
    # The detectors' other columns, as (name, text), in the table's order.
    extra: tuple[tuple[str, str], ...] = ()
    acknowledged_at: datetime | None = None
    acknowledged_by: str = ""
    op: str = "INSERT"
    event_id: int | None = None
    # The latest note on the acknowledgement, who wrote it and when.
    note: str = ""
    noted_by: str = ""
    noted_at: datetime | None = None
    # A shelf of its camera covers it (realtime.console.shelves): listed, but no sound, not counted.
    shelved: bool = False
    # Columns a change too long to send left out (realtime.pipeline.changes.reduced): not
    # shown live.
    omitted: tuple[str, ...] = ()
    # The row as `row_to_json` gave it: its values typed as JSON (the API's `data`).
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_data(
        cls,
        kind: Kind,
        data: dict[str, Any],
        state: ViolationState | None = None,
        *,
        op: str = "INSERT",
        event_id: int | None = None,
        shelved: bool = False,
        omitted: tuple[str, ...] = (),
    ) -> ViolationRow:
        """A row from `row_to_json` of the violation, and the product's state of it."""
        raw_date, raw_time = _text(data.get("violation_date")), _text(data.get("violation_time"))
        acknowledged_at = _timestamp(state["acknowledged_at"]) if state else None
        return cls(
            kind,
            data.get("id"),
            data.get("camera_id"),
            _date(raw_date),
            _time(raw_time),
            raw_date,
            raw_time,
            _text(data.get("violation_image")),
            tuple(
                (name, _text(value)) for name, value in data.items() if name not in REQUIRED_COLUMNS
            ),
            acknowledged_at,
            (state["acknowledged_by"] if state else "") if acknowledged_at else "",
            op,
            event_id,
            state.get("note", "") if state else "",
            state.get("noted_by", "") if state else "",
            _timestamp(state["noted_at"]) if state and "noted_at" in state else None,
            shelved,
            omitted,
            data,
        )

    @classmethod
    def from_change(
        cls, change: dict[str, Any], registry: Registry | None = None
    ) -> ViolationRow | None:
        kind = (registry or kinds.cached()).by_table.get(change["table"])
        if kind is None:
            return None
        return cls.from_data(
            kind,
            change["data"],
            change.get("state"),
            op=change["op"],
            event_id=change["id"],
            shelved=bool(change.get("shelved")),
            omitted=tuple(change.get("omitted") or ()),
        )

    @property
    def image_omitted(self) -> bool:
        return "violation_image" in self.omitted

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    @property
    def dom_id(self) -> str:
        return f"violation-{self.kind.slug}-{self.id}"

    @property
    def violation_date(self) -> str:
        return self.date_value.isoformat() if self.date_value else self.date_text

    @property
    def shown_date(self) -> str:
        """The date as the active language writes it (SHORT_DATE_FORMAT: 2026-12-04 in
        English, 04.12.2026 in German), or as the database wrote it when it is not a day."""
        if self.date_value is None:
            return self.date_text
        return formats.date_format(self.date_value, "SHORT_DATE_FORMAT")

    @property
    def violation_time(self) -> str:
        """To the second, however precise the column: the same text live and on reload."""
        return self.time_value.isoformat(timespec="seconds") if self.time_value else self.time_text

    @property
    def at(self) -> str:
        """Date and time, ISO, for the page's counters (which count a recent window)."""
        if self.date_value is None:
            return ""
        return f"{self.date_value.isoformat()}T{self.violation_time or '00:00:00'}"

    @property
    def sort_key(self) -> str:
        """The pages' order (realtime.violations.queries) as one text that compares alike:
        date, time to the microsecond, kind, id. The live table puts a row that arrives
        where a reload puts it."""
        if self.date_value is not None:
            day = self.date_value.isoformat()
        else:  # NULL sorts as -infinity, as the queries' coalesce does
            day = "9999-99-99" if self.date_text == "infinity" else "0000-00-00"
        moment = (self.time_value or time(0)).isoformat(timespec="microseconds")
        return f"{day}T{moment} {self.kind.slug} {int(self.id):020d}"

    @property
    def admin_url(self) -> str | None:
        model = self.kind.model
        if model is None:
            return None
        meta = model._meta
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[self.id])

    @property
    def filled_extra(self) -> tuple[tuple[str, str], ...]:
        """The detectors' other columns that hold a value: an empty one says nothing."""
        return tuple((name, value) for name, value in self.extra if value)

    @property
    def empty_extra(self) -> list[str]:
        """The names of the detectors' other columns that are NULL (or empty text)."""
        return [name for name, value in self.extra if not value]

    @property
    def extra_text(self) -> str:
        return " · ".join(f"{name}: {value}" for name, value in self.filled_extra)

    @property
    def image_href(self) -> str | None:
        """A link only to a plain path on the product's own origin.

        Browsers drop tabs and line breaks from a URL and read a backslash as a slash, so
        `/\\evil.example/x` is `//evil.example/x`, another site: a path with any of those,
        or with a second slash at the start, is shown as text only (as are web addresses).
        """
        image = self.violation_image
        if SAFE_PATH.fullmatch(image) is None or image.startswith("//"):
            return None
        return image


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        return None


def _time(value: str) -> time | None:
    try:
        return time.fromisoformat(value) if value else None
    except ValueError:
        return None


def _timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def render_row(row: ViolationRow, layout: Layout | None = None, *, live: bool = False) -> str:
    """A `<tr>` on one line (an SSE `data:` line); every value HTML-escaped by the template.

    Drawn in the layout's language (realtime.streams.names.layout); None: the live table's,
    in the active language (a response to the request that acted on the row)."""
    form, language = names.split_layout(layout or names.layout("table"))
    template = "realtime/_row.html" if form == "table" else "realtime/_admin_row.html"
    with translation.override(language):
        html = render_to_string(template, {"row": row, "live": live}).strip()
    # The templates keep their own markup on one line; line breaks inside values become
    # character references, which mean the same thing in HTML.
    return html.replace("\r", "&#13;").replace("\n", "&#10;")


def render_change(
    frame: str,
    state: ViolationState | None,
    layout: Layout,
    registry: Registry | None = None,
    shelved: bool = False,
) -> str | None:
    """A change's `<tr>`, rendered once per process: replays of the same event hit a cache."""
    registry = registry or kinds.cached()
    # The state as text: a key for the cache, like the frame.
    state_text = json.dumps(state, sort_keys=True) if state else ""
    return _render_change(frame, state_text, layout, registry, shelved)


@lru_cache(maxsize=4096)
def _render_change(
    frame: str, state_text: str, layout: Layout, registry: Registry, shelved: bool
) -> str | None:
    change = json.loads(frame)
    if state_text:
        change["state"] = json.loads(state_text)
    change["shelved"] = shelved
    row = ViolationRow.from_change(change, registry)
    return None if row is None else render_row(row, layout, live=True)

"""Violations as table rows: kinds, filters, the rows on a page and the `<tr>` fragments."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any, Literal

from django.db.models import F, Model, QuerySet, Value
from django.http import QueryDict
from django.template.loader import render_to_string
from django.urls import reverse

from realtime.models import HumanDetection, LotoDetection, PpeDetection

Layout = Literal["table", "admin"]
LAYOUTS: tuple[Layout, ...] = ("table", "admin")


@dataclass(frozen=True)
class Kind:
    slug: str
    label: str
    model: type[Model]

    @property
    def table(self) -> str:
        return str(self.model._meta.db_table)


KINDS = [
    Kind("human", "Person in zone", HumanDetection),
    Kind("loto", "LOTO", LotoDetection),
    Kind("ppe", "PPE", PpeDetection),
]
KIND_BY_SLUG = {kind.slug: kind for kind in KINDS}
KIND_BY_TABLE = {kind.table: kind for kind in KINDS}
PAGE_SIZE = 50
ROW_FIELDS = (
    "id",
    "camera_id",
    "violation_date",
    "violation_time",
    "violation_image",
    "acknowledged_at",
    "acknowledged_by",
    "kind",
)
MAX_CAMERA_ID = 2**31 - 1


class InvalidFilter(ValueError):
    pass


@dataclass(frozen=True)
class RowFilter:
    kind: str | None = None
    camera: int | None = None
    # Hide acknowledged rows: applied by the server to the rows it renders, and by the
    # page to live rows (an acknowledgement is an UPDATE of a row already shown).
    unacknowledged: bool = False

    @classmethod
    def from_query(cls, query: QueryDict) -> RowFilter:
        kind = query.get("kind") or None
        if kind is not None and kind not in KIND_BY_SLUG:
            raise InvalidFilter(f"kind must be one of {', '.join(KIND_BY_SLUG)}")
        raw_camera = query.get("camera") or None
        camera = None
        if raw_camera is not None:
            # Length first: int() of thousands of digits is itself an error.
            if not raw_camera.isdigit() or len(raw_camera) > 10 or int(raw_camera) > MAX_CAMERA_ID:
                raise InvalidFilter("camera must be a camera number")
            camera = int(raw_camera)
        raw_ack = query.get("unacknowledged") or "0"
        if raw_ack not in ("0", "1"):
            raise InvalidFilter("unacknowledged must be 0 or 1")
        return cls(kind, camera, raw_ack == "1")

    @classmethod
    def from_channel(cls, channel: str) -> tuple[Layout, RowFilter]:
        layout, _, rest = channel.partition("/")
        kind, _, camera = rest.partition("/")
        if layout not in LAYOUTS or (kind != "*" and kind not in KIND_BY_SLUG):
            raise InvalidFilter(f"not a rows channel: {channel}")
        if camera != "*" and not (camera.isdigit() and len(camera) <= 10):
            raise InvalidFilter(f"not a rows channel: {channel}")
        return layout, cls(  # type: ignore[return-value]
            None if kind == "*" else kind, None if camera == "*" else int(camera)
        )

    def channel(self, layout: Layout) -> str:
        """The django-eventstream channel of the rows this filter lets through."""
        camera = "*" if self.camera is None else str(self.camera)
        return f"{layout}/{self.kind or '*'}/{camera}"

    def kinds(self) -> list[Kind]:
        return [KIND_BY_SLUG[self.kind]] if self.kind else KINDS

    def as_query(self) -> dict[str, str]:
        query = {}
        if self.kind:
            query["kind"] = self.kind
        if self.camera is not None:
            query["camera"] = str(self.camera)
        if self.unacknowledged:
            query["unacknowledged"] = "1"
        return query

    def stream_query(self) -> dict[str, str]:
        """What the rows stream filters on (hiding acknowledged rows is the page's job)."""
        return {k: v for k, v in self.as_query().items() if k != "unacknowledged"}


def channels_for(layout: Layout, kind: str, camera_id: Any) -> list[str]:
    """Every channel a row of this kind and camera belongs to (one per filter that keeps it)."""
    cameras: list[int | None] = [None]
    if isinstance(camera_id, int) and not isinstance(camera_id, bool):
        cameras.append(camera_id)
    return [RowFilter(k, c).channel(layout) for k in (None, kind) for c in cameras]


@dataclass(frozen=True)
class ViolationRow:
    kind: Kind
    id: Any
    camera_id: Any
    violation_date: str
    violation_time: str
    violation_image: str
    acknowledged_at: datetime | None = None
    acknowledged_by: str = ""
    op: str = "INSERT"
    event_id: int | None = None

    @classmethod
    def from_change(cls, change: dict[str, Any]) -> ViolationRow | None:
        kind = KIND_BY_TABLE.get(change["table"])
        if kind is None:
            return None
        data = change["data"]
        return cls(
            kind,
            data.get("id"),
            data.get("camera_id"),
            _text(data.get("violation_date")),
            _text(data.get("violation_time")),
            _text(data.get("violation_image")),
            _timestamp(data.get("acknowledged_at")),
            _text(data.get("acknowledged_by")),
            change["op"],
            change["id"],
        )

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> ViolationRow:
        at = values["violation_time"]
        return cls(
            KIND_BY_SLUG[values["kind"]],
            values["id"],
            values["camera_id"],
            _text(values["violation_date"]),
            at.isoformat(timespec="seconds") if at is not None else "",
            _text(values["violation_image"]),
            values["acknowledged_at"],
            values["acknowledged_by"] or "",
        )

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    @property
    def dom_id(self) -> str:
        return f"violation-{self.kind.slug}-{self.id}"

    @property
    def date_value(self) -> date | None:
        try:
            return date.fromisoformat(self.violation_date)
        except ValueError:
            return None

    @property
    def time_value(self) -> time | None:
        try:
            return time.fromisoformat(self.violation_time)
        except ValueError:
            return None

    @property
    def admin_url(self) -> str:
        meta = self.kind.model._meta
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[self.id])

    @property
    def image_href(self) -> str | None:
        """A link only to what is plainly a path or a web address, never `javascript:`."""
        image = self.violation_image
        if image.startswith("/") and not image.startswith("//"):
            return image
        if image.startswith(("http://", "https://")):
            return image
        return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def render_row(row: ViolationRow, layout: Layout = "table", *, live: bool = False) -> str:
    """A `<tr>` on one line (an SSE `data:` line); every value HTML-escaped by the template."""
    template = "realtime/_row.html" if layout == "table" else "realtime/_admin_row.html"
    html = render_to_string(template, {"row": row, "live": live}).strip()
    # The templates keep their own markup on one line; line breaks inside values become
    # character references, which mean the same thing in HTML.
    return html.replace("\r", "&#13;").replace("\n", "&#10;")


@lru_cache(maxsize=4096)
def render_change(frame: str, layout: Layout) -> str | None:
    """Render a change's frame once per process; replays of the same event hit the cache."""
    row = ViolationRow.from_change(json.loads(frame))
    return None if row is None else render_row(row, layout, live=True)


def row_of(kind: Kind, pk: int) -> ViolationRow | None:
    values = (
        kind.model._default_manager.filter(pk=pk)
        .annotate(kind=Value(kind.slug))
        .values(*ROW_FIELDS)
        .first()
    )
    return None if values is None else ViolationRow.from_values(values)


def latest_rows(
    row_filter: RowFilter, offset: int = 0, limit: int = PAGE_SIZE
) -> list[ViolationRow]:
    """Newest first (detection date and time) across the kinds the filter keeps."""
    querysets: list[QuerySet[Any, Any]] = []
    for kind in row_filter.kinds():
        queryset = kind.model._default_manager.all()
        if row_filter.camera is not None:
            queryset = queryset.filter(camera_id=row_filter.camera)
        if row_filter.unacknowledged:
            queryset = queryset.filter(acknowledged_at__isnull=True)
        querysets.append(queryset.annotate(kind=Value(kind.slug)).values(*ROW_FIELDS))
    union = querysets[0].union(*querysets[1:], all=True) if len(querysets) > 1 else querysets[0]
    ordered = union.order_by(
        F("violation_date").desc(nulls_last=True),
        F("violation_time").desc(nulls_last=True),
        F("id").desc(),
    )
    return [ViolationRow.from_values(values) for values in ordered[offset : offset + limit]]


def unacknowledged_counts(row_filter: RowFilter) -> dict[str, int]:
    result = {}
    for kind in KINDS:
        queryset = kind.model._default_manager.filter(acknowledged_at__isnull=True)
        if row_filter.camera is not None:
            queryset = queryset.filter(camera_id=row_filter.camera)
        result[kind.slug] = queryset.count()
    return result

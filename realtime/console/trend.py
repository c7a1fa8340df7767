"""The trend at a glance: violations per hour (or day, or month) and kind, as an SVG chart.

Drawn by the server (no charting library): stacked bars, one per time bucket, a segment
per kind. Each kind has a colour (its badge's, from /kinds.css) and a pattern, a legend in
words, a <title> on every segment and a table of the same numbers, so the chart can be
read without colour. The live table's chart covers the last 24 hours in whole hours (the
counters' window too: live_range) and grows as rows arrive (static/realtime/live.js);
/history/'s covers the chosen range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from realtime.access import scopes
from realtime.console.rows import RowFilter
from realtime.violations import queries
from realtime.violations.kinds import Kind, Registry

LIVE_HOURS = 24
# Up to this long a range is drawn per hour, then per day, then per month.
HOURLY_UP_TO = timedelta(hours=72)
DAILY_UP_TO = timedelta(days=400)
MAX_BARS = 240
PATTERNS = 6  # patterns the template defines: kinds take them in turn
UNIT_NAMES = {
    "hour": gettext_lazy("Hour"),
    "day": gettext_lazy("Day"),
    "month": gettext_lazy("Month"),
}
HEADINGS = {
    "hour": gettext_lazy("Violations per hour"),
    "day": gettext_lazy("Violations per day"),
    "month": gettext_lazy("Violations per month"),
}

WIDTH, HEIGHT = 720.0, 190.0
LEFT, RIGHT, TOP, BOTTOM = 40.0, 8.0, 16.0, 30.0
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
BASE = TOP + PLOT_HEIGHT


@dataclass(frozen=True)
class Segment:
    kind: Kind
    pattern: int
    count: int
    y: float
    height: float
    label: str  # "Human, 2025-03-01 10:00"


@dataclass(frozen=True)
class Bar:
    key: str  # the bucket, as a row's ISO date and time begins: 2025-03-01T10
    label: str
    tick: str  # the axis label under it, or ""
    x: float
    width: float
    total: int
    total_y: float  # where its total is written, above the stack
    segments: list[Segment]

    @property
    def centre(self) -> float:
        return self.x + self.width / 2


@dataclass(frozen=True)
class Chart:
    unit: str
    since: datetime
    until: datetime
    bars: list[Bar]
    legend: list[tuple[Kind, int]]  # each kind and its pattern
    scale_max: int
    top_cameras: list[tuple[Any, int]]
    live: bool

    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    base: float = BASE
    top: float = TOP

    @property
    def px_per_violation(self) -> float:
        return PLOT_HEIGHT / self.scale_max

    @property
    def total(self) -> int:
        return sum(bar.total for bar in self.bars)

    @property
    def last_key(self) -> str:
        return self.bars[-1].key if self.bars else ""

    @property
    def span_text(self) -> str:
        """The range, dates as the active language writes them, times in 24 hours."""
        if self.unit == "hour":
            start = f"{formats.date_format(self.since, 'SHORT_DATE_FORMAT')} {self.since:%H:%M}"
            end = f"{formats.date_format(self.until, 'SHORT_DATE_FORMAT')} {self.until:%H:%M}"
        else:  # whole days: the last one shown is the one the range ends in
            start = formats.date_format(self.since, "SHORT_DATE_FORMAT")
            end = formats.date_format(self.until - timedelta(microseconds=1), "SHORT_DATE_FORMAT")
        return _("%(start)s to %(end)s") % {"start": start, "end": end}

    @property
    def unit_name(self) -> str:
        """The bucket's name, for the numbers' table: Hour, Day or Month."""
        return str(UNIT_NAMES[self.unit])

    @property
    def heading(self) -> str:
        return str(HEADINGS[self.unit])


class RangeTooLong(ValueError):
    pass


def live_range(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last 24 hours, in whole hours, the current one included (plant local time):
    the live chart's bars and the counters. The page names it by its start ("since 16:00")."""
    local = timezone.localtime(now or timezone.now()).replace(tzinfo=None)
    hour = local.replace(minute=0, second=0, microsecond=0)
    return hour - timedelta(hours=LIVE_HOURS - 1), hour + timedelta(hours=1)


def chart_range(row_filter: RowFilter, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The history's range; without `from`, the 24 hours up to `to` (or up to now)."""
    until = row_filter.until or live_range(now)[1]
    since = row_filter.since or until - timedelta(hours=LIVE_HOURS)
    return since, until


def unit_for(since: datetime, until: datetime) -> str:
    span = until - since
    return "hour" if span <= HOURLY_UP_TO else "day" if span <= DAILY_UP_TO else "month"


def buckets(since: datetime, until: datetime, unit: str) -> list[datetime]:
    start = _truncate(since, unit)
    found: list[datetime] = []
    while start < until:
        found.append(start)
        if len(found) > MAX_BARS:
            raise RangeTooLong(f"a chart has at most {MAX_BARS} bars")
        start = _next(start, unit)
    return found


def build(
    registry: Registry,
    row_filter: RowFilter,
    since: datetime,
    until: datetime,
    *,
    live: bool,
    scope: scopes.Scope,
) -> Chart:
    unit = unit_for(since, until)
    starts = buckets(since, until, unit)
    ranged = replace(row_filter, since=since, until=until)
    counted = queries.trend(registry, ranged, unit, scope=scope)
    kinds_ = [(kind, n % PATTERNS) for n, kind in enumerate(registry)]
    shown = [(kind, p) for kind, p in kinds_ if row_filter.kind in (None, kind.slug)]
    totals = [sum(counted.per_bucket.get((k.slug, s), 0) for k, _ in shown) for s in starts]
    scale_max = nice_ceiling(max(totals, default=0))
    slot = (WIDTH - LEFT - RIGHT) / max(len(starts), 1)
    every = math.ceil(len(starts) / 12) or 1
    bars = []
    for n, (start, total) in enumerate(zip(starts, totals, strict=True)):
        label = _label(start, unit)
        cumulative = 0.0
        segments = []
        for kind, pattern in shown:
            count = counted.per_bucket.get((kind.slug, start), 0)
            height = count * PLOT_HEIGHT / scale_max
            cumulative += height
            segments.append(
                Segment(kind, pattern, count, BASE - cumulative, height, f"{kind.label}, {label}")
            )
        tick = _tick(start, unit) if n % every == 0 else ""
        x = LEFT + n * slot + slot * 0.1
        top = BASE - cumulative - 3
        bars.append(Bar(_key(start, unit), label, tick, x, slot * 0.8, total, top, segments))
    return Chart(unit, since, until, bars, shown, scale_max, counted.top_cameras, live)


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (at least 4)."""
    if value <= 4:
        return 4
    power = int(10 ** (len(str(value)) - 1))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    raise AssertionError("unreachable")


def _truncate(moment: datetime, unit: str) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    if unit in ("day", "month"):
        moment = moment.replace(hour=0)
    if unit == "month":
        moment = moment.replace(day=1)
    return moment


def _next(start: datetime, unit: str) -> datetime:
    if unit == "hour":
        return start + timedelta(hours=1)
    if unit == "day":
        return start + timedelta(days=1)
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def _key(start: datetime, unit: str) -> str:
    return start.strftime({"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}[unit])


def _label(start: datetime, unit: str) -> str:
    return start.strftime({"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m"}[unit])


def _tick(start: datetime, unit: str) -> str:
    return start.strftime({"hour": "%H:00", "day": "%m-%d", "month": "%Y-%m"}[unit])

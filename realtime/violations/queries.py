"""Reading the kinds' tables: a page of rows newest first, one row, and the counters.

The tables may hold years of rows, so nothing here scans one: pages are keyset-paged by
the sort key (date, time, kind, id; never OFFSET), and the counters count a recent
window. The sort-key expressions are those of the indexes `manage.py create_indexes`
makes (realtime.violations.contract.INDEXES); without them each query still works, slower.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db import ProgrammingError, connection, transaction

from realtime.access.scopes import Scope
from realtime.console.rows import PAGE_SIZE, Cursor, RowFilter, ViolationRow
from realtime.pipeline.changes import violation_state
from realtime.violations import kinds
from realtime.violations.contract import SORT_DATE, SORT_TIME
from realtime.violations.kinds import Kind, Registry

logger = logging.getLogger(__name__)

BIGINT_MAX = 2**63 - 1
# What the product knows of a row, from realtime_acknowledgement a (changes.violation_state).
STATE_COLUMNS = "a.acknowledged_by, a.acknowledged_at, a.note, a.noted_by, a.noted_at"
# Whether a shelf covers a row of a kind's table `t` (sql/008's rule, realtime.console.shelves;
# the planner inlines it into an index probe of realtime_shelf per row).
SHELVED = (
    "EXISTS (SELECT 1 FROM realtime_shelves_covering(t.camera_id,"
    " t.violation_date + t.violation_time))"
)


# A query and its parameters.
Query = tuple[str, Any]


def _read(build: Callable[[list[Kind]], Query], chosen: list[Kind]) -> list[Any]:
    """The rows of the query `build` makes for the kinds `chosen`.

    A kind's table can be gone while the kind is still known (the detectors' team dropped
    it; a kind removed, its table dropped, and this process's kinds a few seconds old):
    then the query is made again for the kinds whose tables exist, and the kinds are read
    again. `manage.py check` names such a kind.
    """
    for attempt in (1, 2):
        query, params = build(chosen)
        try:
            # A savepoint where a transaction is open: the error must not end it.
            guard = transaction.atomic() if connection.in_atomic_block else nullcontext()
            with guard, connection.cursor() as db:
                db.execute(query, params)
                rows: list[Any] = db.fetchall()
                return rows
        except ProgrammingError as exc:
            if attempt == 2 or not isinstance(exc.__cause__, psycopg.errors.UndefinedTable):
                raise
            present = with_tables(chosen)
            logger.warning(
                "a kind's table does not exist; showing the other kinds",
                extra={"kinds": sorted(k.slug for k in chosen if k not in present)},
            )
            kinds.forget()
            if not present:
                return []
            chosen = present
    raise AssertionError("unreachable")


def with_tables(chosen: list[Kind]) -> list[Kind]:
    """Those of `chosen` whose tables exist (a kind's table may be dropped)."""
    with connection.cursor() as db:
        db.execute(
            "SELECT to_regclass(q) IS NOT NULL FROM unnest(%s::text[]) WITH ORDINALITY AS n (q, i)"
            " ORDER BY i",
            [[kind.qualified for kind in chosen]],
        )
        exists = [row[0] for row in db.fetchall()]
    return [kind for kind, there in zip(chosen, exists, strict=True) if there]


@dataclass(frozen=True)
class Page:
    rows: list[ViolationRow]
    # Where the next page starts, or None when this one is the last.
    next_cursor: Cursor | None


def _sort_key(alias: str) -> tuple[str, str, str]:
    return (
        SORT_DATE.replace("violation_date", f"{alias}.violation_date"),
        SORT_TIME.replace("violation_time", f"{alias}.violation_time"),
        f"{alias}.id",
    )


def filter_clauses(row_filter: RowFilter, n: int, scope: Scope) -> list[str]:
    """The filter's and the scope's conditions on a kind's table `t` (the kind's table name
    is %(table_n)s; the scope's cameras %(scope)s, see filter_params)."""
    sort_date, sort_time, _ = _sort_key("t")
    where = ["true"] if scope is None else ["t.camera_id = ANY(%(scope)s::bigint[])"]
    if row_filter.camera is not None:
        where.append("t.camera_id = %(camera)s")
    if row_filter.since is not None:
        where.append(f"({sort_date}, {sort_time}) >= (%(since_date)s::date, %(since_time)s::time)")
        # Implied by the line above; the plain column has statistics (see the counters).
        where.append("t.violation_date >= %(since_date)s::date")
    if row_filter.until is not None:
        where.append(f"({sort_date}, {sort_time}) < (%(until_date)s::date, %(until_time)s::time)")
    if row_filter.unacknowledged or row_filter.acknowledged:
        where.append(
            ("NOT " if row_filter.unacknowledged else "")
            + "EXISTS (SELECT 1 FROM realtime_acknowledgement a"
            f" WHERE a.table_name = %(table_{n})s AND a.violation_id = t.id)"
        )
    return where


def filter_params(row_filter: RowFilter, chosen: list[Kind], scope: Scope) -> dict[str, Any]:
    params: dict[str, Any] = {"camera": row_filter.camera}
    if scope is not None:
        params["scope"] = sorted(scope)
    for name, bound in (("since", row_filter.since), ("until", row_filter.until)):
        if bound is not None:
            params[f"{name}_date"] = bound.date().isoformat()
            params[f"{name}_time"] = bound.time().isoformat()
    for n, kind in enumerate(chosen):
        params[f"kind_{n}"], params[f"table_{n}"] = kind.slug, kind.table
    return params


def _kind_query(
    kind: Kind, row_filter: RowFilter, cursor: Cursor | None, n: int, scope: Scope
) -> str:
    sort_date, sort_time, sort_id = _sort_key("t")
    where = filter_clauses(row_filter, n, scope)
    if cursor is not None:
        # After the cursor in the order (date, time, kind, id) descending.
        if kind.slug == cursor.kind:
            where.append(
                f"({sort_date}, {sort_time}, {sort_id}) < (%(date)s::date, %(time)s::time, %(id)s)"
            )
        elif kind.slug < cursor.kind:
            where.append(f"({sort_date}, {sort_time}) <= (%(date)s::date, %(time)s::time)")
        else:
            where.append(f"({sort_date}, {sort_time}) < (%(date)s::date, %(time)s::time)")
    return (
        f"(SELECT %(kind_{n})s::text AS kind, %(table_{n})s::text AS table_name,"
        # The cursor's text: -infinity and fractions of seconds as PostgreSQL writes them.
        f" to_json({sort_date}) #>> '{{}}' AS sort_date,"
        f" to_json({sort_time}) #>> '{{}}' AS sort_time,"
        f" {sort_date} AS d, {sort_time} AS tm, t.id::bigint AS id, row_to_json(t) AS data,"
        f" {SHELVED} AS shelved"
        f" FROM {kind.qualified} t WHERE {' AND '.join(where)}"
        f" ORDER BY {sort_date} DESC, {sort_time} DESC, {sort_id} DESC LIMIT %(limit)s)"
    )


def page(
    registry: Registry,
    row_filter: RowFilter,
    cursor: Cursor | None = None,
    size: int = PAGE_SIZE,
    *,
    scope: Scope,
) -> Page:
    """The rows after `cursor` (from the newest without one) across the filter's kinds, of
    the cameras of `scope`."""
    chosen = row_filter.kinds(registry)
    if not chosen:
        return Page([], None)

    def build(chosen: list[Kind]) -> Query:
        params = filter_params(row_filter, chosen, scope)
        params["limit"] = size + 1
        if cursor is not None:
            params.update(date=cursor.date, time=cursor.time, id=cursor.id)
        union = " UNION ALL ".join(
            _kind_query(k, row_filter, cursor, n, scope) for n, k in enumerate(chosen)
        )
        query = (
            "SELECT p.kind, p.sort_date, p.sort_time, p.id, p.data, p.shelved,"
            f" {STATE_COLUMNS}"
            f" FROM ({union}) p"
            " LEFT JOIN realtime_acknowledgement a"
            " ON a.table_name = p.table_name AND a.violation_id = p.id"
            # Kinds in byte order, as Python compares the cursor's kind with each (_kind_query).
            ' ORDER BY p.d DESC, p.tm DESC, p.kind COLLATE "C" DESC, p.id DESC LIMIT %(limit)s'
        )
        return query, params

    found = _read(build, chosen)
    rows = [_row(registry.by_slug[r[0]], r[4], *r[5:]) for r in found[:size]]
    next_cursor = None
    if len(found) > size:
        last = found[size - 1]
        next_cursor = Cursor(last[1], last[2], last[0], int(last[3]))
    return Page(rows, next_cursor)


def one(kind: Kind, pk: int, *, scope: Scope) -> ViolationRow | None:
    found = many(kind, [pk], scope=scope) if pk <= BIGINT_MAX else []
    return found[0] if found else None


def named(slug: str, pk: int, *, scope: Scope) -> ViolationRow | None:
    """The violation a URL names (`/violations/KIND/ID/...`): its kind read again first if
    it is new to this process (add_kind); None when there is no such kind or row, or the
    row is not of the scope's cameras (the caller answers 404 for all three alike)."""
    kind = kinds.knowing(slug=slug).by_slug.get(slug)
    return None if kind is None else one(kind, pk, scope=scope)


def many(kind: Kind, pks: list[int], *, scope: Scope) -> list[ViolationRow]:
    """The rows of these ids that exist and are of the scope's cameras, in no order."""
    in_scope = "" if scope is None else " AND t.camera_id = ANY(%s::bigint[])"
    query = (
        f"SELECT row_to_json(t), {SHELVED}, {STATE_COLUMNS}"
        f" FROM {kind.qualified} t LEFT JOIN realtime_acknowledgement a"
        f" ON a.table_name = %s AND a.violation_id = t.id WHERE t.id = ANY(%s::bigint[]){in_scope}"
    )
    params: list[Any] = [kind.table, pks] + ([] if scope is None else [sorted(scope)])
    found = _read(lambda chosen: (query, params), [kind])
    return [_row(kind, *row) for row in found]


def unacknowledged_counts(
    registry: Registry, camera: int | None, since: datetime, until: datetime, *, scope: Scope
) -> dict[str, int]:
    """Per kind: violations from `since` to `until` (not included; the plant's local time,
    as the detectors write it: DJANGO_TIME_ZONE) that nobody has acknowledged and no shelf
    covers."""
    kinds_ = list(registry)
    if not kinds_:
        return {}
    sort_date, sort_time, _ = _sort_key("t")

    def build(chosen: list[Kind]) -> Query:
        params: dict[str, Any] = {
            "date": since.date().isoformat(),
            "time": since.time().isoformat(),
            "until_date": until.date().isoformat(),
            "until_time": until.time().isoformat(),
            "camera": camera,
            "scope": None if scope is None else sorted(scope),
        }
        parts = []
        for n, kind in enumerate(chosen):
            params[f"kind_{n}"], params[f"table_{n}"] = kind.slug, kind.table
            camera_clause = " AND t.camera_id = %(camera)s" if camera is not None else ""
            if scope is not None:
                camera_clause += " AND t.camera_id = ANY(%(scope)s::bigint[])"
            parts.append(
                f"SELECT %(kind_{n})s::text, count(*) FROM {kind.qualified} t"
                f" WHERE ({sort_date}, {sort_time}) >= (%(date)s::date, %(time)s::time)"
                f" AND ({sort_date}, {sort_time}) < (%(until_date)s::date, %(until_time)s::time)"
                f"{camera_clause}"
                # Implied by the line above; the plain column has statistics, so the planner
                # knows the window is small even before the index's expressions are analysed.
                " AND t.violation_date >= %(date)s::date"
                " AND NOT EXISTS (SELECT 1 FROM realtime_acknowledgement a"
                f" WHERE a.table_name = %(table_{n})s AND a.violation_id = t.id)"
                f" AND NOT {SHELVED}"
            )
        return " UNION ALL ".join(parts), params

    return {slug: int(count) for slug, count in _read(build, kinds_)}


def _row(kind: Kind, data: dict[str, Any], shelved: bool, *state: Any) -> ViolationRow:
    """A row from its JSON, SHELVED and the STATE_COLUMNS."""
    return ViolationRow.from_data(kind, data, violation_state(*state), shelved=bool(shelved))


@dataclass(frozen=True)
class Trend:
    # (kind slug, start of the bucket) -> violations
    per_bucket: dict[tuple[str, datetime], int]
    # (camera, violations), most first, at most `cameras` of them
    top_cameras: list[tuple[Any, int]]


def trend(
    registry: Registry, row_filter: RowFilter, unit: str, cameras: int = 5, *, scope: Scope
) -> Trend:
    """Violations per kind and `unit` (hour, day, month) in the filter's range, and the
    cameras with the most: one scan of each kind's range (GROUPING SETS)."""
    chosen = row_filter.kinds(registry)
    if not chosen:
        return Trend({}, [])
    assert unit in ("hour", "day", "month")
    sort_date, sort_time, _ = _sort_key("t")
    bucket = f"date_trunc('{unit}', {sort_date} + {sort_time})"

    def build(chosen: list[Kind]) -> Query:
        parts = [
            f"SELECT %(kind_{n})s::text, {bucket}, t.camera_id::bigint, count(*),"
            f" grouping(t.camera_id) FROM {kind.qualified} t"
            f" WHERE {' AND '.join(filter_clauses(row_filter, n, scope))}"
            f" GROUP BY GROUPING SETS (({bucket}), (t.camera_id))"
            for n, kind in enumerate(chosen)
        ]
        return " UNION ALL ".join(parts), filter_params(row_filter, chosen, scope)

    found = _read(build, chosen)
    per_bucket: dict[tuple[str, datetime], int] = {}
    per_camera: dict[Any, int] = {}
    for slug, start, camera, count, by_bucket in found:
        if by_bucket:
            per_bucket[slug, start] = int(count)
        else:
            per_camera[camera] = per_camera.get(camera, 0) + int(count)
    ranked = sorted(per_camera.items(), key=lambda item: (-item[1], item[0] is None, item[0] or 0))
    return Trend(per_bucket, ranked[:cameras])

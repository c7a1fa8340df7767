"""/history/export.csv: the history's filtered rows as CSV, streamed in keyset batches.

The rows are read as the history pages them (realtime.violations.queries.page, newest first), a
batch at a time, each batch written before the next is read, and the server waits while
the client has more than REALTIME_CLIENT_MAX_BUFFER unread (Daphne would buffer the rest
in memory): a million rows are never held at once. Each batch is its own query, so a row
written during a download appears in it if it sorts after the batch being read; no row
appears twice.

The file is UTF-8 with a byte-order mark (`?bom=0` leaves it out): Excel reads a CSV
without one in the computer's legacy code page and garbles every non-ASCII character;
LibreOffice, Google Sheets, Python's `csv` (with `encoding="utf-8-sig"`) and pandas read
it either way. RFC 4180 (the csv module: CRLF line ends, quotes where needed). Dates and
times are ISO, as the detectors wrote them (fractions of a second kept; plant local
time); `acknowledged_at` is ISO with its offset, in the plant's time zone.

A cell a spreadsheet program would run as a formula (text starting with =, +, -, @, a tab
or a carriage return; OWASP's "CSV injection") gets a leading ' so that it is read as
text: the detectors' columns hold whatever a detector wrote. A plain number (-3, -2.5,
1e-06) is data and is written as it is, whatever its column. `?formulas=raw` writes every
value as it is, for a program that asks with its token in the Authorization header: a link
can carry a session cookie or `?token=`, never a header, so no link makes a person's
spreadsheet download formulas from the product's own address.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from realtime.access import scopes
from realtime.access.auth import TOKEN_ID_ATTR, accepts_token
from realtime.console.history import history_filter
from realtime.console.rows import Cursor, InvalidFilter, RowFilter, ViolationRow
from realtime.streams import server_internals
from realtime.violations import kinds, queries
from realtime.violations.contract import REQUIRED_COLUMNS
from realtime.violations.kinds import Kind, Registry

logger = logging.getLogger(__name__)

COLUMNS = (
    "kind",
    "table",
    "id",
    "camera_id",
    "violation_date",
    "violation_time",
    "violation_image",
    "acknowledged_by",
    "acknowledged_at",
)
BATCH_ROWS = 2000
BOM = "\ufeff"
# OWASP's list: what a spreadsheet program may read as the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def as_text(value: str) -> str:
    """`value` as a cell no spreadsheet program runs: a leading ' if it could start a formula
    and is not a plain number."""
    if value.startswith(FORMULA_STARTS) and PLAIN_NUMBER.fullmatch(value) is None:
        return "'" + value
    return value


class _Line:
    """A file for csv.writer that hands back each line instead of keeping it."""

    def write(self, line: str) -> str:
        return line


def extra_columns(chosen: list[Kind]) -> list[str]:
    """The detectors' other columns of the kinds exported: each kind's in its table's
    order, kinds in their order on the page, each name once."""
    if not chosen:
        return []
    with connection.cursor() as db:
        db.execute(
            "SELECT a.attname FROM unnest(%s::text[]) WITH ORDINALITY AS k(name, n)"
            " JOIN pg_attribute a ON a.attrelid = to_regclass(k.name)"
            " WHERE a.attnum > 0 AND NOT a.attisdropped ORDER BY k.n, a.attnum",
            [[kind.qualified for kind in chosen]],
        )
        names = [row[0] for row in db.fetchall()]
    return list(dict.fromkeys(name for name in names if name not in REQUIRED_COLUMNS))


def csv_values(row: ViolationRow, extra: list[str], *, raw: bool = False) -> list[str]:
    acknowledged_at = (
        timezone.localtime(row.acknowledged_at).isoformat() if row.acknowledged_at else ""
    )
    own = dict(row.extra)
    values = [
        row.kind.slug,
        row.kind.table,
        "" if row.id is None else str(row.id),
        "" if row.camera_id is None else str(row.camera_id),
        row.date_text,
        row.time_text,
        row.violation_image,
        row.acknowledged_by,
        acknowledged_at,
        *(own.get(name, "") for name in extra),
    ]
    return values if raw else [as_text(value) for value in values]


@sync_to_async
def _next_batch(
    registry: Registry,
    row_filter: RowFilter,
    cursor: Cursor | None,
    extra: list[str],
    scope: scopes.Scope,
    raw: bool,
) -> tuple[bytes, Cursor | None]:
    """A batch read and written as CSV in a thread (off the event loop: 2,000 rows take tens
    of milliseconds to format), and where the next one starts. The database connection
    goes back to the pool after each batch: a slow download holds none while it waits."""
    writer = csv.writer(_Line())
    try:
        batch = queries.page(registry, row_filter, cursor, BATCH_ROWS, scope=scope)
        text = "".join(writer.writerow(csv_values(row, extra, raw=raw)) for row in batch.rows)
        return text.encode(), batch.next_cursor
    finally:
        connection.close()


async def csv_chunks(
    registry: Registry,
    row_filter: RowFilter,
    extra: list[str],
    *,
    scope: scopes.Scope,
    bom: bool,
    raw: bool = False,
    pending: server_internals.PendingBytes | None = None,
) -> AsyncIterator[bytes]:
    """The header, then one chunk per batch of rows; stops early if the client stops reading."""
    writer = csv.writer(_Line())
    header = [*COLUMNS, *(name if raw else as_text(name) for name in extra)]
    yield ((BOM if bom else "") + writer.writerow(header)).encode()
    cursor: Cursor | None = None
    while True:
        chunk, cursor = await _next_batch(registry, row_filter, cursor, extra, scope, raw)
        yield chunk
        if cursor is None:
            return
        limit = settings.REALTIME_CLIENT_MAX_BUFFER
        patience = settings.REALTIME_CLIENT_STALL_TIMEOUT
        if not await server_internals.drained(pending, limit, patience):
            logger.warning("ending a CSV export whose client stopped reading")
            return


@accepts_token
@login_required
@require_GET
def export_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    try:
        row_filter = history_filter(request.GET)
    except InvalidFilter as exc:
        return HttpResponse(f"Bad filter: {exc}\n", status=400, content_type="text/plain")
    raw_bom = request.GET.get("bom") or "1"
    if raw_bom not in ("0", "1"):
        return HttpResponse("bom must be 0 or 1\n", status=400, content_type="text/plain")
    formulas = request.GET.get("formulas") or "escape"
    if formulas not in ("escape", "raw"):
        return HttpResponse(
            "formulas must be escape or raw\n", status=400, content_type="text/plain"
        )
    if formulas == "raw" and not _token_in_header(request):
        return HttpResponse(
            "formulas=raw needs a token in the Authorization header (Bearer): a link must"
            " not make a spreadsheet download cells it would run\n",
            status=400,
            content_type="text/plain",
        )
    registry = kinds.registry()
    extra = extra_columns(row_filter.kinds(registry))
    pending = getattr(request, "scope", {}).get(server_internals.SCOPE_KEY)
    response = StreamingHttpResponse(
        csv_chunks(
            registry,
            row_filter,
            extra,
            scope=scopes.of_user(request.user),
            bom=raw_bom == "1",
            raw=formulas == "raw",
            pending=pending,
        ),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename(row_filter)}"'
    response["Cache-Control"] = "no-store"
    return response


def _token_in_header(request: HttpRequest) -> bool:
    """Whether a valid token authenticated the request from its Authorization header (which
    realtime.access.auth prefers to `?token=`)."""
    scheme = request.headers.get("Authorization", "").partition(" ")[0]
    return scheme.lower() == "bearer" and getattr(request, TOKEN_ID_ATTR, None) is not None


def filename(row_filter: RowFilter) -> str:
    """violations[-KIND][-camera-N][-FROM][-to-TO].csv: ASCII only, no quotes."""
    parts: list[Any] = ["violations"]
    if row_filter.kind:
        parts.append(row_filter.kind)
    if row_filter.camera is not None:
        parts.append(f"camera-{row_filter.camera}")
    if row_filter.since is not None:
        parts.append(row_filter.since.strftime("%Y%m%dT%H%M"))
    if row_filter.until is not None:
        parts.append("to-" + row_filter.until.strftime("%Y%m%dT%H%M"))
    return "-".join(str(part) for part in parts) + ".csv"

"""/history/export.csv on real PostgreSQL: the history's rows, every column, as CSV that
Python's csv module reads back (the 100,000-row download over Daphne is in
tests/test_history_browser.py)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tests.history_rows import TABLES, acknowledge, all_pages, expected, insert

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # The export streams asynchronously, as Daphne reads it; the test client is synchronous.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous"),
]


def read_csv(response: Any) -> tuple[list[str], list[dict[str, str]]]:
    assert response.status_code == 200, response.content
    body = b"".join(response)
    assert body.startswith(b"\xef\xbb\xbf"), "a byte-order mark, for spreadsheet programs"
    reader = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    header = next(reader)
    return header, [dict(zip(header, line, strict=True)) for line in reader]


def test_the_export_parses_back_to_the_same_rows(pg, historian, made_rows) -> None:
    hostile = insert(
        pg,
        "fire",
        "2025-03-02",
        "07:00:00.5",
        9,
        temperature=None,
        zone='a "quoted", line\nbreak é',
    )
    acknowledge(pg, "fire", hostile, by="Zoë")
    response = historian.get("/history/export.csv?from=2025-03-02&to=2025-03-04")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="violations-20250302T0000-to-20250305T0000.csv"'
    )
    header, lines = read_csv(response)
    assert header == [
        "kind", "table", "id", "camera_id", "violation_date", "violation_time",
        "violation_image", "acknowledged_by", "acknowledged_at", "temperature", "zone", "tags",
    ]  # fmt: skip
    wanted = [r for r in made_rows if "2025-03-02" <= (r[2] or "") <= "2025-03-04"]
    wanted.append(("fire", hostile, "2025-03-02", "07:00:00.5", 9, True))
    assert [(line["kind"], int(line["id"])) for line in lines] == expected(wanted)
    acks = dict(
        pg.execute(
            "SELECT table_name || '/' || violation_id, acknowledged_at"
            " FROM realtime_acknowledgement"
        ).fetchall()
    )
    by_key = {(r[0], r[1]): r for r in wanted}
    for line in lines:
        kind, pk, day, time, camera, acknowledged = by_key[line["kind"], int(line["id"])]
        assert line["acknowledged_by"] == (
            ("Zoë" if (kind, pk) == ("fire", hostile) else "anna") if acknowledged else ""
        )
        assert line["table"] == TABLES[kind]
        assert line["camera_id"] == str(camera)
        assert line["violation_date"] == day
        # As the detectors wrote it, fractions of a second included.
        written = time or ""
        assert line["violation_time"] == (written.rstrip("0") if "." in written else written)
        assert line["violation_image"] == f"/media/{kind}-{day}-{time}.jpg"
        ack_at = acks.get(f"{TABLES[kind]}/{pk}")
        assert line["acknowledged_at"] == (timezone.localtime(ack_at).isoformat() if ack_at else "")
        assert datetime.fromisoformat(line["acknowledged_at"] or "2025-01-01T00:00+00:00").tzinfo
        if kind != "fire":
            assert line["temperature"] == line["zone"] == line["tags"] == ""
    hostile_line = next(
        line for line in lines if line["id"] == str(hostile) and line["kind"] == "fire"
    )
    assert hostile_line["zone"] == 'a "quoted", line\nbreak é'
    assert hostile_line["acknowledged_by"] == "Zoë"
    assert hostile_line["temperature"] == ""


def test_the_export_takes_the_history_filters_and_a_token(pg, historian, made_rows, token) -> None:
    query = "kind=loto&camera=2&acknowledged=1"
    _, lines = read_csv(
        Client().get(f"/history/export.csv?{query}", headers={"Authorization": f"Bearer {token}"})
    )
    assert [(line["kind"], int(line["id"])) for line in lines] == all_pages(historian, query)
    assert Client().get("/history/export.csv").status_code == 302
    body = b"".join(historian.get("/history/export.csv?kind=human&bom=0"))
    assert body.startswith(b"kind,table,id,")


async def test_an_export_holds_no_database_connection_while_it_waits(pg, monkeypatch) -> None:
    """A slow download waits between batches: with a pooled connection held meanwhile, ten
    of them would take every connection of the process (REALTIME_DB_POOL_SIZE)."""
    from asgiref.sync import sync_to_async
    from django.db import connection

    from realtime import export, kinds
    from realtime.rows import RowFilter

    monkeypatch.setattr(export, "BATCH_ROWS", 2)
    for n in range(5):
        insert(pg, "ppe", "2025-03-01", f"10:00:0{n}", n)

    def in_use() -> int:
        stats = connection.pool.get_stats()
        return int(stats["pool_size"] - stats.get("pool_available", 0))

    before = await sync_to_async(in_use)()
    registry = await sync_to_async(kinds.registry)()
    chunks = export.csv_chunks(registry, RowFilter(), [], scope=None, bom=False)
    await anext(chunks)  # the header
    assert (await anext(chunks)).count(b"\r\n") == 2
    assert await sync_to_async(in_use)() == before, "no connection held between batches"
    rest = [chunk async for chunk in chunks]
    assert b"".join(rest).count(b"\r\n") == 3

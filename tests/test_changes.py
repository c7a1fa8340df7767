"""Frames longer than a client takes: reduced, with a link to the row's page from the kinds
in the database (the payload and the frame's shape in tests/unit/test_changes.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from realtime.pipeline import changes
from realtime.pipeline.changes import acknowledgement_frame, encode_frame
from realtime.violations import kinds


def human(
    data: dict[str, Any], op: str = "INSERT", table: str = "violation_humandetections"
) -> Any:
    return {"id": 9, "table": table, "op": op, "data": data}


ROW = {"id": 41, "camera_id": 3, "violation_date": "2026-01-02", "violation_time": "10:11:12"}


def test_a_frame_within_the_limit_is_sent_whole(settings) -> None:
    settings.REALTIME_FRAME_MAX_BYTES = 64 * 1024
    row = {**ROW, "violation_image": "/media/" + "w" * 60_000}
    assert json.loads(encode_frame(human(row))) == human(row)


@pytest.mark.django_db
def test_a_frame_too_long_leaves_out_its_largest_columns_and_links_the_page(settings) -> None:
    kinds.registry()
    settings.REALTIME_FRAME_MAX_BYTES = 64 * 1024
    # Bytes, not characters: 25,000 euro signs are 75,000 bytes in UTF-8.
    row = {**ROW, "violation_image": "€" * 25_000, "boxes": "b" * 30_000, "score": 0.9}
    text = encode_frame(human(row))
    assert len(text.encode()) <= 64 * 1024
    assert json.loads(text) == {
        "id": 9,
        "table": "violation_humandetections",
        "op": "INSERT",
        "data": {**ROW, "boxes": "b" * 30_000, "score": 0.9},
        "truncated": True,
        "omitted": ["violation_image"],
        "links": {"page": "/violations/human/41/"},
    }
    # Both left out when one is not enough; named in the table's order.
    row["boxes"] = "b" * 70_000
    assert json.loads(encode_frame(human(row)))["omitted"] == ["violation_image", "boxes"]


@pytest.mark.django_db
def test_a_reduced_frame_keeps_the_key_last_and_links_only_a_row_that_is_there(settings) -> None:
    kinds.registry()
    settings.REALTIME_FRAME_MAX_BYTES = 16 * 1024
    many = {**ROW, **{f"c{n}": "x" * 900 for n in range(40)}, "violation_image": "/m/" + "y" * 9000}
    reduced = json.loads(encode_frame(human(many)))
    assert {**ROW}.items() <= reduced["data"].items()
    assert len(encode_frame(human(many)).encode()) <= 16 * 1024
    assert reduced["omitted"][-1] == "violation_image" and reduced["truncated"] is True
    # A DELETE's row is gone; a watched table that is no kind has no page.
    assert json.loads(encode_frame(human(many, op="DELETE")))["links"] == {}
    assert json.loads(encode_frame(human(many, table="other_table")))["links"] == {}
    # An acknowledgement of a reduced change still names its row.
    acknowledged: Any = {**json.loads(encode_frame(human(many, op="STATE"))), "state": None}
    ack = acknowledgement_frame(acknowledged)
    assert json.loads(ack)["row_id"] == 41


@pytest.mark.django_db
def test_reduced_frames_are_counted_and_told_once_a_minute(settings, caplog, monkeypatch) -> None:
    from prometheus_client import REGISTRY

    settings.REALTIME_FRAME_MAX_BYTES = 16 * 1024
    monkeypatch.setattr(changes, "_reduced_changes", changes.ReducedChanges())
    labels = {"table": "violation_humandetections"}
    before = REGISTRY.get_sample_value("realtime_frames_reduced_total", labels) or 0.0
    big = human({**ROW, "violation_image": "z" * 20_000})
    with caplog.at_level("WARNING", logger="realtime.pipeline.changes"):
        for _ in range(3):
            encode_frame(big)
        encode_frame(human(ROW))
    assert REGISTRY.get_sample_value("realtime_frames_reduced_total", labels) == before + 3
    told = [r for r in caplog.records if "reduced form" in r.getMessage()]
    assert len(told) == 1 and told[0].omitted == ["violation_image"]

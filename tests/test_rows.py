"""Rows: filters, channels, and the `<tr>` fragment (escaped, one line)."""

from __future__ import annotations

import re

import pytest
from django.http import QueryDict

from realtime.console.rows import InvalidFilter, RowFilter, ViolationRow, render_row
from realtime.streams import names
from realtime.violations import kinds

# Filters and rows know the kinds from the database (realtime_kind).
pytestmark = pytest.mark.django_db


def change(**data: object) -> dict[str, object]:
    row = {
        "id": 7,
        "camera_id": 3,
        "violation_date": "2025-07-28",
        "violation_time": "15:00:00",
        "violation_image": "/media/a.jpg",
    }
    row.update(data)
    return {"id": 42, "table": "violation_ppedetections", "op": "INSERT", "data": row}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", RowFilter()),
        ("kind=ppe", RowFilter("ppe")),
        ("camera=3", RowFilter(None, 3)),
        ("kind=human&camera=0", RowFilter("human", 0)),
        ("kind=&camera=", RowFilter()),
    ],
)
def test_filters_from_the_url(query: str, expected: RowFilter) -> None:
    assert RowFilter.from_query(QueryDict(query)) == expected


@pytest.mark.parametrize(
    "query", ["kind=cars", "camera=x", "camera=-1", "camera=1e3", "camera=" + "9" * 30]
)
def test_unknown_filters_are_refused(query: str) -> None:
    with pytest.raises(InvalidFilter):
        RowFilter.from_query(QueryDict(query))


def test_a_row_belongs_to_every_channel_whose_filter_keeps_it() -> None:
    assert sorted(names.rows_streams_for("table", "ppe", 3)) == [
        "table/*/*",
        "table/*/3",
        "table/ppe/*",
        "table/ppe/3",
    ]
    assert sorted(names.rows_streams_for("admin", "ppe", None)) == ["admin/*/*", "admin/ppe/*"]
    for channel in names.rows_streams_for("table", "ppe", 3):
        layout, kind, camera = names.parse_rows(channel)
        row_filter = RowFilter(kind, camera)
        assert layout == "table" and row_filter.stream_name("table") == channel


def test_fragment_is_one_escaped_line() -> None:
    row = ViolationRow.from_change(
        change(violation_image="/x/<script>alert(1)</script>\nnext"), kinds.registry()
    )
    assert row is not None
    html = render_row(row, live=True)
    assert "\n" not in html and "\r" not in html
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#10;next" in html
    assert html.startswith('<tr id="violation-ppe-7"')
    assert 'data-event-id="42"' in html and 'data-op="INSERT"' in html and "is-new" in html


@pytest.mark.parametrize(
    ("image", "href"),
    [
        ("/media/a.jpg", "/media/a.jpg"),
        ("/media/caméra 7.jpg", None),  # a space: a browser would make it another URL
        ("/media/caméra-7.jpg", "/media/caméra-7.jpg"),
        ("https://cams.example/a.jpg", None),  # another origin: text only
        ("javascript:alert(1)", None),
        ("//evil.example/a.jpg", None),
        ("data:text/html,<b>", None),
    ],
)
def test_only_plain_paths_on_this_origin_become_links(image: str, href: str | None) -> None:
    row = ViolationRow.from_change(change(violation_image=image), kinds.registry())
    assert row is not None and row.image_href == href
    if href is None:
        # No link is made of the value itself: a row links only to the violation's own URLs
        # (its page, its image and thumbnail, realtime.console.media), never to what the detector
        # wrote.
        links = re.findall(r'(?:href|src)="([^"]*)"', render_row(row))
        assert all(link.startswith("/violations/ppe/7/") for link in links), links


def test_rows_of_other_tables_are_not_violations() -> None:
    assert (
        ViolationRow.from_change({**change(), "table": "forklift_events"}, kinds.registry()) is None
    )


def test_nulls_render_as_empty_cells() -> None:
    row = ViolationRow.from_change(
        change(camera_id=None, violation_date=None, violation_time=None, violation_image=None),
        kinds.registry(),
    )
    assert row is not None
    assert "None" not in render_row(row) and "None" not in render_row(row, "admin")


def test_empty_columns_of_the_detectors_are_left_out_of_the_admins_rows() -> None:
    row = ViolationRow.from_change(
        change(confidence=None, zone="", lock=0, tags=[]), kinds.registry()
    )
    assert row is not None
    assert row.extra_text == "lock: 0 · tags: []"
    assert row.filled_extra == (("lock", "0"), ("tags", "[]"))
    assert row.empty_extra == ["confidence", "zone"]
    html = render_row(row, "admin")
    assert 'class="field-other_columns">lock: 0 · tags: []</td>' in html
    assert "confidence" not in html and "zone" not in html
    nothing = ViolationRow.from_change(change(confidence=None), kinds.registry())
    assert nothing is not None
    assert 'class="field-other_columns">-</td>' in render_row(nothing, "admin")
    # The live table's row leaves them all to the detail.
    assert "confidence" not in render_row(row) and "lock" not in render_row(row)

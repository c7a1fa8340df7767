"""The payload the listener accepts, the frame every client receives, the reconnect backoff
(frames too long for a client, reduced with the kinds' pages, in tests/test_changes.py)."""

from __future__ import annotations

import json

import pytest

from realtime.pipeline.changes import InvalidPayload, encode_frame, parse_notify_payload
from realtime.pipeline.retry import backoff_delay


def test_full_payload_is_accepted() -> None:
    raw = '{"id": 7, "table": "violation_ppedetections", "op": "UPDATE", "data": {"id": 3}}'
    assert parse_notify_payload(raw) == {
        "id": 7,
        "table": "violation_ppedetections",
        "op": "UPDATE",
        "data": {"id": 3},
    }


def test_payload_without_data_means_read_the_log() -> None:
    payload = parse_notify_payload('{"id": 7, "table": "t", "op": "INSERT"}')
    assert "data" not in payload


def test_statement_notice_is_accepted() -> None:
    raw = (
        '{"table": "t", "op": "DELETE", "first_id": 10, "last_id": 250, "rows": 200,'
        ' "xid": "7781", "written_at": 1.5}'
    )
    assert parse_notify_payload(raw) == {
        "table": "t",
        "op": "DELETE",
        "first_id": 10,
        "last_id": 250,
        "rows": 200,
        "xid": "7781",
        "written_at": 1.5,
    }


@pytest.mark.parametrize(
    "raw",
    [
        "hello",
        "[1, 2]",
        '{"table": "t", "op": "INSERT"}',
        '{"id": "7", "table": "t", "op": "INSERT"}',
        '{"id": true, "table": "t", "op": "INSERT"}',
        '{"id": 0, "table": "t", "op": "INSERT"}',
        '{"id": 7, "op": "INSERT"}',
        '{"id": 7, "table": "t", "op": "TRUNCATE"}',
        '{"id": 7, "table": "t", "op": "INSERT", "data": [1]}',
        # Statement notices (sql/004): a range of ids written by one transaction.
        '{"table": "t", "op": "INSERT", "first_id": 5, "last_id": 4, "rows": 2, "xid": "9"}',
        '{"table": "t", "op": "INSERT", "first_id": 0, "last_id": 4, "rows": 5, "xid": "9"}',
        '{"table": "t", "op": "INSERT", "first_id": 1, "last_id": 4, "rows": 4, "xid": 9}',
        '{"table": "t", "op": "INSERT", "first_id": 1, "last_id": 4, "rows": 4, "xid": "9; --"}',
        '{"table": "t", "op": "INSERT", "first_id": 1, "last_id": "4", "rows": 4, "xid": "9"}',
        '{"op": "INSERT", "first_id": 1, "last_id": 4, "rows": 4, "xid": "9"}',
    ],
)
def test_unreadable_payloads_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPayload):
        parse_notify_payload(raw)


def test_frame_is_one_line_of_the_documented_shape() -> None:
    frame = encode_frame(
        {
            "id": 1,
            "table": "violation_humandetections",
            "op": "INSERT",
            "data": {"violation_image": "line one\nline two\u2028<script>"},
        }
    )
    assert "\n" not in frame and "\r" not in frame
    assert json.loads(frame) == {
        "id": 1,
        "table": "violation_humandetections",
        "op": "INSERT",
        "data": {"violation_image": "line one\nline two\u2028<script>"},
    }


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    delays = [backoff_delay(attempt, 0.5, 30.0) for attempt in range(12)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(15.0 <= d <= 30.0 for d in delays[7:])
    assert backoff_delay(10_000, 0.5, 30.0) <= 30.0

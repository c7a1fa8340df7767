"""Cameras as a site's ranges (realtime.access.scopes) and as a stream name's suffix
(realtime.streams.names); who sees what is in tests/test_sites.py."""

from __future__ import annotations

import pytest

from realtime.access import scopes
from realtime.streams import names


def test_cameras_are_written_as_ranges_and_read_back() -> None:
    assert scopes.parse_cameras("1,2,5-9, 12 - 13") == [1, 2, 5, 6, 7, 8, 9, 12, 13]
    assert scopes.format_cameras([9, 1, 2, 3, 7, 5, 6]) == "1-3,5-7,9"
    assert scopes.parse_cameras("") == []
    for bad in ("1,x", "5-1", "1-2000000000", "99999999999", "1;2"):
        with pytest.raises(scopes.BadCameras):
            scopes.parse_cameras(bad)
    assert names.split("table/*/*~1-3,7") == ("table/*/*", frozenset({1, 2, 3, 7}))
    assert names.split("violations") == ("violations", None)
    assert names.split("violations~none") == ("violations", frozenset())
    with pytest.raises(names.BadStreamName):
        names.split("violations~3,1-2")  # not as the server writes it

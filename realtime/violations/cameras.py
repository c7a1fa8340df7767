"""What a camera is: one rule for every path that reads, filters or names by camera.

Detectors write `camera_id` as an integer column; the product takes a camera number from a
URL, a form, a stream's name or a site's ranges, always as ASCII digits ("²".isdigit() is
true, and int("²") raises) of at most a PostgreSQL integer.
"""

from __future__ import annotations

import re
from typing import Any

MAX_CAMERA = 2**31 - 1
# ASCII digits, and the length first: int() of thousands of digits is an error of its own.
CAMERA = re.compile(r"[0-9]{1,10}", re.ASCII)


class BadCamera(ValueError):
    pass


def parse(text: str) -> int:
    """A camera number written as text (BadCamera when it is not one)."""
    if CAMERA.fullmatch(text) is None or int(text) > MAX_CAMERA:
        raise BadCamera(f"not a camera number: {text[:20]!r}")
    return int(text)


def of(row: Any) -> int | None:
    """The camera of a row as `row_to_json` wrote it (None: no camera, or not a number)."""
    camera = (row or {}).get("camera_id") if isinstance(row, dict) else None
    return camera if is_camera(camera) else None


def is_camera(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

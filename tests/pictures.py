"""Pictures as a detector saves them, and a media root of the test's own (the settings point
at it); tests/test_media.py, tests/test_media_browser.py and tests/unit/test_media_files.py."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image


def camera_frame(size: tuple[int, int] = (1920, 1080), **save: Any) -> bytes:
    """A JPEG with a camera's amount of detail (noise on a gradient), as a detector saves."""
    noise = Image.effect_noise(size, 40)
    gradient = Image.linear_gradient("L").resize(size)
    frame = Image.merge("RGB", (noise, gradient, Image.blend(noise, gradient, 0.5)))
    out = io.BytesIO()
    frame.save(out, "JPEG", quality=85, **save)
    return out.getvalue()


@pytest.fixture
def media_root(tmp_path: Path, settings: Any) -> Path:
    root = tmp_path / "media"
    (root / "cam07").mkdir(parents=True)
    # A real picture beside the root: what an escape would serve if the checks let it.
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.jpg").write_bytes(camera_frame((64, 48)))
    settings.REALTIME_MEDIA_ROOT = root
    settings.REALTIME_THUMBNAIL_DIR = tmp_path / "thumbnails"
    settings.REALTIME_MEDIA_PREFIX = "/media/"
    settings.REALTIME_MEDIA_BASE_URL = ""
    settings.REALTIME_MEDIA_ACCEL_REDIRECT = ""
    return root

"""The detectors' images: never a file from outside the media root, whatever the name or a
race on the way to it (the images served by violation in tests/test_media.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from realtime.console import media
from tests.pictures import camera_frame


def test_names_with_nul_or_backslashes_name_no_file(media_root) -> None:
    # PostgreSQL's text cannot hold NUL; the check is on the way to the file system all the same.
    for image in ("/media/cam07/a\x00.jpg", "/media/cam07\\..\\..\\x.jpg", "/media/", "/media/./a"):
        assert media.relative_name(image) is None
        with pytest.raises(media.Unavailable):
            media.open_source(image)
    assert (
        media.relative_name("/media/cam07/2026-12-01/101112.jpg") == "cam07/2026-12-01/101112.jpg"
    )


def test_a_directory_swapped_for_a_symlink_after_the_check_serves_nothing_outside(
    media_root, monkeypatch
) -> None:
    """The path is resolved and checked, then opened: a directory of it replaced by a
    symlink out of the root in between (O_NOFOLLOW guards only the last part) must not
    lead to the file outside."""
    (media_root / "cam07" / "frame.jpg").write_bytes(camera_frame((64, 48)))
    outside = media_root.parent / "outside"
    real_open = os.open
    swapped: list[Any] = []

    def swap_then_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith("cam07/frame.jpg") and not swapped:
            swapped.append(path)
            (media_root / "cam07" / "frame.jpg").unlink()
            (media_root / "cam07").rmdir()
            (outside / "frame.jpg").write_bytes(camera_frame((32, 24)))
            (media_root / "cam07").symlink_to(outside, target_is_directory=True)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", swap_then_open)
    with pytest.raises(media.Unavailable):
        media.open_source("/media/cam07/frame.jpg")
    assert swapped, "the directory was swapped between the check and the open"

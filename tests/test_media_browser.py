"""The rows' thumbnails in a real browser: Chromium (Debian's), Playwright, a real Daphne
serving the images from a media root of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests import browsing
from tests.browsing import expect_live
from tests.helpers import Stack, insert_violation
from tests.pictures import camera_frame

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PASSWORD = browsing.PASSWORD


@pytest.fixture(scope="module")
def media_root(tmp_path_factory: Any) -> Path:
    root: Path = tmp_path_factory.mktemp("media")
    (root / "cam07").mkdir()
    (root / "cam07" / "101112.jpg").write_bytes(camera_frame((1280, 960)))
    (root / "cam07" / "live.jpg").write_bytes(camera_frame((1920, 1080)))
    (root / "cam07" / "escape.jpg").symlink_to("/etc/passwd")
    return root


@pytest.fixture(scope="module")
def stack(database_url: str, media_root: Path, tmp_path_factory: Any) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("media-browser")
    stack = Stack.start(
        "memory",
        database_url,
        None,
        logs,
        REALTIME_MEDIA_ROOT=str(media_root),
        REALTIME_THUMBNAIL_DIR=str(logs / "thumbnails"),
    )
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def operator() -> Any:
    return browsing.browser_user("operator")


def thumbnail(page: Page, row_id: int, kind: str = "human") -> Any:
    return page.locator(f"#violation-{kind}-{row_id} img.thumbnail")


def natural_size(page: Page, row_id: int) -> tuple[int, int]:
    locator = thumbnail(page, row_id)
    locator.scroll_into_view_if_needed()  # loading="lazy"
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=locator.element_handle(), timeout=10_000
    )
    size = locator.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    return int(size[0]), int(size[1])


def test_thumbnails_load_for_files_under_the_root_and_placeholders_elsewhere(
    stack, operator, page, pg
) -> None:
    present = insert_violation(pg, camera_id=7, image="/media/cam07/101112.jpg")
    missing = insert_violation(pg, camera_id=7, image="/media/cam07/missing.jpg")
    escape = insert_violation(pg, camera_id=7, image="/media/cam07/escape.jpg")
    browsing.log_in(page, stack.http, "/", "operator", PASSWORD)
    expect_live(page)

    assert natural_size(page, present) == (320, 240), "a thumbnail, at most 320 px wide"
    # The placeholder (an SVG of 320x180) is drawn where the file is missing or escapes.
    assert natural_size(page, missing) == (320, 180)
    assert natural_size(page, escape) == (320, 180)
    row = page.locator(f"#violation-human-{present}")
    expect(row.locator(".field-image")).to_contain_text("/media/cam07/101112.jpg")
    # The time cell's text, without the row's age beside it ("16:15:42 just now").
    cells = [row.locator(f".field-{name}").inner_text().split()[0] for name in ("date", "time")]
    kind = row.locator(".kind-badge").inner_text()
    alt = f"{kind}, camera 7, {cells[0]} {cells[1]}"
    expect(thumbnail(page, present)).to_have_attribute("alt", alt)
    src = thumbnail(page, present).get_attribute("src")
    assert src is not None
    assert page.request.get(stack.http + src).status == 200
    for refused in (missing, escape):
        answer = page.request.get(f"{stack.http}/violations/human/{refused}/image/")
        assert answer.status == 404 and b"root:" not in answer.body()

    # A live row, drawn by the bridge, has its thumbnail too.
    live = insert_violation(pg, camera_id=8, image="/media/cam07/live.jpg")
    expect(thumbnail(page, live)).to_have_count(1, timeout=5_000)
    assert natural_size(page, live) == (320, 180)
    assert (
        page.request.get(stack.http + str(thumbnail(page, live).get_attribute("src"))).status == 200
    )

    # The link opens the full image.
    href = row.locator("a.thumbnail-link").get_attribute("href")
    full = page.request.get(stack.http + str(href))
    assert full.status == 200 and full.headers["content-type"] == "image/jpeg"

    # The server's log: each unavailable file once, however often it is asked for; no
    # "Not Found" line per request.
    page.reload()
    assert natural_size(page, missing) == (320, 180)
    log = stack.server.log()
    assert [line for line in log.splitlines() if "Not Found: /violations/" in line] == []
    for image in ("/media/cam07/missing.jpg", "/media/cam07/escape.jpg"):
        lines = [line for line in log.splitlines() if f"image='{image}'" in line]
        assert len(lines) == 1 and "WARNING" in lines[0], lines
        assert "violation image unavailable" in lines[0]


def test_the_image_urls_refuse_an_anonymous_browser(stack, pg, browser) -> None:
    row_id = insert_violation(pg, image="/media/cam07/101112.jpg")
    context = browser.new_context()
    try:
        for what in ("image", "thumbnail"):
            answer = context.request.get(
                f"{stack.http}/violations/human/{row_id}/{what}/", max_redirects=0
            )
            assert answer.status == 302 and "/accounts/login/" in answer.headers["location"]
    finally:
        context.close()

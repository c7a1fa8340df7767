"""The detectors' images: served by violation, never from outside the media root, and
thumbnails made once (real PostgreSQL, real files made with Pillow, real Chromium)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from PIL import Image
from prometheus_client import REGISTRY

from realtime.console.rows import ViolationRow, render_change, render_row
from realtime.violations import kinds
from tests.helpers import insert_violation
from tests.pictures import camera_frame

pytestmark = pytest.mark.django_db(transaction=True)

IMG_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
PASSWD = "/etc/passwd"


@pytest.fixture
def client() -> Client:
    user = get_user_model().objects.create_user("viewer", password="a-long-password-1")
    client = Client()
    client.force_login(user)
    return client


def urls(row_id: int, kind: str = "human") -> tuple[str, str]:
    return f"/violations/{kind}/{row_id}/image/", f"/violations/{kind}/{row_id}/thumbnail/"


def thumbnails_made() -> float:
    return REGISTRY.get_sample_value("realtime_thumbnails_made_total") or 0.0


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_a_1920x1080_jpeg_gets_a_thumbnail_at_most_320_wide_and_much_smaller(
    pg, client, media_root
) -> None:
    original = camera_frame()
    (media_root / "cam07" / "101112.jpg").write_bytes(original)
    row_id = insert_violation(pg, image="/media/cam07/101112.jpg")
    image_url, thumbnail_url = urls(row_id)

    full = client.get(image_url, headers={"Accept": IMG_ACCEPT})
    assert full.status_code == 200 and full["Content-Type"] == "image/jpeg"
    assert body(full) == original
    small = client.get(thumbnail_url, headers={"Accept": IMG_ACCEPT})
    assert small.status_code == 200 and small["Content-Type"] == "image/webp"
    data = body(small)
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.size == (320, 180)
    print(f"\n1920x1080 JPEG {len(original)} bytes -> 320x180 WebP {len(data)} bytes")
    assert len(data) * 20 < len(original), (len(data), len(original))
    for response in (full, small):
        assert (
            "private" in response["Cache-Control"] and "max-age=3600" in response["Cache-Control"]
        )
        assert response["ETag"] and response["Last-Modified"]


def test_a_thumbnail_is_made_once_then_read_from_disk(pg, client, media_root) -> None:
    (media_root / "cam07" / "a.jpg").write_bytes(camera_frame((640, 480)))
    _, thumbnail_url = urls(insert_violation(pg, image="/media/cam07/a.jpg"))
    before = thumbnails_made()
    first = body(client.get(thumbnail_url))
    [made] = (media_root.parent / "thumbnails").glob("*/*.webp")
    stamp = made.stat()
    second = body(client.get(thumbnail_url))
    assert first == second
    assert thumbnails_made() == before + 1, "the second request made it again"
    again = made.stat()
    assert (again.st_ino, again.st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)
    assert not list(made.parent.glob(".*.tmp")), "no temporary file left behind"


def test_a_replaced_file_gets_a_new_thumbnail(pg, client, media_root) -> None:
    path = media_root / "cam07" / "b.jpg"
    path.write_bytes(camera_frame((640, 480)))
    _, thumbnail_url = urls(insert_violation(pg, image="/media/cam07/b.jpg"))
    first = client.get(thumbnail_url)
    path.write_bytes(camera_frame((480, 640)))  # another picture at the same path
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = client.get(thumbnail_url)
    assert first["ETag"] != second["ETag"]
    with Image.open(io.BytesIO(body(second))) as thumb:
        assert thumb.size == (240, 320)


def test_conditional_get_gives_304(pg, client, media_root) -> None:
    (media_root / "cam07" / "c.jpg").write_bytes(camera_frame((640, 360)))
    made = thumbnails_made()
    for url in urls(insert_violation(pg, image="/media/cam07/c.jpg")):
        first = client.get(url)
        assert first.status_code == 200
        by_etag = client.get(url, headers={"If-None-Match": first["ETag"]})
        assert by_etag.status_code == 304 and body(by_etag) == b""
        assert by_etag["ETag"] == first["ETag"] and "private" in by_etag["Cache-Control"]
        by_date = client.get(url, headers={"If-Modified-Since": first["Last-Modified"]})
        assert by_date.status_code == 304
        assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
        head = client.head(url)
        assert head.status_code == 200 and body(head) == b"" and head["ETag"] == first["ETag"]
    assert thumbnails_made() == made + 1


def test_anonymous_clients_are_refused_and_tokens_let_in(pg, media_root, token) -> None:
    (media_root / "cam07" / "d.jpg").write_bytes(camera_frame((320, 240)))
    row_id = insert_violation(pg, image="/media/cam07/d.jpg")
    for url in urls(row_id):
        anonymous = Client().get(url)
        assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
        assert Client().get(url, headers={"Authorization": "Bearer wrong"}).status_code == 302
        by_header = Client().get(url, headers={"Authorization": f"Bearer {token}"})
        assert by_header.status_code == 200 and by_header["Content-Type"].startswith("image/")
        assert Client().get(f"{url}?token={token}").status_code == 200
        assert Client().post(url, headers={"Authorization": f"Bearer {token}"}).status_code == 302


def _symlink_out(root: Path) -> str:
    (root / "cam07" / "escape.jpg").symlink_to(PASSWD)
    return "/media/cam07/escape.jpg"


def _symlinked_dir_out(root: Path) -> str:
    (root / "etc").symlink_to("/etc")
    return "/media/etc/passwd"


def _symlink_to_a_picture_out(root: Path) -> str:
    (root / "cam07" / "peek.jpg").symlink_to(root.parent / "outside" / "secret.jpg")
    return "/media/cam07/peek.jpg"


def _symlinked_dir_to_pictures_out(root: Path) -> str:
    (root / "out").symlink_to(root.parent / "outside")
    return "/media/out/secret.jpg"


def _absolute_picture_out(root: Path) -> str:
    return str(root.parent / "outside" / "secret.jpg")


def _html_named_jpg(root: Path) -> str:
    (root / "cam07" / "page.jpg").write_text("<script>alert(1)</script>")
    return "/media/cam07/page.jpg"


def _truncated_jpeg(root: Path) -> str:
    (root / "cam07" / "cut.jpg").write_bytes(camera_frame((640, 480))[:2000])
    return "/media/cam07/cut.jpg"


def _decompression_bomb(root: Path) -> str:
    bomb = Image.new("1", (10_000, 6_000))  # 60 million pixels in a few kilobytes
    bomb.save(root / "cam07" / "bomb.png")
    return "/media/cam07/bomb.png"


def _unreadable(root: Path) -> str:
    path = root / "cam07" / "locked.jpg"
    path.write_bytes(camera_frame((64, 48)))
    path.chmod(0)
    return "/media/cam07/locked.jpg"


REFUSED: dict[str, Callable[[Path], str]] = {
    "dot-dot": lambda root: "/media/../../etc/passwd",
    "dot-dot inside": lambda root: "/media/cam07/../../../../etc/passwd",
    "absolute, outside the prefix": lambda root: PASSWD,
    "absolute after the prefix": lambda root: "/media//etc/passwd",
    "dot-dot to a picture": lambda root: "/media/../outside/secret.jpg",
    "symlink out of the root": _symlink_out,
    "symlink to a picture out of the root": _symlink_to_a_picture_out,
    "symlinked directory of pictures out of the root": _symlinked_dir_to_pictures_out,
    "absolute path of a picture outside the prefix": _absolute_picture_out,
    "symlinked directory out of the root": _symlinked_dir_out,
    "a directory": lambda root: "/media/cam07",
    "missing": lambda root: "/media/cam07/missing.jpg",
    "not a picture": _html_named_jpg,
    "decompression bomb": _decompression_bomb,
    "empty": lambda root: "",
}


@pytest.mark.parametrize("case", REFUSED)
def test_anything_but_a_picture_under_the_root_gets_the_placeholder(
    case, pg, client, media_root
) -> None:
    image = REFUSED[case](media_root)
    secret = (media_root.parent / "outside" / "secret.jpg").read_bytes()
    for url in urls(insert_violation(pg, image=image)):
        as_img = client.get(url, headers={"Accept": IMG_ACCEPT})
        assert as_img.status_code == 404, (url, as_img.status_code)
        assert as_img["Content-Type"] == "image/svg+xml"
        assert b"No image" in body(as_img) and b"root:" not in body(as_img)
        assert secret[:200] not in body(as_img)
        assert "no-store" in as_img["Cache-Control"]
        as_page = client.get(url, headers={"Accept": "text/html,*/*;q=0.8"})
        assert as_page.status_code == 404
        assert as_page["Content-Type"].startswith("text/plain")
        assert body(as_page).startswith(b"No image for this violation: ")


def test_a_truncated_picture_is_served_as_it_is_and_its_thumbnail_is_the_placeholder(
    pg, client, media_root, caplog
) -> None:
    image_url, thumbnail_url = urls(insert_violation(pg, image=_truncated_jpeg(media_root)))
    # Its header says JPEG: a browser draws what there is of it.
    assert client.get(image_url).status_code == 200
    thumb = client.get(thumbnail_url, headers={"Accept": IMG_ACCEPT})
    assert thumb.status_code == 404 and thumb["Content-Type"] == "image/svg+xml"
    assert any(r.message == "thumbnail not made" for r in caplog.records)


def test_an_unreadable_file_gets_the_placeholder(pg, client, media_root) -> None:
    if os.geteuid() == 0:
        # root reads any file: make it unreadable by what it is instead (a FIFO).
        os.mkfifo(media_root / "cam07" / "locked.jpg")
        image = "/media/cam07/locked.jpg"
    else:
        image = _unreadable(media_root)
    for url in urls(insert_violation(pg, image=image)):
        assert client.get(url, headers={"Accept": IMG_ACCEPT}).status_code == 404


def test_no_such_violation_gets_the_placeholder(client, media_root) -> None:
    for url in (*urls(999_999), *urls(1, "nosuchkind"), *urls(2**63)):
        response = client.get(url, headers={"Accept": IMG_ACCEPT})
        assert response.status_code == 404 and response["Content-Type"] == "image/svg+xml"


def placeholders(size: str) -> float:
    return REGISTRY.get_sample_value("realtime_image_placeholders_total", {"size": size}) or 0.0


def test_a_missing_image_is_logged_once_and_counted_not_warned_per_request(
    pg, client, media_root, caplog
) -> None:
    missing = insert_violation(pg, image="/media/cam07/gone.jpg")
    other = insert_violation(pg, image="/media/cam07/gone-too.jpg")
    before = {size: placeholders(size) for size in ("full", "thumbnail")}
    caplog.set_level(logging.INFO)
    for _ in range(3):
        for row_id in (missing, other):
            for url in urls(row_id):
                assert client.get(url, headers={"Accept": IMG_ACCEPT}).status_code == 404
    assert client.get(urls(999_999)[1], headers={"Accept": IMG_ACCEPT}).status_code == 404
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warned if "Not Found" in r.getMessage()] == [], "no line per request"
    lines = [(r.getMessage(), r.__dict__.get("image")) for r in warned]
    assert sorted(lines) == [
        ("violation image unavailable", "/media/cam07/gone-too.jpg"),
        ("violation image unavailable", "/media/cam07/gone.jpg"),
    ], "one line per missing file"
    assert placeholders("full") - before["full"] == 6
    assert placeholders("thumbnail") - before["thumbnail"] == 7
    # Any other 404 is still Django's warning.
    assert client.get("/violations/human/999999/").status_code == 404
    assert any("Not Found" in r.getMessage() for r in caplog.records)


def test_the_content_type_is_what_the_file_is(pg, client, media_root) -> None:
    out = io.BytesIO()
    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(out, "PNG")
    (media_root / "cam07" / "really-a-png.jpg").write_bytes(out.getvalue())
    image_url, thumbnail_url = urls(insert_violation(pg, image="/media/cam07/really-a-png.jpg"))
    assert client.get(image_url)["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(body(client.get(thumbnail_url)))) as thumb:
        assert thumb.size == (40, 30) and thumb.mode == "RGBA"


def test_the_thumbnail_is_turned_as_the_camera_says(pg, client, media_root) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view
    (media_root / "cam07" / "turned.jpg").write_bytes(camera_frame((1920, 1080), exif=exif))
    _, thumbnail_url = urls(insert_violation(pg, image="/media/cam07/turned.jpg"))
    with Image.open(io.BytesIO(body(client.get(thumbnail_url)))) as thumb:
        assert thumb.size == (180, 320)


def test_nginx_sends_the_file_with_x_accel_redirect(pg, client, media_root, settings) -> None:
    settings.REALTIME_MEDIA_ACCEL_REDIRECT = "/protected-media/"
    (media_root / "cam07" / "2026-12-01").mkdir()
    (media_root / "cam07" / "2026-12-01" / "a b.jpg").write_bytes(camera_frame((64, 48)))
    image_url, _ = urls(insert_violation(pg, image="/media/cam07/2026-12-01/a b.jpg"))
    response = client.get(image_url)
    assert response.status_code == 200 and body(response) == b""
    assert response["X-Accel-Redirect"] == "/protected-media/cam07/2026-12-01/a%20b.jpg"
    assert response["Content-Type"] == "image/jpeg"
    assert "private" in response["Cache-Control"]
    outside = urls(insert_violation(pg, image="/media/../../etc/passwd"))[0]
    refused = client.get(outside)
    assert refused.status_code == 404 and not refused.has_header("X-Accel-Redirect")


def test_images_on_another_server_are_linked_there(pg, client, media_root, settings) -> None:
    settings.REALTIME_MEDIA_BASE_URL = "https://cameras.example/files/"
    row_id = insert_violation(pg, image="/media/cam07/x y.jpg")
    html = render_row(one_row("human", row_id))
    assert 'src="https://cameras.example/files/cam07/x%20y.jpg"' in html
    assert 'href="https://cameras.example/files/cam07/x%20y.jpg"' in html
    for url in urls(row_id):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == "https://cameras.example/files/cam07/x%20y.jpg"


def one_row(kind: str, row_id: int) -> ViolationRow:
    from realtime.violations import queries

    row = queries.one(kinds.registry().by_slug[kind], row_id, scope=None)
    assert row is not None
    return row


def test_a_row_shows_its_thumbnail_and_its_path_live_and_on_load(pg, media_root) -> None:
    row_id = insert_violation(
        pg, "violation_ppedetections", camera_id=7, image="/media/cam07/e.jpg"
    )
    loaded = render_row(one_row("ppe", row_id))
    img = re.search(r"<img [^>]*>", loaded)
    assert img is not None
    tag = img.group(0)
    for attribute in ('class="thumbnail"', 'loading="lazy"', 'width="160"', 'height="90"'):
        assert attribute in tag
    assert re.search(rf'src="/violations/ppe/{row_id}/thumbnail/\?v=[0-9a-f]+"', tag)
    assert re.search(r'alt="PPE, camera 7, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d"', tag)
    assert f'href="/violations/ppe/{row_id}/image/?v=' in loaded
    assert "><bdi>/media/cam07/e.jpg</bdi></a>" in loaded, "the path stays as visible text"
    # The bridge draws a live row from the change's frame: the same markup.
    row = one_row("ppe", row_id)
    data = {
        "id": row_id,
        "camera_id": 7,
        "violation_date": row.violation_date,
        "violation_time": row.violation_time,
        "violation_image": "/media/cam07/e.jpg",
    }
    change = {"id": 1, "table": "violation_ppedetections", "op": "INSERT", "data": data}
    frame = json.dumps(change)
    live = render_change(frame, None, "table")
    assert live is not None and tag in live


def test_a_value_that_names_no_file_is_text_only(pg, media_root) -> None:
    for image in ("/media/../../etc/passwd", "https://evil.example/x.jpg", "<b>x</b>"):
        html = render_row(one_row("human", insert_violation(pg, image=image)))
        assert "<img" not in html and "/image/" not in html

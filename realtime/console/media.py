"""The detectors' images: addressed by violation, never a file outside the media root, and
thumbnails made once per file version.

`violation_image` is a path string the detectors wrote ('/media/cam07/2026-12-01/1.jpg');
REALTIME_MEDIA_PREFIX is the part of it that stands for REALTIME_MEDIA_ROOT. The image URLs
name the row (kind and id), not the path, so who may see an image is decided by the row.
A path that does not lead to a picture under the root (`..`, a symlink out of it, a
missing, unreadable or undecodable file) gets the placeholder, with a 404.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.cache import (
    add_never_cache_headers,
    get_conditional_response,
    patch_cache_control,
)
from django.utils.http import http_date, quote_etag
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe
from PIL import Image, ImageOps

from realtime import metrics
from realtime.access import scopes
from realtime.access.auth import accepts_token
from realtime.console.rows import ViolationRow
from realtime.violations import queries

logger = logging.getLogger(__name__)

# What the app serves, by what Pillow reads in the file (not by its name): a file named
# .jpg that is HTML or SVG is never served as such from the product's origin.
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
# At most 320 px wide (and tall); WebP keeps transparency and is small.
THUMBNAIL_BOX = (320, 320)
THUMBNAIL_FORMAT, THUMBNAIL_SUFFIX, THUMBNAIL_TYPE = "WEBP", ".webp", "image/webp"
THUMBNAIL_QUALITY = 80
# Bumped when thumbnails are made differently: every cached one is then made again.
THUMBNAIL_VERSION = "1"
# The size the table draws a thumbnail at (CSS letterboxes other shapes: no layout shift).
DISPLAY_WIDTH, DISPLAY_HEIGHT = 160, 90
# A browser keeps an image this long before it asks again (ETag: usually a 304).
MAX_AGE = 3600
PLACEHOLDER = "realtime/no-image.svg"
# Pictures beyond this many pixels are refused (8K video is 33 million), below Pillow's
# own limit (Image.MAX_IMAGE_PIXELS, 89 million), where it would warn first.
MAX_PIXELS = 50_000_000
# Decoding is CPU work in the request's thread: a page of 50 new rows must not run 50 at
# once on a small machine. A request that waited finds one made meanwhile (thumbnail()).
_making = threading.BoundedSemaphore(2)


class Unavailable(Exception):
    """Why a violation has no image to show (said to the client in plain words)."""


@dataclass(frozen=True)
class Source:
    """An image file under the root, opened (without following a last symlink)."""

    file: IO[bytes]
    relative: str  # the resolved path under the resolved root, with slashes
    stat: os.stat_result
    content_type: str

    @property
    def etag(self) -> str:
        # nginx's own form (mtime-size in hex): an X-Accel-Redirect answer validates alike.
        return quote_etag(f"{int(self.stat.st_mtime):x}-{self.stat.st_size:x}")

    @property
    def thumbnail_key(self) -> str:
        identity = [self.relative, self.stat.st_mtime_ns, self.stat.st_size, THUMBNAIL_VERSION]
        return hashlib.sha256("\0".join(map(str, identity)).encode()).hexdigest()


@dataclass(frozen=True)
class RowImage:
    """What a table row links to: the full image, its thumbnail, and words for it."""

    href: str
    thumbnail: str
    alt: str
    width: int = DISPLAY_WIDTH
    height: int = DISPLAY_HEIGHT


def relative_name(violation_image: str) -> str | None:
    """The part of `violation_image` after the prefix, if it can name a file under the
    root: no `..` or `.` or empty part, no NUL, no backslash, not absolute after it."""
    prefix = settings.REALTIME_MEDIA_PREFIX
    if not violation_image.startswith(prefix) or "\x00" in violation_image:
        return None
    rest = violation_image[len(prefix) :]
    if not rest or "\\" in rest or any(p in ("", ".", "..") for p in rest.split("/")):
        return None
    return rest


def row_image(row: ViolationRow) -> RowImage | None:
    """The links of a row's image, or None when its value cannot name one (shown as text)."""
    name = relative_name(row.violation_image)
    if name is None or row.id is None:
        return None
    # In the language the row is drawn in (realtime.console.rows.render_row).
    camera = (
        _("no camera")
        if row.camera_id is None
        else _("camera %(camera)s") % {"camera": row.camera_id}
    )
    alt = f"{row.kind.label}, {camera}, {row.shown_date} {row.violation_time}".strip()
    if settings.REALTIME_MEDIA_BASE_URL:
        url = settings.REALTIME_MEDIA_BASE_URL + quote(name)
        return RowImage(url, url, alt)
    # The row's path in the URL: an UPDATE that names another file is another URL, which
    # no browser has cached.
    version = "?v=" + hashlib.sha256(row.violation_image.encode()).hexdigest()[:12]
    args = [row.kind.slug, row.id]
    return RowImage(
        reverse("violation-image", args=args) + version,
        reverse("violation-thumbnail", args=args) + version,
        alt,
    )


def _open_picture(file: IO[bytes]) -> Image.Image:
    """The picture, its header read; refused beyond MAX_PIXELS (a decompression bomb: a
    small file that decodes to gigabytes). Pillow itself raises beyond twice its limit."""
    image = Image.open(file)
    if image.width * image.height > MAX_PIXELS:
        # (Not image.close(): that would close the caller's file, which the caller closes.)
        raise Image.DecompressionBombError(f"{image.width}x{image.height} is too many pixels")
    return image


def open_source(violation_image: str) -> Source:
    """The file `violation_image` names under the root; Unavailable otherwise."""
    name = relative_name(violation_image)
    if name is None:
        raise Unavailable(f"the path is not a file name under {settings.REALTIME_MEDIA_PREFIX}")
    root = Path(settings.REALTIME_MEDIA_ROOT).resolve()
    try:
        path = (root / name).resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # missing, or a symlink loop
        raise Unavailable("there is no such file") from exc
    if not path.is_relative_to(root):
        raise Unavailable("the file is outside the media root")
    try:
        # The resolved path has no symlink left; O_NOFOLLOW refuses one put there since, and
        # O_NONBLOCK a FIFO, whose open would wait for a writer (a regular file ignores it).
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags)
    except OSError as exc:
        raise Unavailable("the file cannot be read") from exc
    if not _opened_where_checked(fd, path):
        os.close(fd)
        raise Unavailable("the file is outside the media root")
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise Unavailable("it is not a file")
    file = os.fdopen(fd, "rb")
    try:
        content_type = _content_type(file)
    except BaseException:
        file.close()
        raise
    return Source(file, path.relative_to(root).as_posix(), status, content_type)


def _opened_where_checked(fd: int, path: Path) -> bool:
    """Whether the open file is the one the checked path named: a directory of the path
    swapped for a symlink out of the root between the check and the open (O_NOFOLLOW
    guards the last part only) is seen in what the kernel says was opened (Linux's
    /proc/self/fd; elsewhere the check before the open is all there is)."""
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return True
    return opened == str(path)


def _content_type(file: IO[bytes]) -> str:
    try:
        with _open_picture(file) as image:  # reads the header only
            found = image.format
    except (OSError, ValueError, Image.DecompressionBombError):
        found = None
    file.seek(0)
    if found not in CONTENT_TYPES:
        raise Unavailable("the file is not a picture this page can show")
    return CONTENT_TYPES[found]


def thumbnail(source: Source) -> Path:
    """The thumbnail of `source`, made on first use and read from disk after that."""
    target = Path(settings.REALTIME_THUMBNAIL_DIR) / source.thumbnail_key[:2]
    target = target / f"{source.thumbnail_key}{THUMBNAIL_SUFFIX}"
    if target.is_file():
        return target
    with _making:
        if not target.is_file():  # made by another request while this one waited
            _make_thumbnail(source.file, target)
            metrics.THUMBNAILS_MADE.inc()
    return target


def _make_thumbnail(file: IO[bytes], target: Path) -> None:
    with _open_picture(file) as image:
        # First: thumbnail() has libjpeg decode at a fraction of the size (draft mode).
        image.thumbnail(THUMBNAIL_BOX)
        small = ImageOps.exif_transpose(image)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside its final name, then renamed: a reader never sees half a file.
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            small.save(out, THUMBNAIL_FORMAT, quality=THUMBNAIL_QUALITY)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@lru_cache(maxsize=1)
def _placeholder_bytes() -> bytes:
    found = finders.find(PLACEHOLDER)
    path = found[0] if isinstance(found, list) else found
    return Path(path).read_bytes() if path else b""


def placeholder(request: HttpRequest, reason: str) -> HttpResponse:
    """404 with a picture for an <img>, or the reason in words for anyone else.

    404, not 200: a script or cache must not take "no image" for the image; browsers draw
    the body of a 404 in an <img> all the same. Never cached: the file may come later.
    """
    if request.get_preferred_type(["text/plain", "image/svg+xml"]) == "image/svg+xml":
        response = HttpResponse(_placeholder_bytes(), status=404, content_type="image/svg+xml")
    else:
        text = f"No image for this violation: {reason}.\n"
        response = HttpResponse(text, status=404, content_type="text/plain; charset=utf-8")
    add_never_cache_headers(response)
    return response


def _unavailable(
    request: HttpRequest, violation_image: str, reason: str, *, small: bool
) -> HttpResponse:
    """The placeholder, counted; the file named, once (log_format.PlaceholderImages leaves
    out Django's line for each request)."""
    metrics.IMAGE_PLACEHOLDERS.labels("thumbnail" if small else "full").inc()
    if violation_image and _first_time(violation_image, reason):
        logger.warning(
            "violation image unavailable", extra={"image": violation_image, "reason": reason}
        )
    return placeholder(request, reason)


# The files already logged, by this process: the most recent LOGGED_FILES of them.
LOGGED_FILES = 4096
_logged: OrderedDict[tuple[str, str], None] = OrderedDict()
_logged_lock = threading.Lock()


def _first_time(image: str, reason: str) -> bool:
    """Whether this file was not logged for this reason yet (and now counts as logged)."""
    with _logged_lock:
        if (image, reason) in _logged:
            _logged.move_to_end((image, reason))
            return False
        _logged[image, reason] = None
        if len(_logged) > LOGGED_FILES:
            _logged.popitem(last=False)
        return True


def _violation_image(kind: str, pk: int, scope: scopes.Scope) -> str:
    row = queries.named(kind, pk, scope=scope)
    if row is None:
        raise Unavailable("there is no such violation")
    return row.violation_image


def _not_modified(request: HttpRequest, etag: str, mtime: float) -> HttpResponseBase | None:
    """A 304 (or 412) when the client's copy is current (Django's conditional GET)."""
    answer = get_conditional_response(request, etag=etag, last_modified=int(mtime))
    return None if answer is None else _validated(answer, etag, mtime)


def _validated(response: HttpResponseBase, etag: str, mtime: float) -> HttpResponseBase:
    response.headers.setdefault("ETag", etag)
    response.headers.setdefault("Last-Modified", http_date(int(mtime)))
    patch_cache_control(response, private=True, max_age=MAX_AGE)
    return response


def _serve(request: HttpRequest, kind: str, pk: int, *, small: bool) -> HttpResponseBase:
    violation_image = ""
    try:
        violation_image = _violation_image(kind, pk, scopes.of_user(request.user))
        if settings.REALTIME_MEDIA_BASE_URL:
            name = relative_name(violation_image)
            if name is None:
                raise Unavailable(f"the path is not under {settings.REALTIME_MEDIA_PREFIX}")
            # Another server has the files: send the browser there (the app serves none).
            return HttpResponseRedirect(settings.REALTIME_MEDIA_BASE_URL + quote(name))
        source = open_source(violation_image)
    except Unavailable as exc:
        return _unavailable(request, violation_image, str(exc), small=small)
    if small:
        with source.file:
            return _serve_thumbnail(request, source)
    return _serve_image(request, source)


def _serve_image(request: HttpRequest, source: Source) -> HttpResponseBase:
    """The file itself (FileResponse closes it), or nginx's cue to send it."""
    not_modified = _not_modified(request, source.etag, source.stat.st_mtime)
    accel = settings.REALTIME_MEDIA_ACCEL_REDIRECT
    if not_modified is not None or accel or request.method == "HEAD":
        source.file.close()
    if not_modified is not None:
        return not_modified
    if accel:
        # nginx sends the file (the resolved path under the root) with this Content-Type.
        response: HttpResponseBase = HttpResponse(content_type=source.content_type)
        response["X-Accel-Redirect"] = accel + quote(source.relative)
    elif request.method == "HEAD":
        response = HttpResponse(content_type=source.content_type)
        response["Content-Length"] = str(source.stat.st_size)
    else:
        response = FileResponse(source.file, content_type=source.content_type)
    return _validated(response, source.etag, source.stat.st_mtime)


def _serve_thumbnail(request: HttpRequest, source: Source) -> HttpResponseBase:
    etag = quote_etag(f"t{source.thumbnail_key[:32]}")
    not_modified = _not_modified(request, etag, source.stat.st_mtime)
    if not_modified is not None:
        return not_modified
    try:
        path = thumbnail(source)
        made = path.open("rb")
    except Exception:
        # Decoding files nobody checked: Pillow's decoders raise many kinds of error
        # (OSError, ValueError, SyntaxError, EOFError, struct.error...). A row shows the
        # placeholder, never a 500; the log says which file.
        if _first_time(source.thumbnail_key, "thumbnail not made"):  # once per file version
            logger.warning("thumbnail not made", extra={"image": source.relative}, exc_info=True)
        metrics.IMAGE_PLACEHOLDERS.labels("thumbnail").inc()
        return placeholder(request, "the file cannot be read as a picture")
    return _validated(FileResponse(made, content_type=THUMBNAIL_TYPE), etag, source.stat.st_mtime)


@accepts_token
@login_required
@require_safe
def violation_image(request: HttpRequest, kind: str, pk: int) -> HttpResponseBase:
    """The violation's image, as the detector saved it."""
    return _serve(request, kind, pk, small=False)


@accepts_token
@login_required
@require_safe
def violation_thumbnail(request: HttpRequest, kind: str, pk: int) -> HttpResponseBase:
    """The violation's image, at most 320 px wide; made once, then read from disk."""
    return _serve(request, kind, pk, small=True)

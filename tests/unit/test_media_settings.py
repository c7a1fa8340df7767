"""The images' settings, loaded as a server loads them: defaults, the environment, and what
stops the start naming the variable."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

SHOW_MEDIA_SETTINGS = (
    "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
    "django.setup(); from django.conf import settings as s; "
    "print(s.REALTIME_MEDIA_ROOT, s.REALTIME_MEDIA_PREFIX, s.REALTIME_MEDIA_BASE_URL or '-', "
    "s.REALTIME_MEDIA_ACCEL_REDIRECT or '-', s.REALTIME_THUMBNAIL_DIR, "
    "','.join(s.CONTENT_SECURITY_POLICY['DIRECTIVES']['img-src']))"
)


def media_settings_with(**env: str) -> subprocess.CompletedProcess[str]:
    """config.settings loaded as a server loads it, from this environment."""
    base = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": "postgresql://u@127.0.0.1:5432/nowhere",
        "DJANGO_SECRET_KEY": "k" * 50,
        "REALTIME_ENV_FILE": "",  # not the checkout's .env (make run's)
    }
    return subprocess.run(
        [sys.executable, "-c", SHOW_MEDIA_SETTINGS],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
    )


def test_media_settings_work_with_nothing_set_and_read_the_environment() -> None:
    out = media_settings_with()
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        str(ROOT / ".data" / "media"),
        "/media/",
        "-",
        "-",
        str(ROOT / ".data" / "thumbnails"),
        "'self',data:",
    ]
    out = media_settings_with(
        REALTIME_MEDIA_ROOT="/srv/cameras",
        REALTIME_MEDIA_PREFIX="/files/",
        REALTIME_MEDIA_BASE_URL="https://cameras.example:8443/files/",
        REALTIME_MEDIA_ACCEL_REDIRECT="/protected-media/",
        REALTIME_THUMBNAIL_DIR="/var/cache/thumbs",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "/srv/cameras",
        "/files/",
        "https://cameras.example:8443/files/",
        "/protected-media/",
        "/var/cache/thumbs",
        "'self',data:,https://cameras.example:8443",
    ]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REALTIME_MEDIA_PREFIX", "media", "begins and ends with a slash"),
        ("REALTIME_MEDIA_PREFIX", "/media", "begins and ends with a slash"),
        ("REALTIME_MEDIA_ACCEL_REDIRECT", "/protected media/", "begins and ends with a slash"),
        ("REALTIME_MEDIA_BASE_URL", "ftp://cameras.example/", "http or https address"),
        ("REALTIME_MEDIA_BASE_URL", "https://cameras.example/files", "ending with a slash"),
        ("REALTIME_MEDIA_BASE_URL", "javascript:alert(1)//", "http or https address"),
    ],
)
def test_bad_media_settings_stop_the_start_naming_the_variable(name, value, message) -> None:
    out = media_settings_with(**{name: value})
    assert out.returncode != 0
    assert re.search(f"ImproperlyConfigured: {name} .*{message}", out.stderr), out.stderr

"""E-mail for alerts: Django's settings, read from the environment with Django's defaults."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

SHOW = (
    "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
    "django.setup(); from django.conf import settings as s; "
    "print(s.EMAIL_HOST, s.EMAIL_PORT, repr(s.EMAIL_HOST_USER), repr(s.EMAIL_HOST_PASSWORD), "
    "s.EMAIL_USE_TLS, s.EMAIL_USE_SSL, s.EMAIL_TIMEOUT, s.DEFAULT_FROM_EMAIL)"
)


def email_settings(**env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": "postgresql://u@127.0.0.1:5432/nowhere",
        "DJANGO_SECRET_KEY": "k" * 50,
        "REALTIME_ENV_FILE": "",
    }
    return subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, env={**base, **env}, capture_output=True, text=True
    )


def test_defaults_are_djangos() -> None:
    out = email_settings()
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "localhost", "25", "''", "''", "False", "False", "30.0", "webmaster@localhost"
    ]  # fmt: skip


def test_the_environment_sets_them() -> None:
    out = email_settings(
        EMAIL_HOST="smtp.plant.example",
        EMAIL_PORT="587",
        EMAIL_HOST_USER="alerts",
        EMAIL_HOST_PASSWORD="s3cret",
        EMAIL_USE_TLS="1",
        EMAIL_TIMEOUT="5",
        DEFAULT_FROM_EMAIL="alerts@plant.example",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "smtp.plant.example", "587", "'alerts'", "'s3cret'", "True", "False", "5.0",
        "alerts@plant.example",
    ]  # fmt: skip


def test_bad_values_are_named() -> None:
    out = email_settings(EMAIL_PORT="smtp")
    assert out.returncode != 0 and "EMAIL_PORT must be a whole number" in out.stderr
    out = email_settings(EMAIL_USE_TLS="1", EMAIL_USE_SSL="1")
    assert out.returncode != 0 and "EMAIL_USE_TLS and EMAIL_USE_SSL are both set" in out.stderr

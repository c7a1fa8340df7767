"""Settings from the environment: safe by default, refusing what would be unsafe."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

GOOD_KEY = "k" * 50
SHOW = (
    "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
    "django.setup(); from django.conf import settings as s; "
    "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
    "s.CHANNEL_LAYERS['default']['BACKEND'].rsplit('.', 1)[-1], s.REALTIME_EMBEDDED_LISTENER, "
    "str(s.REALTIME_GC_THRESHOLDS).replace(' ', ''))"
)


def settings_with(**env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": "postgresql://u@127.0.0.1:5432/nowhere",
        "REALTIME_ENV_FILE": "",  # not the checkout's .env (make run's)
    }
    return subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, env={**base, **env}, capture_output=True, text=True
    )


def test_production_defaults_are_secure() -> None:
    out = settings_with(DJANGO_SECRET_KEY=GOOD_KEY)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "False",
        "True",
        "True",
        "InMemoryChannelLayer",
        "True",
        "(50000,20,100)",
    ]


def test_redis_url_switches_layer_and_listener() -> None:
    out = settings_with(DJANGO_SECRET_KEY=GOOD_KEY, REDIS_URL="redis://127.0.0.1:6379/3")
    # channels-redis' pub/sub layer, named after the deployment (realtime.pipeline.bus).
    assert out.stdout.split()[3:5] == ["DeploymentChannelLayer", "False"]
    out = settings_with(
        DJANGO_SECRET_KEY=GOOD_KEY,
        REDIS_URL="redis://127.0.0.1:6379/3",
        REALTIME_EMBEDDED_LISTENER="1",
    )
    assert out.stdout.split()[4] == "True"


@pytest.mark.parametrize(
    "key", [None, "short", "django-insecure-" + "x" * 40, "insecure-dev-only-" + "x" * 40]
)
def test_refuses_a_missing_or_placeholder_secret_key(key: str | None) -> None:
    out = settings_with(**({"DJANGO_SECRET_KEY": key} if key is not None else {}))
    assert out.returncode != 0
    assert "DJANGO_SECRET_KEY is missing, short or a placeholder" in out.stderr


def test_refuses_debug_facing_the_network_unless_told() -> None:
    network = {"DJANGO_DEBUG": "1", "DJANGO_ALLOWED_HOSTS": "violations.example"}
    out = settings_with(**network)
    assert out.returncode != 0 and "DJANGO_DEBUG=1 with DJANGO_ALLOWED_HOSTS" in out.stderr
    assert settings_with(**network, DJANGO_ALLOW_INSECURE="1").returncode == 0


def test_local_debug_needs_no_key_and_sends_cookies_over_http() -> None:
    out = settings_with(DJANGO_DEBUG="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:3] == ["True", "False", "False"]


def test_a_flag_that_is_not_0_or_1_is_named() -> None:
    out = settings_with(DJANGO_SECRET_KEY=GOOD_KEY, DJANGO_DEBUG="maybe")
    assert out.returncode != 0 and "DJANGO_DEBUG must be 0 or 1" in out.stderr


@pytest.mark.parametrize(
    ("raw", "thresholds"), [("", "(50000,20,100)"), ("1000,5,7", "(1000,5,7)"), ("python", "None")]
)
def test_gc_thresholds_default_to_fewer_collections(raw: str, thresholds: str) -> None:
    out = settings_with(DJANGO_SECRET_KEY=GOOD_KEY, REALTIME_GC_THRESHOLDS=raw)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == thresholds


@pytest.mark.parametrize("raw", ["50000,20", "a,b,c", "0,10,10", "1,2,3,4"])
def test_gc_thresholds_that_are_not_three_counts_are_refused(raw: str) -> None:
    out = settings_with(DJANGO_SECRET_KEY=GOOD_KEY, REALTIME_GC_THRESHOLDS=raw)
    assert out.returncode != 0 and "REALTIME_GC_THRESHOLDS must be three" in out.stderr


@pytest.mark.parametrize("raw", ["1048577", "16383", "1MB"])
def test_a_frame_limit_daphne_would_refuse_or_too_small_to_reduce_to_is_refused(raw: str) -> None:
    out = settings_with(DJANGO_SECRET_KEY=GOOD_KEY, REALTIME_FRAME_MAX_BYTES=raw)
    assert out.returncode != 0
    assert "REALTIME_FRAME_MAX_BYTES must be a whole number of at least 16384 and at most" in (
        out.stderr
    )


def test_hsts_is_sent_behind_tls_when_configured() -> None:
    out = settings_of(DJANGO_HSTS_SECONDS="31536000")
    assert out == "31536000"
    assert settings_of() == "0", "off unless asked: make run serves plain http"


def settings_of(**env: str) -> str:
    import os
    import subprocess
    import sys

    from tests.helpers import ROOT

    result = subprocess.run(
        [sys.executable, "-c", "import config.settings as s; print(s.SECURE_HSTS_SECONDS)"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
            "DJANGO_SECRET_KEY": "x" * 40,
            **env,
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_grip_url_names_every_pushpin_with_one_key() -> None:
    """Issue #27: one Pushpin per machine; the listener publishes to each of GRIP_URL's,
    and django-grip checks a request's signature with the first's key."""
    one = "http://10.0.0.1:5561?iss=pushpin&key=SECRET-1"
    two = "http://10.0.0.2:5561?iss=pushpin&key=SECRET-1"
    grip = "print(s.GRIP_URL, s.REALTIME_MORE_GRIP_URLS); "
    show = SHOW.replace("print(s.DEBUG", grip + "print(s.DEBUG")
    base = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://u@127.0.0.1:5432/nowhere"}
    env = {**base, "REALTIME_ENV_FILE": "", "DJANGO_SECRET_KEY": GOOD_KEY}
    out = subprocess.run(
        [sys.executable, "-c", show],
        cwd=ROOT,
        env={**env, "GRIP_URL": f"{one}  {two}"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"{one} ['{two}']"
    other_key = two.replace("SECRET-1", "SECRET-2")
    refused = settings_with(DJANGO_SECRET_KEY=GOOD_KEY, GRIP_URL=f"{one} {other_key}")
    assert refused.returncode != 0
    assert "every Pushpin must have the same key" in refused.stderr

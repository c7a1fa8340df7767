"""Reading settings from the environment, with errors that name the variable."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import URLValidator


def env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw in ("1", "true", "True", "yes"):
        return True
    if raw in ("0", "false", "False", "no"):
        return False
    raise ImproperlyConfigured(f"{name} must be 0 or 1, not {raw!r}.")


def parse_duration(raw: str) -> timedelta:
    """'7d', '12h', '90m', '30s' as a timedelta."""
    match = re.fullmatch(r"(\d{1,9})([smhd])", raw.strip())
    if match is None:
        raise ValueError(f"{raw!r} is not a number and a unit (s, m, h or d), like 7d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def env_duration(name: str, default: str) -> timedelta:
    try:
        return parse_duration(os.environ.get(name) or default)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}.") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if not raw:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_gc_thresholds(name: str, default: str) -> tuple[int, int, int] | None:
    """Three counts for gc.set_threshold, like 50000,20,100; "python" keeps Python's own."""
    raw = (os.environ.get(name) or default).strip()
    if raw == "python":
        return None
    parts = [part.strip() for part in raw.split(",")]
    ascii_digits = all(re.fullmatch(r"[0-9]{1,9}", part) for part in parts)
    if len(parts) != 3 or not ascii_digits or not all(0 < int(part) < 10**9 for part in parts):
        raise ImproperlyConfigured(
            f"{name} must be three positive whole numbers like 50000,20,100 (see gc.set_threshold),"
            f" or python for Python's defaults, not {raw!r}."
        )
    first, second, third = (int(part) for part in parts)
    return first, second, third


def env_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    """A whole number (ASCII digits), at least `minimum` (and at most `maximum`)."""
    raw = (os.environ.get(name) or str(default)).strip()
    valid = re.fullmatch(r"[0-9]{1,12}", raw) is not None and int(raw) >= minimum
    if not valid or (maximum is not None and int(raw) > maximum):
        most = "" if maximum is None else f" and at most {maximum}"
        raise ImproperlyConfigured(
            f"{name} must be a whole number of at least {minimum}{most}, not {raw!r}."
        )
    return int(raw)


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    """A number like 30 or 0.5, at least `minimum`."""
    raw = (os.environ.get(name) or str(default)).strip()
    if re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,9})?", raw) is None or float(raw) < minimum:
        raise ImproperlyConfigured(f"{name} must be a number of at least {minimum}, not {raw!r}.")
    return float(raw)


def env_path(name: str, default: Path) -> Path:
    """A directory, absolute (a relative one is taken from the current directory)."""
    raw = os.environ.get(name, "").strip()
    return Path(raw).expanduser().absolute() if raw else default


def env_url_path(name: str, default: str) -> str:
    """A path like /media/: a slash first and last, no spaces, backslashes, ? or #.
    Empty when the variable is unset and there is no default (an option left off)."""
    raw = (os.environ.get(name) or default).strip()
    if raw and re.fullmatch(r"/(?:[^\s\\?#]*/)?", raw) is None:
        raise ImproperlyConfigured(
            f"{name} must be a path that begins and ends with a slash, like /media/, not {raw!r}."
        )
    return raw


def env_base_url(name: str) -> str:
    """An http or https address ending with a slash, or empty when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ""
    try:
        URLValidator(schemes=["http", "https"])(raw)
    except ValidationError:
        valid = False
    else:
        valid = raw.endswith("/") and not urlsplit(raw).query and "#" not in raw
    if not valid:
        raise ImproperlyConfigured(
            f"{name} must be an http or https address ending with a slash, like"
            f" https://cameras.example/media/, not {raw!r}."
        )
    return raw

"""Fixed messages, details as key=value: logs that can be searched (and no credentials)."""

from __future__ import annotations

import logging
from typing import Any

from realtime.access.redaction import redact

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if not extras:
            return text
        details = " ".join(f"{key}={_shown(value)}" for key, value in sorted(extras.items()))
        first, newline, rest = text.partition("\n")
        return redact(f"{first} {details}{newline}{rest}")


def _shown(value: Any) -> str:
    # Django's request warnings carry the request, whose repr has the whole query string.
    method, path = getattr(value, "method", None), getattr(value, "path", None)
    if isinstance(method, str) and isinstance(path, str):
        return repr(f"{method} {path}")
    return repr(value)


class ClientFault(logging.Filter):
    """A request that failed by the client's fault (a 4xx: a bad Host header, a body that
    cannot be parsed, Django's django.security records) in one WARNING line. Any client can
    cause one, and Django logs some with a traceback (DisallowedHost at ERROR): that would
    flood the log. A 5xx keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            record.exc_info = record.exc_text = record.stack_info = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class PlaceholderImages(logging.Filter):
    """Leaves out Django's "Not Found" line for a violation's image or thumbnail answered with
    the placeholder: a page of rows asks for every thumbnail, so a missing file would be a
    warning per row per page load. realtime.console.media logs each such file once and
    counts every answer (realtime_image_placeholders_total). Any other 404 is logged."""

    URL_NAMES = frozenset({"violation-image", "violation-thumbnail"})

    def filter(self, record: logging.LogRecord) -> bool:
        match = getattr(getattr(record, "request", None), "resolver_match", None)
        image = getattr(match, "url_name", None) in self.URL_NAMES
        return not (image and getattr(record, "status_code", None) == 404)

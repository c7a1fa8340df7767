"""Credentials never reach a log line: tokens (and Pushpin's signed es-meta) in paths.

Daphne's access log (on by default, on stdout) prints each request's path with its query
string. It is written by Daphne's own AccessLogGenerator, not through `logging`, so the
redaction wraps that class (installed from config/asgi.py, before Daphne makes its
logger; tests/test_trust.py starts Daphne as docs/how-to/deploy.md says and reads its output).
"""

from __future__ import annotations

import re
from typing import Any

SECRET_IN_QUERY = re.compile(r"([?&;](?:token|es-meta)=)[^&;#\s\"']*", re.IGNORECASE)


def redact(text: str) -> str:
    return SECRET_IN_QUERY.sub(r"\1[redacted]", text)


def redact_daphne_access_log() -> bool:
    """Make Daphne's access log redact paths; False if Daphne's internals changed."""
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:  # not under Daphne
        return False
    original = AccessLogGenerator.__call__
    if getattr(original, "redacts", False):
        return True

    def call(self: Any, protocol: str, action: str, details: dict[str, Any]) -> Any:
        if isinstance(details.get("path"), str):
            details = {**details, "path": redact(details["path"])}
        return original(self, protocol, action, details)

    call.redacts = True  # type: ignore[attr-defined]
    AccessLogGenerator.__call__ = call
    return True

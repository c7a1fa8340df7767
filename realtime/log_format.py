"""Fixed messages, details as key=value: logs that can be searched."""

from __future__ import annotations

import logging

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if not extras:
            return text
        details = " ".join(f"{key}={value!r}" for key, value in sorted(extras.items()))
        first, newline, rest = text.partition("\n")
        return f"{first} {details}{newline}{rest}"

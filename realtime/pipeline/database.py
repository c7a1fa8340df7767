"""Connections of the product's own (the listener's, pruning's, scripts'), beside Django's."""

from __future__ import annotations

from typing import Any

import psycopg


def conninfo_from_django(database: dict[str, Any], application_name: str = "realtime") -> str:
    """A libpq connection string for a Django DATABASES entry, with TCP keepalives."""
    params: dict[str, Any] = {
        "dbname": database.get("NAME"),
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "host": database.get("HOST") or None,
        "port": database.get("PORT") or None,
        # Notice a dead server or a half-open connection within about 30 s.
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "application_name": application_name,
    }
    options = database.get("OPTIONS") or {}
    params.update({k: v for k, v in options.items() if isinstance(v, (str, int))})
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})

"""An embedded PostgreSQL for running without DATABASE_URL (the pgserver package)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

DATABASE_NAME = "violations"


def embedded_database_url(pgdata: Path) -> str:
    # pgserver narrates every start at INFO and platformdirs warns about XDG_RUNTIME_DIR.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - requirements.txt installs it
        raise ImproperlyConfigured(
            "DATABASE_URL is not set and the pgserver package is missing: "
            "install requirements.txt or set DATABASE_URL."
        ) from exc

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # 'stop': the server lives as long as some process of ours holds a handle to it.
    server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    return server.get_uri(DATABASE_NAME)

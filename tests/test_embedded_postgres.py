"""`make run` without DATABASE_URL: an embedded PostgreSQL (pgserver) with the triggers."""

from __future__ import annotations

import psycopg

from config.embedded_postgres import embedded_database_url
from realtime.sql_files import read_sql


def test_embedded_postgres_starts_and_takes_the_trigger_sql(tmp_path) -> None:
    url = embedded_database_url(tmp_path / "pg")
    assert embedded_database_url(tmp_path / "pg") == url, "a second start reuses the server"
    with psycopg.connect(url, autocommit=True) as conn:
        for name in ["001_event_log.sql", "002_notify_function.sql", "003_watch_functions.sql"]:
            conn.execute(read_sql(name))
        conn.execute(
            "CREATE TABLE violation_humandetections (id serial PRIMARY KEY, camera_id int)"
        )
        conn.execute("SELECT realtime_watch_v1('violation_humandetections')")
        conn.execute("LISTEN realtime_changed_v1")
        conn.execute("INSERT INTO violation_humandetections (camera_id) VALUES (3)")
        [notify] = list(conn.notifies(timeout=2, stop_after=1))
        assert '"camera_id":3' in notify.payload

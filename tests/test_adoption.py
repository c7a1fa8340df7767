"""`migrate` on a database the detectors already write: their tables are adopted as they are.

Each test builds the schema with plain SQL as a DBA would have (the tutorial's tables,
`serial` ids, `varchar(255)` images, extra columns, rows already in them, the tutorial's
own trigger attached), runs the real `manage.py`, and compares the catalog before and
after.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.helpers import manage, run_manage, scratch_database

TABLES = ("violation_humandetections", "violation_lotodetections", "violation_ppedetections")
PRODUCT_TRIGGERS = {f"realtime_notify_v5_{op}" for op in ("insert", "update", "delete")}

DBA_SCHEMA = (Path(__file__).resolve().parent / "fixtures" / "detectors_schema.sql").read_text()


@pytest.fixture
def detectors_db(db_url: str) -> Iterator[str]:
    """A database as the detectors' team left it, before this product."""
    with scratch_database(db_url, f"adopt_{uuid.uuid4().hex[:8]}") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(DBA_SCHEMA)
        yield url


def catalog(url: str, table: str) -> dict[str, Any]:
    """Everything a DBA would call the table's definition, its storage and its rows."""
    with psycopg.connect(url) as conn:
        [(oid,)] = conn.execute("SELECT %s::regclass::oid", [table]).fetchall()

        def rows(query: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in conn.execute(query, [oid]).fetchall()]

        return {
            "columns": rows(
                "SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
                " pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
                " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                " WHERE a.attrelid = %s AND a.attnum > 0 ORDER BY a.attnum"
            ),
            "constraints": rows(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = %s ORDER BY conname"
            ),
            "indexes": rows(
                "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
                " WHERE indrelid = %s ORDER BY 1"
            ),
            # A rewrite gives the table a new file; ownership and options stay the DBA's.
            "storage": rows(
                "SELECT relfilenode, pg_get_userbyid(relowner), relkind, reloptions, relacl"
                " FROM pg_class WHERE oid = %s"
            ),
            "triggers": rows(
                "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger"
                " WHERE tgrelid = %s AND NOT tgisinternal ORDER BY tgname"
            ),
            "rows": conn.execute(
                sql.SQL(
                    "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t.id)) FROM {} t"
                ).format(sql.Identifier(table))
            ).fetchone(),
        }


def without_product_triggers(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The catalog without the product's triggers, of any version."""
    triggers = [t for t in snapshot["triggers"] if not t[0].startswith("realtime_notify_v")]
    return {**snapshot, "triggers": triggers}


def test_migrate_adopts_the_tables_as_they_are(detectors_db) -> None:
    before = {table: catalog(detectors_db, table) for table in TABLES}
    manage(detectors_db, "migrate", "--noinput")
    for table in TABLES:
        after = catalog(detectors_db, table)
        # Identical but for the product's triggers: no column, default, constraint or
        # index added, no rewrite, the same owner and the same rows.
        assert without_product_triggers(after) == before[table], table
        assert {t[0] for t in after["triggers"]} - {t[0] for t in before[table]["triggers"]} == (
            PRODUCT_TRIGGERS
        )
    with psycopg.connect(detectors_db) as conn:
        assert conn.execute("SELECT count(*) FROM realtime_created_table").fetchone() == (0,)
        kinds = conn.execute("SELECT slug, table_name FROM realtime_kind ORDER BY position")
        assert kinds.fetchall() == [
            ("human", "violation_humandetections"),
            ("loto", "violation_lotodetections"),
            ("ppe", "violation_ppedetections"),
        ]


def test_a_second_migrate_changes_nothing(detectors_db) -> None:
    manage(detectors_db, "migrate", "--noinput")
    once = {table: catalog(detectors_db, table) for table in TABLES}
    manage(detectors_db, "migrate", "--noinput")
    assert {table: catalog(detectors_db, table) for table in TABLES} == once


def test_the_detectors_insert_as_before_and_every_change_is_logged_once(detectors_db) -> None:
    manage(detectors_db, "migrate", "--noinput")
    with psycopg.connect(detectors_db, autocommit=True) as conn:
        conn.execute("LISTEN human_detection_events")
        [(before,)] = conn.execute("SELECT coalesce(max(id), 0) FROM realtime_event").fetchall()
        # As the tutorial's detector writes: the columns it knows, defaults for the rest.
        conn.execute(
            "INSERT INTO violation_humandetections (camera_id, violation_image, confidence)"
            " VALUES (2, '/media/new.jpg', 0.93)"
        )
        tutorial = list(conn.notifies(timeout=5, stop_after=1))
        logged = conn.execute(
            "SELECT op, data FROM realtime_event WHERE id > %s", [before]
        ).fetchall()
    assert len(tutorial) == 1, "the tutorial's trigger still notifies its own channel"
    [(op, data)] = logged
    assert op == "INSERT"
    assert data["violation_image"] == "/media/new.jpg"
    assert data["confidence"] == 0.93 and data["zone"] == "A", "the extra columns travel"


def test_check_lists_the_tutorial_trigger_and_the_missing_indexes(detectors_db) -> None:
    manage(detectors_db, "migrate", "--noinput")
    out = run_manage(detectors_db, "check")
    assert out.returncode == 0, out.stderr
    assert "trg_human_detection_notify (notify_on_change())" in out.stderr
    assert 'DROP TRIGGER trg_human_detection_notify ON "public"."violation_humandetections"' in (
        out.stderr
    )
    assert "violation_ppedetections_realtime_recent" in out.stderr
    assert "python manage.py create_indexes" in out.stderr

    created = manage(detectors_db, "create_indexes")
    assert created.count("CREATE INDEX CONCURRENTLY") == 6
    assert created.count("ANALYZE") == 3, "statistics of the new expressions"
    assert manage(detectors_db, "create_indexes").strip() == "Every kind's table has its indexes."
    out = run_manage(detectors_db, "check")
    assert "realtime.W001" not in out.stderr
    with psycopg.connect(detectors_db) as conn:
        valid = conn.execute(
            "SELECT count(*) FROM pg_index WHERE indisvalid"
            " AND indexrelid::regclass::text LIKE '%%_realtime_%%'"
        ).fetchone()
    assert valid == (6,)


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("violation_lotodetections", "violation_image"),
        ("violation_humandetections", "camera_id"),
    ],
)
def test_a_missing_column_stops_migrate_with_a_message_and_changes_nothing(
    db_url, table, column
) -> None:
    with scratch_database(db_url, f"adopt_{uuid.uuid4().hex[:8]}") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(DBA_SCHEMA)
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(
                    sql.Identifier(table), sql.Identifier(column)
                )
            )
        before = {t: catalog(url, t) for t in TABLES}
        for command in (["migrate", "--noinput"], ["check"]):
            out = run_manage(url, *command)
            assert out.returncode != 0, command
            assert f'"public"."{table}" has no column {column}.' in out.stderr, out.stderr
            assert "Traceback" not in out.stderr + out.stdout
        assert {t: catalog(url, t) for t in TABLES} == before
        with psycopg.connect(url) as conn:
            leftovers = conn.execute(
                "SELECT count(*) FROM pg_class WHERE relname LIKE 'realtime%%'"
                " OR relname = 'django_migrations'"
            ).fetchone()
        assert leftovers == (0,), "migrate stopped before it changed anything"


def test_a_column_of_the_wrong_type_is_named(detectors_db) -> None:
    with psycopg.connect(detectors_db, autocommit=True) as conn:
        conn.execute("ALTER TABLE violation_ppedetections ALTER COLUMN violation_date TYPE text")
    out = run_manage(detectors_db, "migrate", "--noinput")
    assert out.returncode != 0
    assert '"public"."violation_ppedetections".violation_date is of type text' in out.stderr
    assert "Traceback" not in out.stderr


@pytest.fixture
def roles(db_url: str) -> Iterator[tuple[str, str]]:
    """Two login roles: the detectors' team (owner of the tables) and the product's."""
    suffix = uuid.uuid4().hex[:8]
    owner, product = f"detectors_{suffix}", f"product_{suffix}"
    admin_url = psycopg.conninfo.make_conninfo(db_url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for role in (owner, product):
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    yield owner, product
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for role in (owner, product):
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def as_role(url: str, role: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)


def test_a_role_that_may_not_attach_triggers_is_told_what_to_grant(db_url, roles) -> None:
    owner, product = roles
    with scratch_database(db_url, f"adopt_{uuid.uuid4().hex[:8]}") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("GRANT CREATE ON SCHEMA public TO {}, {}").format(
                    sql.Identifier(owner), sql.Identifier(product)
                )
            )
        with psycopg.connect(as_role(url, owner), autocommit=True) as conn:
            conn.execute(DBA_SCHEMA)
        before = {t: catalog(url, t) for t in TABLES}

        out = run_manage(as_role(url, product), "migrate", "--noinput")
        assert out.returncode != 0
        assert (
            f"The product's role {product} may not attach its trigger to "
            f'"public"."violation_humandetections": it does not own the table (its owner is '
            f"{owner}) and lacks the TRIGGER and SELECT privilege."
        ) in out.stderr, out.stderr
        grant = f'GRANT TRIGGER, SELECT ON "public"."violation_humandetections" TO "{product}";'
        assert grant in out.stderr
        assert "Traceback" not in out.stderr

        with psycopg.connect(as_role(url, owner), autocommit=True) as conn:
            for table in TABLES:
                conn.execute(
                    sql.SQL("GRANT TRIGGER, SELECT ON {} TO {}").format(
                        sql.Identifier(table), sql.Identifier(product)
                    )
                )
        granted = {t: catalog(url, t) for t in TABLES}
        migrated = manage(as_role(url, product), "migrate", "--noinput")
        # Migration 0013 attached v4; replacing it with v5 (0019) needs the owner: the
        # tables stay on v4 (its search path pinned, as every version's) until then.
        assert "Ask the table's owner to run: SELECT realtime_watch_v5(" in migrated
        for table in TABLES:
            after = catalog(url, table)
            assert without_product_triggers(after) == granted[table]
            assert after["storage"][0][1] == owner == before[table]["storage"][0][1]
        # Indexes need the owner: the product says so, and hands over the SQL.
        out = run_manage(as_role(url, product), "create_indexes")
        assert out.returncode != 0 and "Only a table's owner may index it" in out.stderr
        statements = manage(as_role(url, product), "create_indexes", "--sql")
        with psycopg.connect(as_role(url, owner), autocommit=True) as conn:
            for statement in statements.splitlines():
                conn.execute(statement)
        assert "realtime.W001" not in run_manage(as_role(url, product), "check").stderr


def test_an_upgrade_without_the_owner_keeps_v3_and_says_what_to_run(db_url, roles) -> None:
    """Moving a table to trigger v4 (and v5) drops v3's triggers, which needs the table's
    owner: a product role with only the TRIGGER privilege keeps v3 (which logs and
    notifies the same, its search path pinned all the same), and `check` says what the
    owner should run."""
    owner, product = roles
    with scratch_database(db_url, f"adopt_{uuid.uuid4().hex[:8]}") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("GRANT CREATE ON SCHEMA public TO {}, {}").format(
                    sql.Identifier(owner), sql.Identifier(product)
                )
            )
        with psycopg.connect(as_role(url, owner), autocommit=True) as conn:
            conn.execute(DBA_SCHEMA)
            for table in TABLES:
                conn.execute(
                    sql.SQL("GRANT TRIGGER, SELECT ON {} TO {}").format(
                        sql.Identifier(table), sql.Identifier(product)
                    )
                )
        # The previous version: migrated to 0011, its tables watched by v3.
        manage(as_role(url, product), "migrate", "realtime", "0011", "--noinput", "-v0")
        with psycopg.connect(as_role(url, product), autocommit=True) as conn:
            for table in TABLES:
                conn.execute("SELECT realtime_watch_v3(%s)", [table])

        out = run_manage(as_role(url, product), "migrate", "--noinput")
        assert out.returncode == 0, out.stderr
        assert (
            "violation_humandetections keeps its older trigger (must be owner of relation "
            "violation_humandetections). Ask the table's owner to run: SELECT "
            "realtime_watch_v5('violation_humandetections');"
        ) in out.stdout, out.stdout
        with psycopg.connect(url, autocommit=True) as conn:
            watched = conn.execute(
                "SELECT target::text, trigger_function::text FROM realtime_watched_tables()"
            ).fetchall()
            assert watched == [(table, "realtime_notify_v3()") for table in TABLES]
            conn.execute("INSERT INTO violation_ppedetections (camera_id) VALUES (4)")
            logged = conn.execute("SELECT count(*) FROM realtime_event WHERE op = 'INSERT'")
            assert logged.fetchone() == (1,), "v3 goes on logging"
        checked = run_manage(as_role(url, product), "check").stderr
        assert "realtime.W003" in checked
        assert (
            "Ask the owner to run: SELECT "
            'realtime_watch_v5(\'"public"."violation_ppedetections"\');' in checked
        )

        with psycopg.connect(as_role(url, owner), autocommit=True) as conn:
            for table in TABLES:
                conn.execute("SELECT realtime_watch_v5(%s)", [table])
        assert "realtime.W003" not in run_manage(as_role(url, product), "check").stderr
        with psycopg.connect(url, autocommit=True) as conn:
            watched = conn.execute(
                "SELECT DISTINCT trigger_function::text FROM realtime_watched_tables()"
            ).fetchall()
            assert watched == [("realtime_notify_v5()",)]

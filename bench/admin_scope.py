"""What the sites cost the admin (#22): a changelist's load for a staff member of one site,
beside a superuser's.

An acknowledgement or operator action is its violation's, so a scoped changelist asks the
kind's table for the camera of each of its rows (realtime.access.admin_scope). This fills two
kinds' tables with --rows rows each (cameras 1-10; plain SQL, triggers off), acknowledges
--acks of them (an operator action each), makes North (cameras 1-5) and South (6-10) and
times the acknowledgements' and operator actions' changelists (and a search) through
Django's test client, in a database of its own.

    python bench/admin_scope.py [--database-url URL] [--rows 1000000] [--acks 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PATHS = (
    "/admin/realtime/acknowledgement/",
    "/admin/realtime/operatoraction/",
    "/admin/realtime/acknowledgement/?q=bench",
)


def fill(database_url: str, rows: int, acks: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # no log rows: not timed here
        for table in ("violation_ppedetections", "violation_lotodetections"):
            conn.execute(
                f"INSERT INTO {table} (camera_id, violation_date, violation_time, violation_image)"
                " SELECT 1 + n %% 10, CURRENT_DATE - n %% 300, '10:00', '/bench/x.jpg'"
                " FROM generate_series(1, %s) AS n",
                [rows],
            )
        conn.execute(
            "INSERT INTO realtime_acknowledgement (table_name, violation_id, acknowledged_by,"
            " acknowledged_at) SELECT CASE WHEN n %% 2 = 0 THEN 'violation_ppedetections'"
            " ELSE 'violation_lotodetections' END, 1 + (n * 7) %% %s, 'bench', now()"
            " FROM generate_series(1, %s) AS n ON CONFLICT DO NOTHING",
            [rows, acks],
        )
        conn.execute(
            "INSERT INTO realtime_operator_action (table_name, violation_id, action, actor, at,"
            " text) SELECT table_name, violation_id, 'acknowledge', 'bench', now(), ''"
            " FROM realtime_acknowledgement"
        )
        conn.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/realtime_bench_admin"
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--acks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    base, _, name = args.database_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "DJANGO_SECRET_KEY": "bench-secret-key-0123456789abcdefghijkl",
        "REALTIME_ENV_FILE": "",  # production's settings, not the checkout's .env (make run's)
        "DJANGO_ALLOWED_HOSTS": "testserver",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    fill(args.database_url, args.rows, args.acks)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.test import Client

    from realtime.access import scopes
    from realtime.models import Site

    users = get_user_model().objects
    staff = users.create_user("north-staff", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="realtime", codename__startswith="view_"
        ).exclude(codename="view_all_sites")
    )
    Site.objects.create(name="North", cameras=[1, 2, 3, 4, 5]).users.add(staff)
    Site.objects.create(name="South", cameras=[6, 7, 8, 9, 10])
    scopes.forget()
    root = users.create_superuser("root", "root@example.com", None)
    print(f"{args.rows} rows in each of two kinds' tables, {args.acks} acknowledgements")
    for who in (root, staff):
        client = Client()
        client.force_login(who)
        for path in PATHS:
            samples = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                assert client.get(path).status_code == 200
                samples.append(time.perf_counter() - started)
            median = statistics.median(samples) * 1000
            print(f"  {who.username:<12} {path:<45} median {median:7.0f} ms")


if __name__ == "__main__":
    main()

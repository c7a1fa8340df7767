"""Fixtures on real services: the machine's PostgreSQL and Redis, real subprocesses.

A service that cannot be reached stops the run with an error; nothing is skipped. A run of
only tests/unit/ (`make test-unit`) needs no service, and a test there that asks for one
stops the run too.
"""

from __future__ import annotations

import fcntl
import importlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from django.conf import settings

from tests.alerting import alerts, plant, receiver, smtp
from tests.browsing import browser, page
from tests.helpers import insert_violation
from tests.history_rows import fire_kind, historian, made_rows
from tests.pictures import media_root

UNIT = Path(__file__).resolve().parent / "unit"
# What a test asks for when it needs PostgreSQL (pytest-django's database), Redis or Chromium.
SERVICE_FIXTURES = {"django_db_setup", "redis_url", "browser"}
# Under pytest-xdist, whether the controller has checked them (once, for all its workers).
SERVICES_CHECKED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    # pytest-django gives each pytest-xdist worker a test database of its own (its name
    # ends _gw0, _gw1 ...); Redis, flushed by the tests, needs the same.
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker:
        settings.TEST_REDIS_URL = worker_redis_url(settings.TEST_REDIS_URL, worker)


def worker_redis_url(url: str, worker: str) -> str:
    """The Redis database of pytest-xdist's worker gwN: the given number minus N (15, 14,
    13 ... for the default), so it stays within Redis' 16 whatever the number of workers."""
    parts = urlsplit(url)
    own = int(parts.path.strip("/") or 0) - int(worker.removeprefix("gw"))
    if own < 0:
        raise pytest.UsageError(
            f"Redis at {url}: pytest-xdist's worker {worker} would need database {own};"
            " give a higher database number or fewer workers (make test's TEST_WORKERS)"
        )
    return urlunsplit(parts._replace(path=f"/{own}"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Under pytest-xdist a test marked `alone` runs with no test beside it on another
    worker: it waits for theirs to end, and they wait for it (a readers-writer lock over
    two files of the run's temporary folder; the turnstile lets no new test in while an
    `alone` test waits, so it waits for the tests already running only)."""
    basetemp = getattr(item.config, "workerinput", None) and item.config.option.basetemp
    if not basetemp:
        return (yield)
    folder = Path(basetemp).parent
    alone = item.get_closest_marker("alone") is not None
    with (
        (folder / "turnstile.lock").open("a") as turnstile,
        (folder / "room.lock").open("a") as room,
    ):
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            return (yield)
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)
            fcntl.flock(turnstile, fcntl.LOCK_UN)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that reach the database through their own connections still need
    # pytest-django to create (and flush) the test database.
    for item in items:
        if "db_url" in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
            "django_db"
        ):
            item.add_marker(pytest.mark.django_db(transaction=True))


def pytest_collection_finish(session: pytest.Session) -> None:
    # After -k and -m: the services are checked when a test that needs them will run.
    unit = [item for item in session.items if UNIT in item.path.resolve().parents]
    misplaced = [item.nodeid for item in unit if _needs_a_service(item)]
    if misplaced:
        # (Under pytest-xdist this exit is a worker's, which the run reports as an internal
        # error without the message: make test-unit, one process, says it.)
        pytest.exit(
            "Tests under tests/unit/ need no service; these ask for PostgreSQL, Redis or"
            " Chromium (move them to tests/):\n  " + "\n  ".join(misplaced),
            4,
        )
    if len(unit) == len(session.items) or hasattr(session.config, "workerinput"):
        # A pytest-xdist worker's exit would only be an internal error of the run: the
        # controller checks, once the workers have collected (below).
        return
    _stop_unless_the_services_answer()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: Sequence[str]) -> None:
    rootpath = node.config.rootpath
    if all(UNIT in (rootpath / nodeid.partition("::")[0]).parents for nodeid in ids):
        return
    if not node.config.stash.get(SERVICES_CHECKED, False):
        node.config.stash[SERVICES_CHECKED] = True
        _stop_unless_the_services_answer()


def _stop_unless_the_services_answer() -> None:
    problems = _unreachable_services()
    if problems:
        pytest.exit(
            "Tests need real services; unreachable:\n  "
            + "\n  ".join(problems)
            + "\n(make test-unit runs the tests that need none)",
            3,
        )


def _needs_a_service(item: pytest.Item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    return item.get_closest_marker("django_db") is not None or bool(fixtures & SERVICE_FIXTURES)


def _unreachable_services() -> list[str]:
    problems = []
    try:
        psycopg.connect(_admin_url(), connect_timeout=5).close()
    except psycopg.Error as exc:
        problems.append(f"PostgreSQL at {_admin_url()}: {exc}")
    try:
        redis.Redis.from_url(settings.TEST_REDIS_URL, socket_timeout=5).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis at {settings.TEST_REDIS_URL}: {exc}")
    return problems


@pytest.fixture(autouse=True)
def built_in_kinds(request: pytest.FixtureRequest) -> Iterator[None]:
    """The kinds migration 0008 writes, which a transactional test's flush erases; and,
    after such a test, its rows gone from the detectors' tables, as the flush does with
    the tables of managed models (the product does not manage those)."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        yield
        return
    transactional = marker.kwargs.get("transaction", False) or (marker.args and marker.args[0])
    request.getfixturevalue("transactional_db" if transactional else "db")
    from django.db import connection

    from realtime.models import ViolationKind
    from realtime.violations import kinds

    migration = importlib.import_module("realtime.migrations.0008_pre_product_state")
    # In one transaction: a server of the test reads all three or none.
    ViolationKind.objects.bulk_create(
        [
            ViolationKind(
                slug=slug,
                label=label,
                schema_name="public",
                table_name=table,
                colour=colour,
                position=position,
            )
            for slug, label, table, colour, position in migration.BUILT_IN_KINDS
        ],
        ignore_conflicts=True,
    )
    kinds.forget()
    yield
    if transactional:
        # And how far the (flushed) event log was pruned, which is no model either.
        tables = ", ".join(table for _, _, table, _, _ in migration.BUILT_IN_KINDS)
        tables += ", realtime_log_pruned"
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {tables}")
    kinds.forget()


def _admin_url() -> str:
    db = settings.DATABASES["default"]
    return _url(db, db["NAME"])


def _url(db: Mapping[str, Any], name: str) -> str:
    return psycopg.conninfo.make_conninfo(
        dbname=name,
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
    )


@pytest.fixture(scope="session")
def db_url(django_db_setup: None) -> str:
    """The migrated test database, as a libpq connection string."""
    from django.db import connection

    return _url(settings.DATABASES["default"], connection.settings_dict["NAME"])


@pytest.fixture(scope="session")
def database_url(db_url: str) -> str:
    """The same database as a URL, for the servers the e2e tests start."""
    params = psycopg.conninfo.conninfo_to_dict(db_url)
    auth = str(params.get("user", "postgres"))
    if params.get("password"):
        auth += f":{params['password']}"
    host, port = params.get("host", "127.0.0.1"), params.get("port", 5432)
    return f"postgresql://{auth}@{host}:{port}/{params['dbname']}"


@pytest.fixture
def pg(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A plain autocommit connection: the tests write as a detector does."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def marker() -> str:
    """A unique violation_image, so a test recognises its own rows."""
    return f"/media/test-{uuid.uuid4().hex}.jpg"


@pytest.fixture
def token() -> str:
    """A bearer token of a fresh user, as `manage.py issue_token` gives one."""
    from django.contrib.auth import get_user_model

    from realtime.models import ApiToken

    user = get_user_model().objects.create_user("token-holder", password="a-long-password-1")
    return ApiToken.issue(user)


@pytest.fixture
def redis_url() -> str:
    client = redis.Redis.from_url(settings.TEST_REDIS_URL)
    client.flushdb()
    client.close()
    return str(settings.TEST_REDIS_URL)


__all__ = [
    "alerts",
    "browser",
    "fire_kind",
    "historian",
    "insert_violation",
    "made_rows",
    "media_root",
    "page",
    "plant",
    "receiver",
    "smtp",
]


@pytest.fixture
def client_of() -> Any:
    """`client_of("anna")`: a test client logged in as a new user of that name."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    def make(name: str) -> Client:
        user = get_user_model().objects.create_user(name, password="a-long-password-1")
        client = Client()
        client.force_login(user)
        return client

    return make

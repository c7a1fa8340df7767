"""Hostile input at every URL (#22, finding 6): Hypothesis throws arbitrary text at every
query parameter, header and form field of every URL that config/urls.py resolves (GET,
POST and HEAD; anonymous, an operator by session or token, staff), and at the WebSocket
routes' query strings and headers. No answer may be a 5xx, and nothing may log an error.

The URLs come from Django's resolver, so a new URL is covered without editing this file;
a URL whose path parameters this file cannot fill with a real value makes the test fail
(teach `real_values` the parameter). The requests go through Django's ASGI handler (as
under Daphne); a streaming answer (the SSE routes, the export) is read to its first chunk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import string
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import LocalePrefixPattern, RegexPattern, RoutePattern
from django.utils import timezone
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from PIL import Image

from realtime.access import scopes
from realtime.alerts.models import Notification
from realtime.models import Acknowledgement, ApiToken, OperatorAction, Shelf, Site
from realtime.violations import kinds
from tests.helpers import ROOT, insert_violation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Bounded for a shared 2-core machine: the whole file in about a minute (twelve examples a
# URL). HOSTILE_EXAMPLES=N, or HYPOTHESIS_PROFILE=hostile-long (120 a URL), runs more.
settings.register_profile(
    "hostile",
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,  # a failure is printed with its example; nothing kept between runs
)
settings.register_profile("hostile-long", parent=settings.get_profile("hostile"), max_examples=120)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "hostile")
ONLY = os.environ.get("HOSTILE_URLS", "")  # a regex of the URLs to try (all by default)

PASSWORD = "a-long-password-1"
CSRF_SECRET = "hostileinputtestcsrfsecret012345"  # 32 characters, as Django's own
ERROR = logging.ERROR
# /healthz says 503 while no listener forwards changes (none runs here): that is its job.
EXPECTED_5XX = {"healthz": {503}}


# --- what is sent -----------------------------------------------------------------------


def _names_in_source(pattern: str) -> set[str]:
    found: set[str] = set()
    for path in [*(ROOT / "realtime").rglob("*.py"), *(ROOT / "config").rglob("*.py")]:
        found.update(re.findall(pattern, path.read_text()))
    return found


# Every name the product reads from a query or a form (found in its source, so a new one is
# sent without editing this list), Django's, the admin's and Pushpin's.
PARAMETERS = sorted(
    _names_in_source(r"""(?:GET|POST)(?:\.get|\.getlist)?[(\[]\s*["']([^"']+)["']""")
    | set(
        """
        kind camera unacknowledged acknowledged from to before layout lastEventId token
        es-meta recover link bom text minutes reason violation next username password
        old_password new_password1 new_password2 password1 password2 email
        csrfmiddlewaretoken q o p e all _popup _to_field _changelist_filters _save _continue
        _addanother _saveasnew post action index select_across _selected_action term
        app_label model_name field_name language label colour sound position name cameras
        users groups user expires_at is_active is_staff is_superuser user_permissions
        first_name last_name note camera_id until time_zone ended_at acknowledged_at__gte
        acknowledged_at__lt camera_id__exact violation_date__gte at__gte action__exact
        usable_password
        """.split()
    )
)
HEADERS = sorted(
    {name.title() for name in _names_in_source(r"""headers\.get\(\s*["']([^"']+)["']""")}
    | set(
        """
        Last-Event-ID Authorization Origin Cookie Referer Host HX-Request HX-Current-URL
        HX-Target HX-Trigger Accept Accept-Language Accept-Encoding User-Agent
        X-Forwarded-For X-Forwarded-Proto X-Forwarded-Host X-CSRFToken If-Modified-Since
        If-None-Match Range If-Range Grip-Sig Grip-Last Sec-Fetch-Site Sec-WebSocket-Protocol
        Content-Type
        """.split()
    )
)
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "application/json",
    "text/plain",
]

# Text as a client may mean it: any code point (surrogates, NUL and other controls among
# them), sometimes very long; and the byte strings that reach a server.
texts = st.one_of(
    st.text(st.one_of(st.characters(), st.characters(categories=["Cs"]))),
    st.text(st.characters(codec="utf-8"), max_size=10),
    st.sampled_from(["", "0", "-1", "1e9", "²", "\x00", "%", "%zz", "..", "/", "\\", "∞"]),
    # Very long: drawn short and repeated (Hypothesis shrinks a 20,000-character draw slowly).
    st.tuples(st.text(string.printable, min_size=1, max_size=5), st.integers(400, 20_000)).map(
        lambda part: part[0] * part[1]
    ),
    st.from_regex(r"-?[0-9]{1,40}", fullmatch=True),
)


def _encoded(value: str | bytes) -> str:
    """Percent-encoded for a query or a form: UTF-8, surrogates as their (invalid) bytes."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return quote_from_bytes(raw, safe="")


# A component of a query string or a form: encoded text or bytes, or raw text that was
# never encoded ("%" alone, "%zz", "+", ";", "&&", "==").
components = st.one_of(
    texts.map(_encoded),
    st.binary(max_size=40).map(_encoded),
    st.text(alphabet="%&=+;#?/az09 ~.", max_size=20).map(lambda s: s.replace(" ", "+")),
)
names = st.one_of(st.sampled_from(PARAMETERS), components)
pairs = st.lists(st.tuples(names, components), max_size=6)
# A header's value as a server hands it over: bytes, which Django reads as Latin-1 (a line
# break would end the header; everything else is possible).
header_values = st.one_of(
    st.text(st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=300),
    texts.map(lambda s: s.encode("utf-8", "surrogatepass").decode("latin-1")).map(
        lambda s: s.replace("\r", "").replace("\n", "")
    ),
)


def query_text(items: list[tuple[str, str]]) -> str:
    return "&".join(f"{name}={value}" for name, value in items)


# --- what exists (a real value for each path parameter) -----------------------------------


@dataclass
class World:
    """A row of each kind, an acknowledgement with its note, a shelf, a site, a token, a
    picture on disk; an operator of the site, and staff who may do anything in the admin."""

    operator: Any
    staff: Any
    token: str
    rows: dict[str, int]
    shelf: int
    media_root: Path
    objects: dict[str, list[str]] = field(default_factory=dict)  # admin model -> pks
    sessions: dict[str, str] = field(default_factory=dict)  # who -> session cookie


def make_world(pg: Any, media_root: Path) -> World:
    users = get_user_model().objects
    operator, _ = users.get_or_create(username="hostile-operator")
    operator.set_password(PASSWORD)
    operator.is_active, operator.is_staff = True, False
    operator.save()
    staff, _ = users.get_or_create(username="hostile-staff")
    staff.set_password(PASSWORD)
    staff.is_active, staff.is_staff = True, True
    staff.save()
    staff.user_permissions.set(Permission.objects.all())
    group, _ = Group.objects.get_or_create(name="hostile-group")
    group.user_set.add(operator)
    site, _ = Site.objects.get_or_create(name="hostile-site", defaults={"cameras": [1, 2]})
    site.users.add(operator)
    scopes.forget()
    picture = media_root / "hostile.jpg"
    if not picture.exists():
        Image.new("RGB", (64, 48), "red").save(picture)
    kinds.forget()
    rows = {}
    for kind in kinds.registry():
        found = pg.execute(
            f"SELECT id FROM {kind.qualified} WHERE violation_image = '/media/hostile.jpg'"
            " ORDER BY id LIMIT 1"
        ).fetchone()
        rows[kind.slug] = (
            found[0]
            if found
            else insert_violation(pg, kind.table, camera_id=1, image="/media/hostile.jpg")
        )
    first = kinds.registry().by_slug["human"]
    if not Acknowledgement.objects.filter(table_name=first.table).exists():
        now = timezone.now()
        Acknowledgement.objects.create(
            table_name=first.table,
            violation_id=rows["human"],
            acknowledged_by=operator.username,
            acknowledged_at=now,
            note="a note",
            noted_by=operator.username,
            noted_at=now,
        )
        OperatorAction.objects.create(
            table_name=first.table,
            violation_id=rows["human"],
            action="acknowledged",
            actor=operator.username,
            at=now,
        )
    shelf = Shelf.objects.filter(ended_at__isnull=True, camera_id=1).first()
    if shelf is None:
        now = timezone.now()
        shelf = Shelf.objects.create(
            camera_id=1,
            shelved_by=operator.username,
            shelved_at=now,
            until=now + timedelta(days=1),
            time_zone="UTC",
            reason="maintenance",
        )
    if not Notification.objects.exists():  # a failed message, to see and to send again
        now = timezone.now()
        Notification.objects.create(
            rule_name="hostile-rule",
            contact_name="hostile-contact",
            table_name=first.table,
            violation_id=rows["human"],
            camera_id=1,
            event_id=1,
            committed_at=now,
            due_at=now,
            status=Notification.FAILED,
            attempts=3,
            last_error="HTTP 503",
        )
    ApiToken.objects.filter(user=operator).delete()
    world = World(operator, staff, ApiToken.issue(operator), rows, shelf.pk, media_root)
    for model in admin.site._registry:
        label = f"{model._meta.app_label}_{model._meta.model_name}"
        world.objects[label] = [
            str(pk) for pk in model._default_manager.values_list("pk", flat=True)[:3]
        ]
    for who, user in (("operator", operator), ("staff", staff)):
        client = Client()
        client.force_login(user)
        world.sessions[who] = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    return world


def real_values(world: World, name: str | None, pattern: str) -> dict[str, list[str]]:
    """For each path parameter of the URL named `name`: real values (they reach the view's
    work, not a 404). A parameter not listed here fails the test."""
    model = admin_model(name)
    values: dict[str, list[str]] = {
        "kind": list(world.rows),
        "app_label": ["realtime", "auth", "axes"],
        "content_type_id": [str(ContentType.objects.get_for_model(get_user_model()).pk)],
        "id": [str(world.operator.pk), str(world.staff.pk)],
        "url": ["realtime/nothing/", "", "auth"],
        "uidb64": ["MQ", "x"],
        "token": ["set-password", "abc-123"],
    }
    if name == "end-shelf":
        values["pk"] = [str(world.shelf)]
    elif name == "notification-resend":
        values["key"] = [str(pk) for pk in Notification.objects.values_list("pk", flat=True)]
    elif name is not None and name.startswith(
        ("violation-", "acknowledge", "add-note", "shelve-camera", "undo")
    ):
        values["pk"] = [str(pk) for pk in world.rows.values()]
    elif name in ("api-violation", "api-acknowledge", "api-add-note"):
        values["id"] = [str(pk) for pk in world.rows.values()]
    if model is not None:
        values["object_id"] = world.objects.get(model, []) or ["1"]
    elif "object_id" in pattern:  # the admin's view_on_site, and its unnamed redirects
        values["object_id"] = [str(world.operator.pk)]
    return values


def admin_model(name: str | None) -> str | None:
    if name is None:
        return None
    for model in admin.site._registry:
        label = f"{model._meta.app_label}_{model._meta.model_name}"
        if name.startswith(label + "_"):
            return label
    return None


# --- every URL ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """A URL of the resolver: its parts from the root, each a route or a regex."""

    parts: tuple[RoutePattern | RegexPattern | LocalePrefixPattern, ...]
    name: str | None
    callback: Callable[..., Any]

    @property
    def text(self) -> str:
        return "".join(str(part) for part in self.parts)

    def parameters(self) -> dict[str, str]:
        """Each path parameter and the regex its value must match."""
        found = {}
        for part in self.parts:
            if isinstance(part, RoutePattern):
                for param, converter in part.converters.items():
                    found[param] = converter.regex
            else:
                for match in re.finditer(r"\(\?P<(\w+)>([^)]*)\)", str(part)):
                    found[match[1]] = match[2]
        return found

    def path(self, values: dict[str, str]) -> str:
        built = ""
        for part in self.parts:
            text = str(part)
            if isinstance(part, RoutePattern):
                text = re.sub(
                    r"<(?:(\w+):)?(\w+)>",
                    lambda m: quote(values[m[2]], safe="/" if m[1] == "path" else ""),
                    text,
                )
            else:
                text = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: quote(values[m[1]], safe="/"), text)
                text = text.removeprefix("^").removesuffix("$")
                assert not set(text) & set("^$()[]*+?\\|"), f"cannot build {self.text}"
            built += text
        return "/" + built


def routes() -> list[Route]:
    def walk(patterns: list[Any], parts: tuple[Any, ...]) -> Iterator[Route]:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, (*parts, entry.pattern))
            else:
                assert isinstance(entry, URLPattern)
                yield Route((*parts, entry.pattern), entry.name, entry.callback)

    return list(walk(get_resolver().url_patterns, ()))


ROUTES = routes()


def known_path(route: Route, world: World) -> str | None:
    """The route's path with real values, or None if an earlier URL of the same text takes
    it (django.contrib.auth's login behind the product's); fails for a parameter this file
    cannot fill."""
    real = real_values(world, route.name, route.text)
    missing = set(route.parameters()) - set(real)
    assert not missing, f"{route.text}: no real value for {sorted(missing)}; add to real_values"
    path = route.path({name: real[name][0] for name in route.parameters()})
    match = resolve(path)
    if match.func != route.callback and match.route == route.text:
        return None  # shadowed: its path reaches the other one, fuzzed there
    assert match.func == route.callback, f"{path} reaches {match.route}, not {route.text}"
    return path


def path_strategy(route: Route, world: World) -> st.SearchStrategy[str]:
    """Real values mostly, and anything the route's converters match."""
    real = real_values(world, route.name, route.text)
    by_name = {
        name: st.one_of(
            st.sampled_from(real[name]),
            st.from_regex(regex, fullmatch=True).filter(lambda v: "\x00" not in v),
        )
        for name, regex in route.parameters().items()
    }
    return st.fixed_dictionaries(by_name).map(route.path)


# --- one request -------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    who: str  # anonymous, operator, operator-token, staff
    path: str
    query: str
    headers: dict[str, str]
    body: str
    content_type: str


def requests(paths: st.SearchStrategy[str]) -> st.SearchStrategy[Request]:
    return st.builds(
        Request,
        method=st.sampled_from(["GET", "POST", "GET", "POST", "HEAD"]),
        who=st.sampled_from(["anonymous", "operator", "operator-token", "staff", "staff"]),
        path=paths,
        query=pairs.map(query_text),
        headers=st.dictionaries(
            st.sampled_from(HEADERS) | st.from_regex(r"X-[A-Za-z-]{1,20}", fullmatch=True),
            header_values,
            max_size=4,
        ),
        body=pairs.map(query_text),
        content_type=st.sampled_from(CONTENT_TYPES[:1] * 4 + CONTENT_TYPES),
    )


class Recorder(logging.Handler):
    """Every record at ERROR or above, and every one with a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= ERROR or record.exc_info:
            self.records.append(record)


@dataclass
class Answer:
    status: int
    first_bytes: bytes


class HostileClient(AsyncClient):
    """Sends any Content-Type a server may hand over (Django's client encodes it as ASCII)."""

    content_type = b""

    async def request(self, **request: Any) -> Any:
        request["headers"] = [
            (name, self.content_type if name == b"content-type" else value)
            for name, value in request["headers"]
        ]
        return await super().request(**request)


async def send(request: Request, world: World) -> Answer:
    client = HostileClient(enforce_csrf_checks=True)
    client.cookies[django_settings.CSRF_COOKIE_NAME] = CSRF_SECRET
    headers = {"X-CSRFToken": CSRF_SECRET}
    if request.who in world.sessions:
        client.cookies[django_settings.SESSION_COOKIE_NAME] = world.sessions[request.who]
    elif request.who == "operator-token":
        headers["Authorization"] = f"Bearer {world.token}"
    headers.update(request.headers)
    if "Cookie" in request.headers:  # added to the client's own (its session, its CSRF)
        own = "; ".join(f"{k}={m.coded_value}" for k, m in client.cookies.items())
        headers["Cookie"] = f"{own}; {request.headers['Cookie']}"
    client.content_type = headers.pop("Content-Type", request.content_type).encode("latin-1")
    path = f"{request.path}?{request.query}" if request.query else request.path
    response = await client.generic(
        request.method,
        path,
        data=request.body.encode("latin-1", "replace") if request.method == "POST" else b"",
        headers=headers,
    )
    first = b""
    if isinstance(response, StreamingHttpResponse) and response.is_async:
        # An SSE stream never ends: its first chunk (stream-open) is enough.
        content = aiter(response.streaming_content)
        try:
            async with asyncio.timeout(30):
                first = await anext(content, b"")
        finally:
            await content.aclose()
    elif isinstance(response, StreamingHttpResponse):  # a file
        first = next(iter(response.streaming_content), b"")
        response.close()
    return Answer(response.status_code, first)


@pytest.fixture
def world(pg: Any, tmp_path: Path) -> Iterator[World]:
    media_root = tmp_path / "media"
    media_root.mkdir()
    with override_settings(REALTIME_MEDIA_ROOT=media_root):
        yield make_world(pg, media_root)


def test_every_url_can_be_called_with_real_values(world) -> None:
    """A URL the resolver has and this file cannot fill fails here, before any fuzzing."""
    assert len(ROUTES) > 50
    for route in ROUTES:
        known_path(route, world)


# A sweep of every URL: its time grows with their number (about 60 s for 90 URLs on an
# idle 2-core machine), past the suite's 120 s per test on a loaded one.
@pytest.mark.timeout(600)
def test_no_url_answers_5xx_or_logs_an_error_whatever_it_is_sent(world, pg) -> None:
    recorder = Recorder()
    logging.getLogger().addHandler(recorder)
    failures: dict[str, str] = {}
    try:
        for route in ROUTES:
            if not re.search(ONLY, route.text) or known_path(route, world) is None:
                continue
            error = _fuzz(route.name, path_strategy(route, world), world, pg, recorder)
            if error:
                failures[route.text] = error
        if re.search(ONLY, NOWHERE):  # and paths that resolve to no URL (Django's 404)
            error = _fuzz(None, paths_to_nowhere, world, pg, recorder)
            if error:
                failures[NOWHERE] = error
    finally:
        logging.getLogger().removeHandler(recorder)
    assert not failures, "\n\n".join(f"{url}:\n{error}" for url, error in failures.items())


NOWHERE = "(a path that resolves to no URL)"
paths_to_nowhere = st.one_of(
    texts.map(lambda text: "/" + quote(text.encode("utf-8", "surrogatepass"), safe="/")),
    st.sampled_from(["/nowhere/", "/events/", "/admin", "/static/x", "/.env", "//"]),
).filter(lambda path: _resolves_nowhere(path))


def _resolves_nowhere(path: str) -> bool:
    try:
        resolve(path)
    except Exception:
        return True
    return False


def _fuzz(
    name: str | None, paths: st.SearchStrategy[str], world: World, pg: Any, recorder: Recorder
) -> str | None:
    state = {"world": world}

    @settings(settings.get_profile(PROFILE))
    @given(request=st.data())
    def check(request: st.DataObject) -> None:
        sent = request.draw(requests(paths))
        recorder.records.clear()
        answer = async_to_sync(send)(sent, state["world"])
        note(f"answer: {answer.status} {answer.first_bytes[:200]!r}")
        expected = EXPECTED_5XX.get(name or "", set())
        errors = [
            f"{r.name}: {r.getMessage()[:300]}"
            for r in recorder.records
            if not (r.name == "django.request" and getattr(r, "status_code", 0) in expected)
        ]
        if sent.method == "POST" and answer.status < 400:
            # It may have deleted or changed what the next one needs (a user, a session).
            state["world"] = make_world(pg, world.media_root)
        assert answer.status < 500 or answer.status in expected, (
            f"{sent.method} {sent.path[:200]} -> {answer.status}"
        )
        assert not errors, errors

    try:
        check()
    except Exception as exc:  # this URL's failure, shrunk; the others are still tried
        # Each failure Hypothesis found, with its example (in the exception's notes).
        text = "".join(traceback.format_exception(exc))
        return "\n".join(line for line in text.splitlines() if "  File " not in line)[:8000]
    return None


# --- WebSocket routes ---------------------------------------------------------------------

WEBSOCKET_PATHS = ["/ws/violations/", "/ws/table/"]


# A handshake costs little: ten times the examples of one URL.
@settings(
    settings.get_profile(PROFILE), max_examples=10 * settings.get_profile(PROFILE).max_examples
)
@given(
    path=st.sampled_from(WEBSOCKET_PATHS),
    query=st.one_of(
        pairs.map(query_text),
        st.tuples(
            st.sampled_from(["lastEventId", "token"]),
            st.one_of(components, st.from_regex(r"[0-9]{1,25}", fullmatch=True)),
        ).map(lambda p: f"{p[0]}={p[1]}"),
    ),
    raw=st.binary(max_size=60),
    use_raw=st.booleans(),
    headers=st.dictionaries(
        st.sampled_from(["origin", "cookie", "authorization", "host", "sec-websocket-protocol"]),
        header_values,
        max_size=3,
    ),
    with_token=st.sampled_from([True, True, True, False]),
)
def test_no_websocket_query_or_header_breaks_the_handshake(
    world, path, query, raw, use_raw, headers, with_token
) -> None:
    recorder = Recorder()
    logging.getLogger().addHandler(recorder)
    try:
        async_to_sync(_websocket)(world, path, query, raw, use_raw, headers, with_token)
    finally:
        logging.getLogger().removeHandler(recorder)
    assert not [f"{r.name}: {r.getMessage()[:300]}" for r in recorder.records]


async def _websocket(
    world: World,
    path: str,
    query: str,
    raw: bytes,
    use_raw: bool,
    headers: dict[str, str],
    with_token: bool,
) -> None:
    sent = [(name.encode(), value.encode("latin-1")) for name, value in headers.items()]
    if with_token:
        sent.append((b"authorization", f"Bearer {world.token}".encode()))
    from config.asgi import application

    communicator = WebsocketCommunicator(application, path, headers=sent)
    communicator.scope["query_string"] = raw if use_raw else query.encode("latin-1")
    try:
        async with asyncio.timeout(30):
            connected, _ = await communicator.connect()
            if connected:
                await communicator.receive_nothing(0.05)
    finally:
        await communicator.disconnect()

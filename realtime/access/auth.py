"""Who may see the stream: a logged-in user, or a bearer token (header or ?token=).

Browsers cannot set headers on EventSource or WebSocket, hence the query parameter. A
token is narrower than a login: it opens the streams, /metrics and the pages and
fragments that only show (GET views marked with `accepts_token`), never the admin, the
login and password pages or the pages' forms. The JSON API (realtime.api.auth) takes
tokens its own way: every token reads there, and one of scope `act` may also act. A
request that presents a
token to such a view is judged by that token alone: a wrong, expired or revoked one is
anonymous even when a session cookie would have let it in.

The token never goes further than this module: it is taken out of the query string
before anything can put it in a redirect or a log line (realtime.access.redaction covers the
server's own access log). What the process remembers of tokens it keeps by their hash.

A stream's connect (the SSE routes, a WebSocket handshake) takes the answer this process
read for the token at most RECENT_SECONDS ago: a crowd of clients reconnecting with one
token asks the database once, not once each, and no connect holds a database connection
while it waits for its turn. Only streams do: realtime.access.open_streams checks the token
and user of every open stream again every CHECK_INTERVAL seconds and closes those no
longer valid, so a stream let in on an answer two seconds old ends as one opened just
before the revocation does. An expiry is checked at each use. Pages, /metrics and the API
read the token afresh each time.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host
from django.utils import timezone

from realtime import pool
from realtime.access.one_at_a_time import OneAtATime
from realtime.models import ApiToken

logger = logging.getLogger(__name__)

TOKEN_PARAM = "token"
LAST_USED_PRECISION = timedelta(minutes=1)
# Set on a request (HTTP) or scope (WebSocket) that a token authenticated: which one.
TOKEN_ID_ATTR = "auth_token_id"

View = TypeVar("View", bound=Callable[..., Any])


# How old a token's answer a stream's connect may take (see the module's docstring), and
# how many answers a process keeps (past it, it forgets them all; a wrong token's "no" is
# an answer too, so a crowd with a revoked token does not ask once each either).
RECENT_SECONDS = 2.0
RECENT_MAX = 10_000


def accepts_token(view: View) -> View:
    """Mark a view that a bearer token may open (it must only show, on GET)."""
    view.accepts_token = True  # type: ignore[attr-defined]
    return view


def opens_stream(view: View) -> View:
    """Mark a stream's view: a token opens it, answered from what the process read of the
    token in the last RECENT_SECONDS (realtime.access.open_streams checks it again while
    the stream is open)."""
    view.opens_stream = True  # type: ignore[attr-defined]
    return accepts_token(view)


def token_from_parts(authorization: str | None, query: dict[str, list[str]]) -> str | None:
    if authorization:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() == "bearer" and key.strip():
            return key.strip()
        return ""  # present but not a bearer token: judged (and refused) as a wrong token
    values = query.get(TOKEN_PARAM)
    if values:
        return values[-1]
    return None


def valid_token(key: str) -> ApiToken | None:
    """The token `key` is, with its user; None for a wrong, expired or revoked token, or
    one of an inactive user."""
    if not key:
        return None
    token = _valid(ApiToken.hash_key(key))
    if token is not None:
        _touch(token)
    return token


def _valid(key_hash: str) -> ApiToken | None:
    return (
        ApiToken.objects.select_related("user")
        .filter(key_hash=key_hash, user__is_active=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .first()
    )


def _touch(token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        # Not a write per request: to the minute is enough to tell a token in use.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)


def token_holder(key: str) -> tuple[Any, int | None]:
    """The user a token stands for and the token's id; anonymous for a wrong, expired or
    revoked token, or one of an inactive user."""
    token = valid_token(key)
    if token is None:
        return AnonymousUser(), None
    return token.user, token.pk


@dataclass(frozen=True)
class _Answer:
    read_at: float  # time.monotonic()
    user: Any  # None: no valid token has this hash (wrong, revoked, an inactive user's)
    token_id: int | None
    expires_at: datetime | None

    def holder(self) -> tuple[Any, int | None]:
        if self.user is None or (self.expires_at is not None and self.expires_at <= timezone.now()):
            return AnonymousUser(), None
        # A copy: the requests of one token share no user object (nor what it caches).
        return copy.copy(self.user), self.token_id


class RecentTokens:
    """What this process read of each token in the last RECENT_SECONDS, by its hash."""

    def __init__(self) -> None:
        self._answers: dict[str, _Answer] = {}
        self._asking = OneAtATime()

    def known(self, key: str) -> tuple[Any, int | None] | None:
        """The holder of `key` (as token_holder) if this process knows it; None if the
        database must be asked (with holder(), from sync code)."""
        if not key:
            return AnonymousUser(), None
        answer = self._fresh(ApiToken.hash_key(key))
        return None if answer is None else answer.holder()

    def holder(self, key: str) -> tuple[Any, int | None]:
        """The holder of `key`, as token_holder, from a recent answer or the database. The
        database is asked by one thread per token at a time (the others wait for its
        answer), and its connection given back at once."""
        if not key:
            return AnonymousUser(), None
        key_hash = ApiToken.hash_key(key)
        answer = self._fresh(key_hash)
        if answer is not None:
            return answer.holder()
        token = None
        try:
            with self._asking.turn(key_hash):
                answer = self._fresh(key_hash)
                if answer is None:
                    token = _valid(key_hash)
                    answer = self._remember(key_hash, token)
            if token is not None:
                _touch(token)  # after its turn: the others need not wait for the write
        finally:
            pool.release()
        return answer.holder()

    def forget(self, token_ids: Iterable[int] = (), user_ids: Iterable[int] = ()) -> None:
        """Forget the answers of these tokens and of these users' tokens (no longer valid:
        realtime.access.open_streams found so)."""
        tokens, users = set(token_ids), set(user_ids)
        if not tokens and not users:
            return
        for key_hash, answer in list(self._answers.items()):
            if answer.token_id in tokens or (answer.user is not None and answer.user.pk in users):
                self._answers.pop(key_hash, None)

    def _fresh(self, key_hash: str) -> _Answer | None:
        answer = self._answers.get(key_hash)
        if answer is None or time.monotonic() - answer.read_at > RECENT_SECONDS:
            return None
        return answer

    def _remember(self, key_hash: str, token: ApiToken | None) -> _Answer:
        answer = _Answer(
            time.monotonic(),
            None if token is None else token.user,
            None if token is None else token.pk,
            None if token is None else token.expires_at,
        )
        if len(self._answers) >= RECENT_MAX:
            self._answers.clear()
        self._answers[key_hash] = answer
        return answer


recent_tokens = RecentTokens()


def without_token(query_string: str) -> str:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    return urlencode([(k, v) for k, v in pairs if k != TOKEN_PARAM])


class BearerTokenMiddleware:
    """HTTP: takes a token out of the request, and sets request.user from it for the views
    that accept one (after AuthenticationMiddleware)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        self._take_token(request)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        self._take_token(request)
        response: HttpResponse = await self.get_response(request)
        return response

    @staticmethod
    def _take_token(request: HttpRequest) -> None:
        key = token_from_parts(request.headers.get("Authorization"), dict(request.GET.lists()))
        request._bearer_token = key  # type: ignore[attr-defined]
        if TOKEN_PARAM in request.GET:
            query = request.GET.copy()
            del query[TOKEN_PARAM]
            request.GET = query  # type: ignore[assignment]  # (a mutable copy)
            request.META["QUERY_STRING"] = without_token(request.META.get("QUERY_STRING", ""))

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponse | None:
        key = getattr(request, "_bearer_token", None)
        if key is None:
            return None
        if not getattr(view, "accepts_token", False) or request.method not in ("GET", "HEAD"):
            return None  # not a credential here: the session, if any, decides
        try:
            if getattr(view, "opens_stream", False):
                request.user, token_id = recent_tokens.holder(key)
            else:
                request.user, token_id = token_holder(key)
        except Exception as exc:
            if pool.exhausted(exc):
                return pool.busy(request)
            raise
        setattr(request, TOKEN_ID_ATTR, token_id)
        return None


class WebSocketTokenMiddleware(BaseMiddleware):
    """WebSocket: sets scope["user"] from a token, and takes it out of the query string;
    inside AuthMiddlewareStack."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        raw_query = scope.get("query_string", b"").decode("latin-1")
        query: dict[str, list[str]] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            query.setdefault(name, []).append(value)
        key = token_from_parts(authorization, query)
        if key is not None:
            # A handshake opens a stream: the token's recent answer will do, read on the
            # event loop when the process has it.
            known = recent_tokens.known(key)
            try:
                user, token_id = known or await database_sync_to_async(recent_tokens.holder)(key)
            except Exception as exc:
                if not pool.exhausted(exc):
                    raise
                logger.warning("no database connection within the pool's timeout: refused")
                return await WebsocketDenier()(scope, receive, send)
            scope = dict(
                scope,
                user=user,
                query_string=without_token(raw_query).encode("latin-1"),
                **{TOKEN_ID_ATTR: token_id},
            )
        return await super().__call__(scope, receive, send)


class SameOriginValidator:
    """WebSocket: refuse a handshake from a page of another origin (scheme, host and port).

    A browser always sends the page's Origin, and its cookie with it: a page of any other
    origin (another port on the same host included) could otherwise read the stream as
    the victim. Accepted: the request's own origin (its Host, if one of ALLOWED_HOSTS, and
    the scheme the client used, X-Forwarded-Proto behind a TLS proxy), the origins of
    CSRF_TRUSTED_ORIGINS, and no Origin at all (scripts, which authenticate by token).
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not allowed_origin(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def allowed_origin(scope: dict[str, Any]) -> bool:
    headers = {name.lower(): value for name, value in scope.get("headers") or []}
    if b"origin" not in headers:
        return True
    origin = headers[b"origin"].decode("latin-1").strip().lower()
    if origin in {o.lower() for o in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    secure = scope.get("scheme") == "wss" or (
        settings.SECURE_PROXY_SSL_HEADER is not None
        and headers.get(b"x-forwarded-proto", b"").decode("latin-1").strip().lower() == "https"
    )
    return bool(origin == f"{'https' if secure else 'http'}://{host}")

"""Who may see the stream: a logged-in user, or a bearer token (header or ?token=).

Browsers cannot set headers on EventSource or WebSocket, hence the query parameter.
A request that presents a token is judged by that token alone: a wrong one is anonymous
even when a session cookie would have let it in.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from realtime.models import ApiToken

TOKEN_PARAM = "token"


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


def user_for_token(key: str) -> Any:
    if not key:
        return AnonymousUser()
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=ApiToken.hash_key(key), user__is_active=True)
        .first()
    )
    if token is None:
        return AnonymousUser()
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user


class BearerTokenMiddleware:
    """HTTP: sets request.user from a token; after AuthenticationMiddleware."""

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
        key = self._token(request)
        if key is not None:
            request.user = user_for_token(key)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        key = self._token(request)
        if key is not None:
            request.user = await database_sync_to_async(user_for_token)(key)
        return await self.get_response(request)

    @staticmethod
    def _token(request: HttpRequest) -> str | None:
        return token_from_parts(request.headers.get("Authorization"), dict(request.GET.lists()))


class WebSocketTokenMiddleware(BaseMiddleware):
    """WebSocket: sets scope["user"] from a token; inside AuthMiddlewareStack."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        key = token_from_parts(authorization, query)
        if key is not None:
            scope = dict(scope, user=await database_sync_to_async(user_for_token)(key))
        return await super().__call__(scope, receive, send)


class SameSiteOriginValidator(OriginValidator):
    """Refuse handshakes whose Origin is not in ALLOWED_HOSTS; accept those with none.

    Channels' AllowedHostsOriginValidator refuses a missing Origin, but scripts (not
    browsers, which always send one) connect without it and authenticate by token.
    """

    def __init__(self, application: Any) -> None:
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:
            allowed = ["localhost", "127.0.0.1", "[::1]"]
        super().__init__(application, allowed)

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)

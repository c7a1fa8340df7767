"""Who calls the API: a bearer token (judged by the token alone, as on every path), else
the session of a login, which must send its CSRF token with a POST.

A token is `read` or `act` (realtime.models.ApiToken.scope): both read; only an `act`
token may change something, and only here (realtime.access.auth keeps tokens away from
the HTML forms and the admin).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import HttpBearer, SessionAuth

from realtime.access import scopes
from realtime.access.auth import TOKEN_ID_ATTR, valid_token
from realtime.models import ApiToken


def presented_token(request: HttpRequest) -> str | None:
    """The token the request carries (header or ?token=; BearerTokenMiddleware took it)."""
    return getattr(request, "_bearer_token", None)


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>` (or `?token=`, as for the streams)."""

    def __call__(self, request: HttpRequest) -> ApiToken | None:
        key = presented_token(request)
        return None if key is None else self.authenticate(request, key)

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        found = valid_token(token)
        if found is not None:
            request.user = found.user
            setattr(request, TOKEN_ID_ATTR, found.pk)
        return found


class LoginSession(SessionAuth):
    """A login's session cookie (CSRF checked on POST), unless a token was presented: a
    wrong token is not rescued by a cookie."""

    def __call__(self, request: HttpRequest) -> Any:
        if presented_token(request) is not None:
            return None
        return super().__call__(request)


AUTH = [BearerToken(), LoginSession(csrf=True)]


def scope_of(request: HttpRequest) -> scopes.Scope:
    return scopes.of_user(request.user)


def username(request: HttpRequest) -> str:
    return str(request.user.get_username())


def require_act(request: HttpRequest) -> None:
    """A read token may not change anything: a 403 that says how to get one that may."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiToken) and auth.scope != ApiToken.ACT:
        raise HttpError(
            403,
            "This token may only read; acting needs a token issued with"
            " `manage.py issue_token USER --scope act`.",
        )

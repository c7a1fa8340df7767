"""Closed by default, decided before any database is asked: where a token is read from,
pages and streams without credentials, bad requests logged in one line (the rest of the
checks, with users and tokens, in tests/test_access.py)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.test import Client

from realtime.access.auth import token_from_parts


@pytest.mark.parametrize(
    ("authorization", "query", "expected"),
    [
        ("Bearer abc", {}, "abc"),
        ("bearer  abc ", {}, "abc"),
        (None, {"token": ["abc"]}, "abc"),
        ("Basic dXNlcg==", {"token": ["abc"]}, ""),
        (None, {}, None),
    ],
)
def test_token_is_read_from_header_or_query(authorization, query, expected) -> None:
    assert token_from_parts(authorization, query) == expected


def test_pages_need_a_login() -> None:
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert Client().get("/accounts/login/").status_code == 200


def test_rows_stream_and_pages_need_credentials() -> None:
    assert Client().get("/events/violations/rows/").status_code == 401
    for path in ["/", "/rows/", "/legacy/"]:
        assert Client().get(path).status_code == 302, path


@pytest.mark.parametrize(
    "headers", [{"Host": "testserver,"}, {"Host": "evil.example"}, {"Host": "a b"}]
)
def test_a_bad_host_header_is_a_400_logged_in_one_line_without_a_traceback(headers) -> None:
    # Any client can send one: a traceback each would flood the log (Django's own logs it
    # with one, at ERROR, on django.security.DisallowedHost).
    with configured_log_output("django.security.DisallowedHost") as written:
        response = Client().get("/accounts/login/", headers=headers)
    assert response.status_code == 400
    lines = written.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "WARNING django.security.DisallowedHost Invalid HTTP_HOST header" in lines[0]


def test_a_body_that_cannot_be_parsed_is_a_400_logged_in_one_line_without_a_traceback() -> None:
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = "a" * 32  # the check reads the body for the form's token
    with configured_log_output("django.request") as written:
        response = client.post("/accounts/login/", b"x", content_type="multipart/form-data")
    assert response.status_code == 400
    lines = written.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "WARNING django.request Bad request (Unable to parse request body)" in lines[0]


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [("/nowhere/", {}, 404), ("/accounts/login/", {"Host": "bad host"}, 400)],
)
def test_an_unparsable_body_does_not_turn_an_error_page_into_a_500(path, headers, status) -> None:
    # Django's error views (requires_csrf_token) read a POST's body when nothing did before:
    # a URL that does not resolve, a Host header refused before the CSRF check.
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.cookies["csrftoken"] = "a" * 32
    response = client.post(path, b"x", content_type="multipart/form-data", headers=headers)
    assert response.status_code == status


@contextmanager
def configured_log_output(name: str) -> Iterator[io.StringIO]:
    """What the settings' LOGGING writes for records of logger `name` (its stream handlers
    and its parents', as far as records propagate), written here instead."""
    handlers: list[logging.StreamHandler[Any]] = []
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None:
        handlers += [h for h in logger.handlers if type(h) is logging.StreamHandler]
        logger = logger.parent if logger.propagate else None
    written = io.StringIO()
    previous = [handler.setStream(written) for handler in handlers]
    try:
        yield written
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)

"""A request runs its middleware and view in one thread (realtime.http_handler).

Django's own ASGI handler sends each of a middleware's methods to the request's thread and
back: about fifteen switches between the event loop and a thread for one page here, a
third of Daphne's CPU for a stream opened through Pushpin (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref import sync
from channels.testing import HttpCommunicator

from config.asgi import django_asgi_app

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def switches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Each call that moves work from the event loop to a thread, or back."""
    seen: list[str] = []
    for adapter in (sync.SyncToAsync, sync.AsyncToSync):
        original = adapter.__call__

        def counting(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            called = getattr(self, "func", None) or getattr(self, "awaitable", None)
            seen.append(getattr(called, "__qualname__", repr(called)))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(adapter, "__call__", counting)
    yield seen


async def test_a_page_crosses_to_its_thread_once(switches: list[str]) -> None:
    page = HttpCommunicator(
        django_asgi_app, "GET", "/accounts/login/", headers=[(b"host", b"localhost")]
    )
    response = await page.get_response(timeout=10)
    assert response["status"] == 200
    # request_started, the middleware and the view, request_finished: one crossing each.
    assert len(switches) <= 3, switches

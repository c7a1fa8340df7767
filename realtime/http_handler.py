"""Django's ASGI handler, running each request's middleware and view in one thread.

Django builds an ASGI handler's middleware chain for the event loop, and a middleware that
can run either way then runs as a coroutine that sends each of its `process_request`,
`process_view` and `process_response` to the request's thread and back: about fifteen
switches between the event loop and a thread for one request through this project's
middleware (WhiteNoise, which is synchronous only, adds two more). Every view here is
synchronous, so the whole chain runs in the request's thread instead, as under WSGI: one
switch there and one back. An SSE stream's body is still an async iterator, which the
handler consumes on the event loop (realtime.streams.sse).

What it saves: a third of Daphne's CPU per stream opened through Pushpin
(docs/performance.md, "The request's thread").
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest
from django.http.response import HttpResponseBase


class OneThreadASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # The request's thread (asgiref's thread-sensitive context, one per request): where
        # request_started and request_finished run too, and its database connection lives.
        response: HttpResponseBase = await sync_to_async(self.get_response, thread_sensitive=True)(
            request
        )
        return response


def get_asgi_application() -> OneThreadASGIHandler:
    """As django.core.asgi.get_asgi_application()."""
    import django

    django.setup(set_prefix=False)
    return OneThreadASGIHandler()

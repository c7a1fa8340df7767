"""Django's ASGI handler, running each request's middleware and view in one thread.

Django builds an ASGI handler's middleware chain for the event loop, and a middleware that
can run either way then runs as a coroutine that sends each of its `process_request`,
`process_view` and `process_response` to the request's thread and back; WhiteNoise, which
is synchronous only, sends the rest of the chain back to the loop: 19 switches between the
event loop and a thread for one page here (tests/test_request_thread.py). Every view here
is synchronous, so the whole chain runs in the request's thread instead, as under WSGI: at
most three switches (request_started, the request, request_finished). An SSE stream's body
is still an async iterator, which the handler consumes on the event loop
(realtime.streams.sse).

What it saves: half of Daphne's CPU per stream opened through Pushpin
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

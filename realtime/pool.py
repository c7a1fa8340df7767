"""The process's database connections (psycopg's pool, REALTIME_DB_POOL_SIZE): a request
holds one only while it queries, and gets a 503 when none comes in time.

Django keeps a thread's connection from its first query until it is closed. A request that
keeps it while it waits for something else (its thread's turn among hundreds, the event
loop, a lock) keeps every other request waiting for the pool: 8,000 SSE connects at 250 a
second to one Daphne made the pool's wait (10 s) expire for 74 % of them, each an HTTP 500
(issue 27).
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin
from psycopg_pool import PoolTimeout

# What a 503 asks the client to wait (an EventSource retries by itself, after its own delay).
RETRY_AFTER_SECONDS = 5


def release() -> None:
    """Give this thread's connection back to the pool now, unless a transaction holds it."""
    if not connection.in_atomic_block:
        connection.close()


def size() -> int:
    """The connections the pool may hold (REALTIME_DB_POOL_SIZE)."""
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    return int(pool["max_size"]) if isinstance(pool, dict) else 1


def timeout() -> float:
    """Seconds a request waits for a connection (REALTIME_DB_POOL_TIMEOUT)."""
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    return float(pool["timeout"]) if isinstance(pool, dict) else 10.0


def exhausted(exc: BaseException) -> bool:
    """Whether `exc` is the pool giving up on a connection (Django raises its own
    OperationalError from psycopg_pool's PoolTimeout)."""
    return isinstance(exc, PoolTimeout) or isinstance(exc.__cause__, PoolTimeout)


def busy(request: HttpRequest) -> HttpResponse:
    """A 503 for a request the pool had no connection for: try again shortly. (Django logs
    it, as every 5xx, in one line: "Service Unavailable: <path>".)"""
    response = HttpResponse(
        "The server is busy: try again in a few seconds.\n", status=503, content_type="text/plain"
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class PoolTimeoutMiddleware(MiddlewareMixin):
    """A view that got no database connection in time: a 503 with Retry-After, not a 500."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return busy(request) if exhausted(exception) else None

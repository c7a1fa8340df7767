"""One read of the log for the many identical ones Pushpin makes at once.

When Pushpin restarts, or a change is published that its held streams cannot chain
(realtime.streams.pushpin), thousands of them ask Django for what they lack within a
second, nearly all from the same position: one read of the log each would be thousands
of identical queries. A request whose read (stream name, position, limit) is already
being made waits for that read and shares its result (issue #27).

Only Pushpin's requests share (django-eventstream's view, EventLogStorage.get_events): a
read that began a moment before such a request may lack a change committed since, and
Pushpin then sees the next change out of its stream's chain and asks again. A stream this
process serves itself must not miss it, so its reads (realtime.streams.sse) are its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from realtime import metrics

T = TypeVar("T")


@dataclass
class _Flight(Generic[T]):
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None
    sharing: int = 0  # the requests waiting for it


class SharedReads(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[T]] = {}

    def read(self, key: Hashable, read: Callable[[], T]) -> T:
        """`read()`'s result, or that of the same read another thread is making now."""
        with self._lock:
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            else:
                flight.sharing += 1
        if not leading:
            flight.done.wait()
            metrics.LOG_READS.labels("shared").inc()
            if flight.error is not None:
                raise flight.error
            return flight.result  # type: ignore[return-value]
        metrics.LOG_READS.labels("made").inc()
        try:
            flight.result = read()
            return flight.result
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def sharing(self, key: Hashable) -> int:
        """How many requests wait for the read of `key` in flight now."""
        with self._lock:
            flight = self._flights.get(key)
            return 0 if flight is None else flight.sharing

"""One question to the database at a time per key, for the answers a process keeps a few
seconds (a token's holder, a user's scope): when a crowd of connects asks the same one at
once, one thread asks and the others wait for its answer, holding no connection; as long
as a request would wait for the pool (realtime.pool), then they give up."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

from psycopg_pool import PoolTimeout

from realtime import pool


class OneAtATime:
    """A lock per key, made when first wanted and dropped when no thread holds or waits
    for it (the keys asked about over a process's life are not kept)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, tuple[threading.Lock, int]] = {}

    @contextmanager
    def turn(self, key: Hashable) -> Iterator[None]:
        """Holds the key's lock; raises psycopg_pool's PoolTimeout (the database is as
        good as out of reach) when it is not free within the pool's timeout."""
        with self._guard:
            lock, wanted = self._locks.get(key, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._locks[key] = (lock, wanted + 1)
        try:
            if not lock.acquire(timeout=pool.timeout()):
                raise PoolTimeout("no turn to ask the database in time")
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                _, wanted = self._locks[key]
                if wanted == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, wanted - 1)

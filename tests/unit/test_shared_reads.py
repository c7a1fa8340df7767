"""Pushpin's identical requests share one read of the log (realtime.streams.shared_reads)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from realtime.streams.shared_reads import SharedReads


def test_requests_arriving_during_a_read_share_it_and_later_ones_read_again() -> None:
    shared: SharedReads[list[int]] = SharedReads()
    reads = 0
    started, release = threading.Event(), threading.Event()

    def read() -> list[int]:
        nonlocal reads
        reads += 1
        started.set()
        release.wait(5)
        return [reads]

    with ThreadPoolExecutor(21) as pool:
        leader = pool.submit(shared.read, ("violations", 41), read)
        assert started.wait(5)
        followers = [pool.submit(shared.read, ("violations", 41), read) for _ in range(19)]
        other = pool.submit(shared.read, ("violations", 7), lambda: [-1])  # another range
        assert other.result(5) == [-1]
        while shared.sharing(("violations", 41)) < 19:  # every follower is waiting
            threading.Event().wait(0.01)
        release.set()
        results = [leader.result(5)] + [f.result(5) for f in followers]
    assert reads == 1
    assert results == [[1]] * 20
    assert shared.read(("violations", 41), read) == [2]  # nothing is kept once it is done


def test_a_failed_read_fails_every_request_that_shared_it() -> None:
    shared: SharedReads[list[int]] = SharedReads()
    started, release = threading.Event(), threading.Event()

    def read() -> list[int]:
        started.set()
        release.wait(5)
        raise LookupError("pruned")

    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(shared.read, "key", read)]
        assert started.wait(5)
        futures += [pool.submit(shared.read, "key", read) for _ in range(4)]
        while shared.sharing("key") < 4:
            threading.Event().wait(0.01)
        release.set()
        for future in futures:
            with pytest.raises(LookupError, match="pruned"):
                future.result(5)

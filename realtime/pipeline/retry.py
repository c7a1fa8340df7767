"""Waiting before trying again: the listener, pruning and the bridge reconnect with it."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, initial: float, cap: float) -> float:
    """Capped exponential backoff with jitter (half to full of the step)."""
    step = min(cap, initial * 2.0 ** min(attempt, 32))
    return step * random.uniform(0.5, 1.0)

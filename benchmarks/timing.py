"""Shared timing loop of the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable


def rate(step: Callable[[], object], seconds: float, warmup: int = 5) -> float:
    """Calls of `step` per second over about `seconds`, after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - t0)

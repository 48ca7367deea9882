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


def sgemm_gflops(seconds: float = 1.0) -> float:
    """This machine's float32 matrix-product rate right now (1280x200 @ 200x600, a GRU-sized product):
    shared VMs drift, and this calibrates the other figures of a run."""
    import torch

    a, b = torch.randn(1280, 200), torch.randn(200, 600)
    out = torch.empty(1280, 600)
    return rate(lambda: torch.mm(a, b, out=out), seconds, warmup=10) * 2 * 1280 * 200 * 600 / 1e9

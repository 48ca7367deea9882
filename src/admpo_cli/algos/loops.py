"""The two loops the built-in algorithms train with, named by plain functions that import them when called: a
registration points at its loop through a reference a reader (and an editor's go-to-definition) can follow
from `--preset` to the loop, and resolving a config (`presets show`, `--help`) stays free of torch."""

from __future__ import annotations

from typing import Any


def offline_loop(cfg, run, device, data=None, model=None, hooks=None) -> dict[str, Any]:
    """Algorithm 3 (algos/offline.py: train_offline)."""
    from .offline import train_offline

    return train_offline(cfg, run, device, data, model, hooks)


def online_loop(cfg, run, device, data=None, model=None, hooks=None) -> dict[str, Any]:
    """Algorithm 2 (algos/online.py: train_online)."""
    from .online import train_online

    return train_online(cfg, run, device, data, model, hooks)

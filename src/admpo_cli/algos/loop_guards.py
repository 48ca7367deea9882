"""What both training loops (offline.py, online.py) check the same way: SAC's running losses and the
divergence guard on them, and the refusal to resume a checkpoint written with other settings."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from ..errors import DivergenceError, UserError
from ..rundir import torch_load

LOSSES = ("critic_loss", "actor_loss", "q_mean")


def loss_sums() -> dict:
    return {**dict.fromkeys(LOSSES, 0.0), "n": 0}


def add_losses(acc: dict, out: dict) -> None:
    """Add one update's losses (tensors; read only when averaged, so no host sync per update)."""
    for k in LOSSES:
        if k in out:
            acc[k] += out[k]
    acc["n"] += 1


def mean_losses(acc: dict) -> dict[str, float]:
    return {k: float(acc[k]) / max(acc["n"], 1) for k in LOSSES}


def ensure_finite(losses: dict[str, float], where: str, last_good_path: Path,
                  save_last_good: Callable[[Path], None]) -> None:
    """Stop a diverged run, keeping the last state whose losses were finite."""
    if all(math.isfinite(v) for v in losses.values()):
        return
    save_last_good(last_good_path)
    raise DivergenceError(f"non-finite losses at {where} ({losses}); last good state saved to {last_good_path}")


def read_checkpoint(path: Path, config_fp: str) -> dict:
    """A checkpoint of this run's settings; one written with other settings is refused."""
    ck = torch_load(path)
    if ck.get("fingerprint") != config_fp:
        raise UserError(f"{path}: written with other settings (config fingerprint {ck.get('fingerprint') or 'none'}, "
                        f"now {config_fp}); --force starts the run over")
    return ck

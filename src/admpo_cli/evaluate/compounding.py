"""Compounding error (paper Figure 2): roll each model forward from real held-out states with the
recorded actions and compare with the real states at every horizon."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.dataset import Transitions, holdout_mask, start_windows, steps_from_start, steps_to_end
from ..envs.termination import never
from ..errors import UserError
from ..models.base import DynamicsModel
from ..models.rollout import rollout

OVERFLOW = 1e6  # an error above this counts as diverged


@dataclass
class Starts:
    rows: np.ndarray      # start rows t (state observations[t])
    remaining: np.ndarray  # real steps available after t inside the episode


def pick_starts(data: Transitions, m: int, n: int, seed: int, ratio: float, max_n: int,
                min_remaining: int = 1, how: str = "last") -> Starts:
    """Start points in the model's hold-out split (`how`, model.holdout): m-1 real steps of history before,
    at least min_remaining real steps after. (With a `random` split the continuations after a held-out start
    run through training transitions.)"""
    hold = holdout_mask(data, ratio, max_n, seed, how)
    if not hold.any():
        hold = np.ones(len(data), bool)
    remaining = steps_to_end(data.ends)
    ok = hold & (steps_from_start(data.ends) >= m - 1) & (remaining >= min_remaining)
    rows = np.flatnonzero(ok)
    if len(rows) == 0:
        raise UserError("no hold-out start points with enough history; lower model.m or use more data")
    rng = np.random.default_rng(seed)
    # favour long continuations: sample in proportion to how many horizons a start can serve
    w = remaining[rows].astype(float)
    pick = rng.choice(rows, size=min(n, len(rows)), replace=False, p=w / w.sum())
    return Starts(np.sort(pick), remaining[np.sort(pick)])


def per_horizon_error(pred: np.ndarray, real: np.ndarray, valid: np.ndarray) -> list[dict]:
    """pred/real (B, H, obs), valid (B, H) -> per horizon: mean MSE over state dims, 95 % interval."""
    out = []
    with np.errstate(over="ignore", invalid="ignore"):
        err = ((pred.astype(np.float64) - real) ** 2).mean(-1)
    for h in range(pred.shape[1]):
        e = err[valid[:, h], h]
        n = len(e)
        if n == 0:
            continue
        bad = ~np.isfinite(e) | (e > OVERFLOW)
        e_ok = np.where(bad, OVERFLOW, e)
        mean = float(e_ok.mean())
        half = float(1.96 * e_ok.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        out.append({"horizon": h + 1, "mse_mean": mean, "ci_low": max(mean - half, 0.0), "ci_high": mean + half,
                    "n": n, "overflow_frac": float(bad.mean())})
    return out


@torch.no_grad()
def compounding_curves(model: DynamicsModel, data: Transitions, starts: Starts, horizon: int,
                       device: torch.device, fixed_index: int | None = None, k_mode: str = "row",
                       seed: int = 0, dropout_at_inference: bool = False) -> list[dict]:
    rows = torch.as_tensor(starts.rows, device=device)
    obs = torch.as_tensor(data.observations, device=device)
    act = torch.as_tensor(data.actions, device=device)
    nxt = torch.as_tensor(data.next_observations, device=device)
    n = len(data)
    w = start_windows(obs, act, rows, model.context)
    fut = (rows[:, None] + torch.arange(horizon, device=device)).clamp_max(n - 1)
    valid = torch.arange(horizon, device=device)[None, :] < torch.as_tensor(starts.remaining, device=device)[:, None]
    gen = torch.Generator(device=device).manual_seed(seed)
    ro = rollout(model, lambda o: o, w["hist_obs"], w["hist_act"], w["obs"], horizon, never, "none", 0.0, k_mode,
                 chunk_size=4096, generator=gen, fixed_index=fixed_index, actions=act[fut], sample=False,
                 dropout_at_inference=dropout_at_inference)
    B = len(rows)
    pred = torch.full((B, horizon, data.obs_dim), float("nan"), device=device)
    pred[ro.rows, ro.steps] = ro.next_obs
    return per_horizon_error(pred.cpu().numpy(), nxt[fut].cpu().numpy(), valid.cpu().numpy())


def parse_horizons(text: str) -> int:
    """'1..100' or '100' -> the largest horizon (errors are reported at every horizon up to it)."""
    try:
        return int(text.split("..")[-1])
    except ValueError:
        raise UserError(f"--horizons: expected like 1..100, got {text!r}") from None

"""A policy's value estimated from data only: its return in a learned dynamics model, imagined from the
dataset's real start windows (model-based off-policy evaluation). It reads no simulator, so an offline
hyper-parameter search can select on it without leaking the test environment (`admpo tune --select
model-return`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..data.dataset import Transitions, sample_start_windows
from ..models.base import DynamicsModel
from ..models.rollout import rollout


def model_return(model: DynamicsModel, policy: Callable[[torch.Tensor], torch.Tensor], data: Transitions,
                 termination: Callable[[torch.Tensor], torch.Tensor], horizon: int = 100, n_starts: int = 500,
                 gamma: float = 1.0, seed: int = 0, device: torch.device | str = "cpu") -> dict[str, float]:
    """The mean over `n_starts` start windows (drawn with `seed`) of sum_t gamma^t r_t over `horizon` imagined
    steps of the deterministic `policy`: the model's predicted reward without any penalty, its mean prediction (no
    sampling, no dropout), an episode ending where the task's termination function says so."""
    rows, w = sample_start_windows(data, model.context, n_starts, np.random.default_rng(seed), device)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    with torch.no_grad():
        out = rollout(model, policy, w["hist_obs"], w["hist_act"], w["obs"], horizon, termination, uncertainty="none",
                      beta=0.0, generator=gen, dropout_at_inference=False, sample=False)
    discount = torch.pow(torch.tensor(gamma, dtype=torch.float64), out.steps.double())
    returns = torch.zeros(len(rows), dtype=torch.float64).index_add_(0, out.rows.cpu(),
                                                                      (out.raw_rew.double() * discount).cpu())
    return {"model_return": float(returns.mean()), "model_return_std": float(returns.std()),
            "model_return_starts": len(rows), "model_return_horizon": horizon}

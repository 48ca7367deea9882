"""Inputs normalised by the dataset's state and action statistics, stored with the model's weights."""

from __future__ import annotations

import torch
from torch import nn


class Normalizer(nn.Module):
    """Data mean/std of states and actions, stored with the weights."""

    def __init__(self, obs_dim: int, act_dim: int):
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("act_mean", torch.zeros(act_dim))
        self.register_buffer("act_std", torch.ones(act_dim))

    def fit(self, obs: torch.Tensor, act: torch.Tensor) -> None:
        """Mean and (unbiased) std over the rows, computed in float64 by numpy: one thread, one order, so the
        statistics (and every fit after them) are the same whatever torch's thread count (torch splits a long
        column sum between its threads, which changes the rounding)."""
        for x, mean, std in ((obs, self.obs_mean, self.obs_std), (act, self.act_mean, self.act_std)):
            a = x.detach().cpu().double().numpy()
            mean.copy_(torch.from_numpy(a.mean(0)))
            std.copy_(torch.from_numpy(a.std(0, ddof=1)).clamp_min(1e-6))

    def obs(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.obs_mean) / self.obs_std

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.act_mean) / self.act_std

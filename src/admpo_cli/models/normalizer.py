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
        self.obs_mean.copy_(obs.mean(0))
        self.obs_std.copy_(obs.std(0).clamp_min(1e-6))
        self.act_mean.copy_(act.mean(0))
        self.act_std.copy_(act.std(0).clamp_min(1e-6))

    def obs(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.obs_mean) / self.obs_std

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.act_mean) / self.act_std

"""An uncertainty penalty as a third-party package would write it, in one file: the q-quantile over the K
candidate predictions of the norm of their predicted next-state std, with its own hyper-parameter
`rollout.quantile` (a key of the config's `rollout:` section). Registered through the `admpo.penalties` entry
point (tests/test_plugins.py installs it as a distribution)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from admpo_cli.extend import PenaltySpec


@dataclass(frozen=True)
class QuantileSettings:
    quantile: float = 0.9  # which quantile over the candidates

    def __post_init__(self):
        if not 0.0 <= self.quantile <= 1.0:
            raise ValueError(f"rollout.quantile: expected a number in [0, 1], got {self.quantile}")


def quantile_std(mean: torch.Tensor, var: torch.Tensor, obs_dim: int, settings: QuantileSettings) -> torch.Tensor:
    """mean, var: (B, K, obs_dim + 1). U = the quantile over K of ||sigma_k(s')||_2."""
    std_norm = var[..., :obs_dim].sqrt().norm(dim=-1)  # (B, K)
    return torch.quantile(std_norm, settings.quantile, dim=1)


PENALTY = PenaltySpec("toy-quantile", quantile_std, QuantileSettings,
                      description="quantile over the candidates of the predicted std's norm (test plugin)")

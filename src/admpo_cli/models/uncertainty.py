"""Uncertainty quantifiers. Inputs are per-k (or per-member) predictions of the SAME next step.

mean, var: (B, K, D) with D = obs_dim + 1 (absolute next state, then reward).
"""

from __future__ import annotations

import torch

from .. import registry
from ..registry import PenaltySpec


def adm_paper(mean: torch.Tensor, var: torch.Tensor, obs_dim: int) -> torch.Tensor:
    """Eq. (4): || 1/m sum_k (sigma_k^2 + mu_k^2) - mu_bar^2 ||_1 over the next state's dims, the L1 norm
    of the variance of the mixture over k (the reward is not part of U_ADM).

    Computed as mean_k sigma^2 + var_k(mu) (the same quantity, without the cancellation of squares).
    """
    mix = var[..., :obs_dim].mean(1) + mean[..., :obs_dim].var(1, unbiased=False)
    return mix.abs().sum(-1)


def adm_authors(mean: torch.Tensor, obs_dim: int) -> torch.Tensor:
    """Authors' code: sqrt(mean over state dims of the variance over k of the predicted next states)."""
    return mean[..., :obs_dim].var(1, unbiased=False).mean(-1).sqrt()


def max_aleatoric(var: torch.Tensor, obs_dim: int | None = None) -> torch.Tensor:
    """MOPO: max over members (all of them, not only the elites) of the L2 norm of the predicted std
    (next-state and reward dims together, as OfflineRL-Kit's EnsembleDynamics.step)."""
    return var.sqrt().norm(dim=-1).amax(1)


def ensemble_std(mean: torch.Tensor, obs_dim: int) -> torch.Tensor:
    """Spread of the members' means: sqrt(mean over state dims of the variance over members)."""
    return adm_authors(mean, obs_dim)


def zero(mean: torch.Tensor, var: torch.Tensor, obs_dim: int, settings=None) -> torch.Tensor:
    """No penalty (U = 0)."""
    return torch.zeros(mean.shape[0], dtype=mean.dtype, device=mean.device)


# The built-in penalties' registrations (registry.BUILTIN_PENALTIES names them).
AUTHORS = PenaltySpec("authors", lambda mean, var, obs_dim, settings: adm_authors(mean, obs_dim),
                      description="ADM, the authors' code: sqrt(mean over state dims of the variance over k of the "
                                  "predicted next states); Table 5's beta were tuned with it")
PAPER = PenaltySpec("paper", lambda mean, var, obs_dim, settings: adm_paper(mean, var, obs_dim),
                    description="ADM, Eq. (4): the L1 norm of the variance of the mixture over k")
MAX_ALEATORIC = PenaltySpec("max_aleatoric", lambda mean, var, obs_dim, settings: max_aleatoric(var),
                            description="MOPO: max over members of the norm of the predicted std")
ENSEMBLE_STD = PenaltySpec("ensemble_std", lambda mean, var, obs_dim, settings: ensemble_std(mean, obs_dim),
                           description="the spread of the members' means")
NONE = PenaltySpec("none", zero, description="no penalty", uses_predictions=False)


def quantify(name: str, mean: torch.Tensor, var: torch.Tensor, obs_dim: int, settings=None) -> torch.Tensor:
    """U of the registered penalty `name` over the K predictions of one step (settings: its own keys; None: its
    defaults)."""
    spec = registry.penalty(name)
    return spec.compute(mean, var, obs_dim, settings if settings is not None else spec.settings())

"""Uncertainty quantifiers. Inputs are per-k (or per-member) predictions of the SAME next step.

mean, var: (B, K, D) with D = obs_dim + 1 (absolute next state, then reward).
"""

from __future__ import annotations

import torch


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


def quantify(name: str, mean: torch.Tensor, var: torch.Tensor, obs_dim: int) -> torch.Tensor:
    if name == "paper":
        return adm_paper(mean, var, obs_dim)
    if name == "authors":
        return adm_authors(mean, obs_dim)
    if name == "max_aleatoric":
        return max_aleatoric(var)
    if name == "ensemble_std":
        return ensemble_std(mean, obs_dim)
    if name == "none":
        return torch.zeros(mean.shape[0], dtype=mean.dtype, device=mean.device)
    raise ValueError(f"unknown uncertainty quantifier {name!r}")

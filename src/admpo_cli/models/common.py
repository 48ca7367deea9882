"""Pieces shared by the dynamics models: normalisation, the residual head, bounded log-variance, NLL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def soft_clamp(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Bound x between learned lo/hi while keeping gradients (authors' code, from PETS)."""
    x = hi - F.softplus(hi - x)
    return lo + F.softplus(x - lo)


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


class FastDropout(nn.Module):
    """Dropout whose mask comes from 16-bit slices of 64-bit random integers: four mask entries per
    random draw. The CPU's Bernoulli sampler was 12 % of an ADM gradient step. The rate is p rounded to a
    multiple of 1/65536 (0.1 -> 0.100006)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.threshold = int(round(p * 65536)) - 32768

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        n = x.numel()
        bits = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
        keep = bits.view(torch.int16)[:n].view(x.shape) >= self.threshold
        return torch.where(keep, x * (1.0 / (1.0 - self.p)), 0.0)


class ResidualBlock(nn.Module):
    # Linear -> Swish -> Dropout -> +residual -> LayerNorm (authors' head block)
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.drop = FastDropout(dropout)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.norm(x + self.drop(F.silu(self.fc(x))))
        # roll-outs: the same in place, no temporaries of (rows, width)
        return self.norm(self.drop(F.silu(self.fc(x), inplace=True)).add_(x))


class GaussianHead(nn.Module):
    """Residual blocks, then mean and bounded log-variance of (delta state, reward)."""

    def __init__(self, width: int, out_dim: int, blocks: int, dropout: float):
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualBlock(width, dropout) for _ in range(blocks)])
        self.out = nn.Linear(width, 2 * out_dim)
        self.max_logvar = nn.Parameter(torch.full((out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((out_dim,), -10.0))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.out(self.blocks(h)).chunk(2, dim=-1)
        return mean, soft_clamp(logvar, self.min_logvar, self.max_logvar)

    def bound_penalty(self) -> torch.Tensor:
        return 0.01 * self.max_logvar.sum() - 0.01 * self.min_logvar.sum()


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """mean((mu - y)^2 exp(-logvar)) + mean(logvar) over valid entries (authors' loss, Eq. 2 up to consts)."""
    per = (mean - target).pow(2) * torch.exp(-logvar) + logvar
    if mask is None:
        return per.mean()
    w = mask.to(per.dtype).unsqueeze(-1)
    return (per * w).sum() / (w.sum() * per.shape[-1]).clamp_min(1.0)

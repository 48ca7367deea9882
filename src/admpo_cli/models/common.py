"""Pieces shared by the dynamics models: normalisation, the residual head, bounded log-variance, NLL."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def soft_clamp(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Bound x between learned lo/hi while keeping gradients (authors' code, from PETS)."""
    x = hi - F.softplus(hi - x)
    return lo + F.softplus(x - lo)


def bound_penalty(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Keeps the learned log-variance bounds tight (authors' code: 0.01 sum(max) - 0.01 sum(min))."""
    return 0.01 * hi.sum() - 0.01 * lo.sum()


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


def dropout_masks(n: int, shape: tuple[int, ...], p: float, device: torch.device,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """n inverted-dropout masks (n, *shape) holding 0 or 1/(1-p), each entry from 16 random bits (p is
    rounded to a multiple of 1/65536: 0.1 -> 0.100006).

    On the CPU the bits come from numpy's SFC64, seeded by one draw from torch's generator (so
    torch.manual_seed still fixes them): torch's CPU generator is sequential and took 0.9 ms for the
    four masks of an ADM step, and turning a bool mask into floats cost as much again."""
    numel = n * math.prod(shape)
    draws = (numel + 3) // 4
    if torch.device(device).type == "cpu":
        seed = int(torch.randint(0, 2**62, (1,)))
        raw = np.random.Generator(np.random.SFC64(seed)).bit_generator.random_raw(draws)
        bits = torch.from_numpy(raw.view(np.int16))
    else:
        bits = torch.randint(-(2**63), 2**63 - 1, (draws,), dtype=torch.int64, device=device).view(torch.int16)
    mask = torch.empty(n, *shape, device=device, dtype=dtype)
    torch.ge(bits[:numel].view(n, *shape), int(round(p * 65536)) - 32768, out=mask)
    return mask.mul_(1.0 / (1.0 - p))


class _ResidualBlockFunction(torch.autograd.Function):
    """LayerNorm(x + mask * silu(x W^T + b)) with a hand-written backward: autograd's version spends more
    time in elementwise passes over (rows, width) than in the block's matrix products."""

    @staticmethod
    def forward(ctx, x, weight, bias, gamma, beta, mask, eps: float):
        u = torch.addmm(bias, x, weight.t())
        a = F.silu(u)
        s = x + a if mask is None else torch.addcmul(x, a, mask)
        y, mu, rstd = torch.native_layer_norm(s, (x.shape[-1],), gamma, beta, eps)
        ctx.save_for_backward(x, weight, gamma, beta, mask, u, s, mu, rstd)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, gamma, beta, mask, u, s, mu, rstd = ctx.saved_tensors
        ds, dgamma, dbeta = torch.ops.aten.native_layer_norm_backward(
            dy.contiguous(), s, (x.shape[-1],), mu, rstd, gamma, beta, (True, True, True))
        du = torch.ops.aten.silu_backward(ds if mask is None else ds * mask, u)
        dx = torch.addmm(ds, du, weight)
        return dx, du.t() @ x, du.sum(0), dgamma, dbeta, None, None


class ResidualBlock(nn.Module):
    # Linear -> Swish -> Dropout -> +residual -> LayerNorm (authors' head block)
    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mask: this block's dropout mask (rows, width) when dropout is on (see GaussianHead)."""
        if torch.is_grad_enabled():
            shape = x.shape
            y = _ResidualBlockFunction.apply(x.reshape(-1, shape[-1]), self.fc.weight, self.fc.bias,
                                             self.norm.weight, self.norm.bias,
                                             None if mask is None else mask.reshape(-1, shape[-1]), self.norm.eps)
            return y.view(shape)
        # roll-outs: the same in place, no temporaries of (rows, width)
        a = F.silu(self.fc(x), inplace=True)
        return self.norm(a.add_(x) if mask is None else a.mul_(mask).add_(x))


class GaussianHead(nn.Module):
    """Residual blocks, then mean and bounded log-variance of (delta state, reward)."""

    def __init__(self, width: int, out_dim: int, blocks: int, dropout: float):
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.dropout = dropout
        self.out = nn.Linear(width, 2 * out_dim)
        self.max_logvar = nn.Parameter(torch.full((out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((out_dim,), -10.0))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        masks = [None] * len(self.blocks)
        if self.training and self.dropout > 0.0 and masks:
            masks = dropout_masks(len(masks), h.shape, self.dropout, h.device, h.dtype).unbind(0)
        for block, mask in zip(self.blocks, masks, strict=True):
            h = block(h, mask)
        mean, logvar = self.out(h).chunk(2, dim=-1)
        return mean, soft_clamp(logvar, self.min_logvar, self.max_logvar)

    def bound_penalty(self) -> torch.Tensor:
        return bound_penalty(self.min_logvar, self.max_logvar)


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """mean((mu - y)^2 exp(-logvar)) + mean(logvar) over valid entries (authors' loss, Eq. 2 up to consts)."""
    per = (mean - target).pow(2) * torch.exp(-logvar) + logvar
    if mask is None:
        return per.mean()
    w = mask.to(per.dtype).unsqueeze(-1)
    return (per * w).sum() / (w.sum() * per.shape[-1]).clamp_min(1.0)

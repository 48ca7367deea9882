"""The residual Gaussian head of ADM and the bootstrapping RNN (authors' architecture): residual blocks
Linear -> Swish -> Dropout -> +x -> LayerNorm, then mean and bounded log-variance of (delta state, reward).

Dropout masks are a counter hash (lowbias32 of the entry index XOR a per-block key) so that the fused
CPU kernels can recompute a mask in the backward instead of storing it, and both paths drop the same units.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..kernels import use_for
from ..numerics import FixedOrderLinear
from .nll import bound_penalty, clamped_gaussian_nll, soft_clamp

_U32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mix32(x):
    """A 32-bit integer hash (lowbias32); x: a Python int or an int64 tensor holding uint32 values.
    Products wrap in int64 and are cut back to 32 bits, as uint32 arithmetic in cpu_kernels.cpp does."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _U32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _U32
    return x ^ (x >> 16)


def block_key(seed: int, block: int) -> int:
    """The dropout stream of one residual block within one forward pass."""
    return _mix32((seed + block * _GOLDEN) & _U32)


def dropout_threshold(p: float) -> int:
    """An entry is kept when the top 24 bits of its hash reach this (p is rounded to a multiple of 2^-24)."""
    return int(round(p * (1 << 24)))


@functools.lru_cache(maxsize=4)
def _entry_indices(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.uint32)


def dropout_mask(key: int, shape: tuple[int, ...], p: float, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The inverted-dropout mask (0 or 1/(1-p)) of a block: entry i (row-major) is kept when
    hash(i ^ key) >> 8 >= p * 2^24. The fused CPU kernels compute the same entries on the fly instead of
    reading a mask, so both paths drop the same units. On the CPU the hash runs in numpy's wrapping
    uint32 arithmetic (torch's int64 version took 3.6 ms per block there); elsewhere in torch."""
    n = math.prod(shape)
    thr = dropout_threshold(p)
    if torch.device(device).type == "cpu":
        h = _entry_indices(n) ^ np.uint32(key)
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x7FEB352D)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x846CA68B)
        h ^= h >> np.uint32(16)
        keep = torch.from_numpy((h >> np.uint32(8)) >= np.uint32(thr)).view(shape)
    else:
        i = torch.arange(n, device=device, dtype=torch.int64).view(shape)
        keep = (_mix32(i ^ key) >> 8) >= thr
    return keep.to(dtype).mul_(1.0 / (1.0 - p))


def layer_norm_backward(dy: torch.Tensor, s: torch.Tensor, mu: torch.Tensor, rstd: torch.Tensor,
                        gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LayerNorm's backward over the last dim, written out: (d input, d gamma, d beta). ATen's own sums gamma's
    and beta's gradients over the rows in one part per thread, so its rounding follows torch's thread count;
    the column sums here do not (a run resumed with another thread count continues bit for bit).
    mu, rstd: native_layer_norm's (..., 1)."""
    xhat = (s - mu) * rstd
    g = dy * gamma
    ds = (g - g.mean(-1, keepdim=True) - xhat * (g * xhat).mean(-1, keepdim=True)) * rstd
    w = s.shape[-1]
    return ds, (dy * xhat).reshape(-1, w).sum(0), dy.reshape(-1, w).sum(0)


class _LayerNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, eps: float):
        y, mu, rstd = torch.native_layer_norm(x, (x.shape[-1],), gamma, beta, eps)
        ctx.save_for_backward(x, mu, rstd, gamma)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, mu, rstd, gamma = ctx.saved_tensors
        return (*layer_norm_backward(dy, x, mu, rstd, gamma), None)


class FixedOrderLayerNorm(nn.LayerNorm):
    """nn.LayerNorm (the same parameters and forward) whose backward is layer_norm_backward: the same gradients
    at every thread count."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() or self.weight is None:
            return super().forward(x)
        return _LayerNormFunction.apply(x, self.weight, self.bias, self.eps)


class _ResidualBlockFunction(torch.autograd.Function):
    """LayerNorm(x + mask * silu(x W^T + b)) with a hand-written backward: autograd's version spends more
    time in elementwise passes over (rows, width) than in the block's matrix products. The mask is the
    dropout_mask of `key` (p = 0: none). On the CPU the fused kernels do each pass once per row and
    recompute the mask and the residual sum in the backward rather than keeping them."""

    @staticmethod
    def forward(ctx, x, weight, bias, gamma, beta, key: int, p: float, eps: float):
        ctx.key, ctx.p = key, p
        ctx.ops = use_for(x, weight)
        if ctx.ops is not None:  # one fused pass per row after the product, which adds the bias
            x = x.contiguous()
            u = torch.mm(x, weight.t())
            y, mu, rstd = ctx.ops.residual_block_forward(x, u, bias, gamma, beta, key, dropout_threshold(p), p, eps)
            ctx.save_for_backward(x, weight, bias, gamma, u, mu, rstd)
            return y
        mask = dropout_mask(key, x.shape, p, x.device, x.dtype) if p > 0.0 else None
        u = torch.addmm(bias, x, weight.t())
        a = F.silu(u)
        s = x + a if mask is None else torch.addcmul(x, a, mask)
        y, mu, rstd = torch.native_layer_norm(s, (x.shape[-1],), gamma, beta, eps)
        ctx.save_for_backward(x, weight, gamma, beta, mask, u, s, mu, rstd)
        return y

    @staticmethod
    def backward(ctx, dy):
        if ctx.ops is not None:
            x, weight, bias, gamma, u, mu, rstd = ctx.saved_tensors
            ds, du, sums = ctx.ops.residual_block_backward(dy.contiguous(), x, u, bias, mu, rstd, gamma, ctx.key,
                                                           dropout_threshold(ctx.p), ctx.p)
            dgamma, dbeta, dbias = sums.unbind(0)
            return ds.addmm_(du, weight), du.t() @ x, dbias, dgamma, dbeta, None, None, None
        x, weight, gamma, beta, mask, u, s, mu, rstd = ctx.saved_tensors
        ds, dgamma, dbeta = layer_norm_backward(dy, s, mu, rstd, gamma)
        du = torch.ops.aten.silu_backward(ds if mask is None else ds * mask, u)
        dx = torch.addmm(ds, du, weight)
        return dx, du.t() @ x, du.sum(0), dgamma, dbeta, None, None, None


class ResidualBlock(nn.Module):
    # Linear -> Swish -> Dropout -> +residual -> LayerNorm (authors' head block)
    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, key: int = 0, p: float = 0.0) -> torch.Tensor:
        """key, p: this block's dropout stream and rate (p = 0: no dropout; see GaussianHead)."""
        shape = x.shape
        if torch.is_grad_enabled():
            y = _ResidualBlockFunction.apply(x.reshape(-1, shape[-1]), self.fc.weight, self.fc.bias,
                                             self.norm.weight, self.norm.bias, key, p, self.norm.eps)
            return y.view(shape)
        ops = use_for(x, self.fc.weight) if p > 0.0 else None
        if ops is not None:  # roll-outs with dropout on the CPU: the fused pass computes the mask on the fly
            x2 = x.reshape(-1, shape[-1]).contiguous()
            y = ops.residual_block_forward(x2, torch.mm(x2, self.fc.weight.t()), self.fc.bias, self.norm.weight,
                                           self.norm.bias, key, dropout_threshold(p), p, self.norm.eps)[0]
            return y.view(shape)
        # roll-outs: the same in place, no temporaries of (rows, width)
        a = F.silu(self.fc(x), inplace=True)
        if p > 0.0:
            a.mul_(dropout_mask(key, (math.prod(shape[:-1]), shape[-1]), p, x.device, a.dtype).view(shape))
        return self.norm(a.add_(x))


class GaussianHead(nn.Module):
    """Residual blocks, then mean and bounded log-variance of (delta state, reward)."""

    def __init__(self, width: int, out_dim: int, blocks: int, dropout: float):
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.dropout = dropout
        self.out = FixedOrderLinear(width, 2 * out_dim)  # the same bits for a few rows at any thread count
        self.max_logvar = nn.Parameter(torch.full((out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((out_dim,), -10.0))
        self._dropout_gen: torch.Generator | None = None

    @contextmanager
    def dropout_generator(self, gen: torch.Generator | None) -> Iterator[None]:
        """Draw each pass's dropout seed from `gen` (a roll-out's, a ModelEnv's, a fit's generator) rather than
        torch's global one, so that a seeded caller gets the same masks whatever else drew numbers before."""
        old, self._dropout_gen = self._dropout_gen, gen
        try:
            yield
        finally:
            self._dropout_gen = old

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.raw(h).chunk(2, dim=-1)
        return mean, soft_clamp(logvar, self.min_logvar, self.max_logvar)

    def nll(self, h: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """gaussian_nll of the predictions from features h (..., width) against target (..., out_dim)."""
        return clamped_gaussian_nll(self.raw(h), self.min_logvar, self.max_logvar, target, mask)

    def raw(self, h: torch.Tensor) -> torch.Tensor:
        """Features (..., width) -> [mean | log-variance before its bounds] (..., 2 out_dim)."""
        p = self.dropout if self.training else 0.0
        # one draw per pass seeds every block's dropout: from the caller's generator (dropout_generator), else
        # torch's global one (torch.manual_seed fixes it)
        gen = self._dropout_gen
        seed = int(torch.randint(0, 1 << 32, (1,), generator=gen, device=gen.device if gen else None)) if p > 0.0 else 0
        for i, block in enumerate(self.blocks):
            h = block(h, block_key(seed, i), p)
        return self.out(h)

    def bound_penalty(self) -> torch.Tensor:
        return bound_penalty(self.min_logvar, self.max_logvar)

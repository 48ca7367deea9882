"""The models' loss: the Gaussian negative log-likelihood of (delta state, reward) with a log-variance kept
between learned bounds (authors' code, from PETS), and its gradients written out.

`gaussian_nll` is the plain formula; `clamped_gaussian_nll` / `clamped_nll_grads` compute the same from a
network's raw output in one pass (a fused kernel on the CPU) and are tested against autograd of it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..kernels import use_for


def soft_clamp(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Bound x between learned lo/hi while keeping gradients (authors' code, from PETS)."""
    x = hi - F.softplus(hi - x)
    return lo + F.softplus(x - lo)


BOUND_PENALTY = 0.01  # authors' code; the gradient of bound_penalty is +this per upper, -this per lower bound


def bound_penalty(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Keeps the learned log-variance bounds tight (authors' code: 0.01 sum(max) - 0.01 sum(min))."""
    return BOUND_PENALTY * hi.sum() - BOUND_PENALTY * lo.sum()


def clamped_nll_grads(out: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, target: torch.Tensor,
                      mask: torch.Tensor | None = None, scale: float = 1.0):
    """scale * gaussian_nll(mu, soft_clamp(raw, lo, hi), target, mask) from a network's raw output
    (mask: 0/1 or any non-negative row weights w; the loss is sum(w * per-row mean) / sum(w))
    out = [mu | raw], and its gradients for out, lo and hi, written out (autograd's version is ~40 small
    ops over the same tensors; on the CPU it is one fused pass): with lv the clamped log-variance and
    e = (mu - y)^2 exp(-lv), dL/dmu = 2 c (mu - y) exp(-lv) and dL/dlv = c (1 - e), c = scale / entries,
    chained through the two softplus bounds. -> loss, d out, d lo, d hi."""
    D = target.shape[-1]
    w = None if mask is None else mask.to(out.dtype)
    ops = use_for(out, target)
    if ops is not None:
        loss, g_out, g_lohi = ops.clamped_nll(out.reshape(-1, 2 * D).contiguous(), lo, hi,
                                              target.reshape(-1, D).contiguous(),
                                              None if w is None else w.reshape(-1).contiguous(), scale)
        return loss, g_out.view(out.shape), g_lohi[0], g_lohi[1]
    mu, raw = out[..., :D], out[..., D:]
    a = hi - raw
    b = hi - F.softplus(a) - lo
    lv = F.softplus(b).add_(lo)
    inv_var = torch.exp(-lv)
    err = mu - target
    e = err.square().mul_(inv_var)
    per = e + lv
    if w is None:
        c0 = c = scale / per.numel()
    else:  # c0 stays a tensor: no device-to-host copy in the training step
        w = w.unsqueeze(-1)
        per.mul_(w)
        c0 = scale / (w.sum().clamp_min(1.0) * D)
        c = c0 * w  # per entry: 0 where masked
    loss = per.sum() * c0
    d_lv = e.neg_().add_(1.0).mul_(c)
    d_l1 = d_lv * torch.sigmoid(b)
    s_a = torch.sigmoid(a)
    g_out = torch.cat([err.mul_(inv_var).mul_(2.0 * c), d_l1 * s_a], -1)
    dims = tuple(range(target.dim() - 1))
    g_lo = (d_lv - d_l1).sum(dims)
    g_hi = d_l1.mul_(s_a.neg_().add_(1.0)).sum(dims)
    return loss, g_out, g_lo, g_hi


class _ClampedGaussianNLL(torch.autograd.Function):
    """clamped_nll_grads under autograd: the gradients come from the forward."""

    @staticmethod
    def forward(ctx, out, lo, hi, target, mask, scale: float):
        loss, *grads = clamped_nll_grads(out, lo, hi, target, mask, scale)
        ctx.save_for_backward(*grads)
        return loss

    @staticmethod
    def backward(ctx, g):
        g_out, g_lo, g_hi = ctx.saved_tensors
        return g_out * g, g_lo * g, g_hi * g, None, None, None


def clamped_gaussian_nll(out: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, target: torch.Tensor,
                         mask: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
    """scale * gaussian_nll(mean, soft_clamp(raw log-variance, lo, hi), target, mask), out = [mean | raw]."""
    return _ClampedGaussianNLL.apply(out, lo, hi, target, mask, scale)


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """mean((mu - y)^2 exp(-logvar)) + mean(logvar) over valid entries (authors' loss, Eq. 2 up to consts)."""
    per = (mean - target).pow(2) * torch.exp(-logvar) + logvar
    if mask is None:
        return per.mean()
    w = mask.to(per.dtype).unsqueeze(-1)
    return (per * w).sum() / (w.sum() * per.shape[-1]).clamp_min(1.0)

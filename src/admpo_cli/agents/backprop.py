"""Forward and backward passes of the SAC networks written out by hand.

A SAC update at batch 256 spends more time issuing small ops than multiplying matrices: autograd
records every op of the actor's sampling and log-density, replays each one backwards, and keeps its
graph. Written out, the whole update is about half as many ops, and the derivatives that simplify on
paper are used in their simple form: d log pi / du = 2 tanh(u), the reparameterised (u - mu) / std = eps.
Tests check every gradient here against autograd on the same networks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_threshold_backward_ = torch.ops.aten.threshold_backward.grad_input

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
# How the actor's raw log-std output is bounded to [LOG_STD_MIN, LOG_STD_MAX] (agent.log_std_bound): "clamp"
# (the ADMPO authors' and MBPO's SAC) or "tanh" (CleanRL: MIN + (MAX - MIN) (tanh(raw) + 1) / 2, so a raw 0
# starts at std exp(-1.5) = 0.22 instead of 1).
_LOG_STD_HALF_RANGE = 0.5 * (LOG_STD_MAX - LOG_STD_MIN)


def bound_log_std(raw: torch.Tensor, how: str) -> torch.Tensor:
    """The actor's log-std from its raw output (see LOG_STD_MIN above)."""
    if how == "tanh":
        return (torch.tanh(raw) + 1.0).mul_(_LOG_STD_HALF_RANGE).add_(LOG_STD_MIN)  # autograd keeps tanh's output
    return raw.clamp(LOG_STD_MIN, LOG_STD_MAX)


def bound_log_std_grad(raw: torch.Tensor, log_std: torch.Tensor, how: str) -> torch.Tensor:
    """d log_std / d raw: 1 where the clamp passed (0 elsewhere); tanh's (MAX - MIN)/2 (1 - tanh(raw)^2)."""
    if how == "tanh":
        t = (log_std - LOG_STD_MIN).div_(_LOG_STD_HALF_RANGE).sub_(1.0)  # tanh(raw), recovered
        return t.square_().neg_().add_(1.0).mul_(_LOG_STD_HALF_RANGE)
    return (raw == log_std).to(raw.dtype)
_LOG2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def mlp_forward(x: torch.Tensor, ws: list[torch.Tensor], bs: list[torch.Tensor]):
    """ReLU MLP with nn.Linear weights (out, in). Returns the layers' inputs (for the backward) and the
    output."""
    hs = [x]
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        h = torch.addmm(b, hs[-1], w.t())
        if i < len(ws) - 1:
            hs.append(h.relu_())
    return hs, h


def mlp_backward(hs: list[torch.Tensor], ws: list[torch.Tensor], g: torch.Tensor):
    """Gradients of the weights and biases given the output gradient g (no input gradient). The hidden
    activations in hs are overwritten (scratch for the gradients)."""
    gws, gbs = [None] * len(ws), [None] * len(ws)
    for i in range(len(ws) - 1, -1, -1):
        gws[i] = g.t() @ hs[i]
        gbs[i] = g.sum(0)
        if i > 0:
            g = _threshold_backward_(g @ ws[i], hs[i], 0.0, grad_input=hs[i])  # hs[i] is not needed again
    return gws, gbs


def fused_forward(x: torch.Tensor, ws: list[torch.Tensor], bs: list[torch.Tensor]):
    """n ReLU MLPs of (n, in, out) weights over one shared input x (B, in) -> layer inputs, (n, B, out)."""
    hs = [x.unsqueeze(0).expand(ws[0].shape[0], -1, -1)]
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        h = torch.baddbmm(b, hs[-1], w)
        if i < len(ws) - 1:
            hs.append(h.relu_())
    return hs, h


def fused_backward(hs: list[torch.Tensor], ws: list[torch.Tensor], d: torch.Tensor, need_params: bool = True,
                   need_x: bool = False):
    """Output gradient d (n, B, out) -> (weight grads, bias grads, input grad (B, in)); each only if
    asked for."""
    L = len(ws)
    gws, gbs = [None] * L, [None] * L
    for i in range(L - 1, -1, -1):
        if need_params:
            gws[i] = torch.bmm(hs[i].transpose(1, 2), d)
            gbs[i] = d.sum(1, keepdim=True)
        if i == 0 and not need_x:
            break
        if ws[i].shape[-1] == 1:  # (n, B, 1) x (n, 1, h): a broadcast product, not a K=1 bmm
            d = d * ws[i].transpose(1, 2)
        else:
            d = torch.bmm(d, ws[i].transpose(1, 2))
        if i > 0:
            d = _threshold_backward_(d, hs[i], 0.0, grad_input=d)
    return gws, gbs, (d.sum(0) if need_x else None)


def squashed_log_prob(u: torch.Tensor, log_std: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """log-density of a = tanh(u), u = mu + std * eps, summed over the k action dims:
    log N(u; mu, std) - sum log(1 - tanh^2 u)
      = sum(-eps^2/2 - log_std + 2u + 2 softplus(-2u)) - k (log(2 pi)/2 + 2 log 2),  as (u - mu) / std = eps.
    The in-place ops act on fresh temporaries only, so autograd can run through it."""
    per = F.softplus(u, beta=-2.0).mul_(-4.0)  # 2 softplus(-2u)
    per.add_(u, alpha=2.0).sub_(log_std).addcmul_(eps, eps, value=-0.5)
    return per.sum(-1).sub_(u.shape[-1] * (_HALF_LOG_2PI + 2 * _LOG2))


class ActorSample:
    """a = tanh(mu + std eps) and its log-density, with what the backward needs."""

    __slots__ = ("hs", "a", "logp", "log_std", "noise", "raw", "bound")

    def __init__(self, ws, bs, obs: torch.Tensor, keep: bool, bound: str = "clamp"):
        hs, out = mlp_forward(obs, ws, bs)
        k = out.shape[-1] // 2
        mu, raw = out[:, :k], out[:, k:]
        log_std = bound_log_std(raw, bound)
        eps = torch.randn_like(mu)
        noise = log_std.exp().mul_(eps)  # std * eps = u - mu
        u = noise + mu
        self.a = torch.tanh(u)
        self.logp = squashed_log_prob(u, log_std, eps)
        if keep:
            self.hs, self.log_std, self.noise, self.raw, self.bound = hs, log_std, noise, raw, bound

    def backward(self, ws, g_a: torch.Tensor, g_logp: torch.Tensor, start: int = 0):
        """Gradients of the actor's parameters from dL/da (B, k) and dL/dlogp (a scalar tensor, the
        same for every row), for the rows from `start` on (the others do not enter the loss)."""
        a, noise = self.a[start:], self.noise[start:]
        # a = tanh(u): da/du = 1 - a^2; d logp/du = 2 tanh(u) = 2a; u = mu + noise, noise = exp(log_std) eps
        g_u = torch.addcmul(g_a, g_a, a.square(), value=-1.0).add_(a * (2.0 * g_logp))
        dls = bound_log_std_grad(self.raw[start:], self.log_std[start:], self.bound)
        g_ls = torch.mul(g_u, noise).sub_(g_logp).mul_(dls)
        return mlp_backward([h[start:] for h in self.hs], ws, torch.cat([g_u, g_ls], -1))

"""Networks of the agents: a tanh-Gaussian actor and critics fused into one batched network."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..numerics import FixedOrderLinear
from .backprop import bound_log_std, squashed_log_prob


def logp_shift(entropy_space: str, action_scale) -> float:
    """What log pi in an entropy space adds to log pi of the [-1, 1] action the policy outputs: -sum
    log(scale) in the env's units (a_env = scale * a), 0 in the normalised space or without a scale."""
    if entropy_space == "normalized" or action_scale is None:
        return 0.0
    return -float(sum(math.log(float(s)) for s in action_scale))


def mlp(d_in: int, hidden: tuple[int, ...], d_out: int) -> nn.Sequential:
    """ReLU MLP of nn.Linear layers; its products have the same bits at every thread count (numerics.py)."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [FixedOrderLinear(d_in, h), nn.ReLU()]
        d_in = h
    layers.append(FixedOrderLinear(d_in, d_out))
    return nn.Sequential(*layers)


class TanhGaussianActor(nn.Module):
    """a = tanh(u), u ~ N(mu, std); log_std_bound: how the raw log-std is bounded ("clamp" | "tanh", CleanRL)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256), log_std_bound: str = "clamp"):
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * act_dim)
        self.act_dim = act_dim
        self.log_std_bound = log_std_bound

    def forward(self, obs: torch.Tensor, deterministic: bool = False, with_logp: bool = True):
        mu, log_std = self.net(obs).chunk(2, -1)
        if deterministic:
            return torch.tanh(mu), None
        log_std = bound_log_std(log_std, self.log_std_bound)
        eps = torch.randn_like(mu)
        u = torch.addcmul(mu, log_std.exp(), eps)
        a = torch.tanh(u)
        if not with_logp:
            return a, None
        return a, squashed_log_prob(u, log_std, eps)

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        mu, log_std = self.net(obs).chunk(2, -1)
        log_std = bound_log_std(log_std, self.log_std_bound)
        a = act.clamp(-0.999999, 0.999999)
        u = torch.atanh(a)
        logp = (-0.5 * ((u - mu) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return logp - torch.log1p(-a.pow(2) + 1e-6).sum(-1)


class FusedCritics(nn.Module):
    """n Q-networks as one network of (n, in, out) weights: one batched matmul per layer for all."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256), n: int = 2):
        super().__init__()
        dims = [obs_dim + act_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            w = torch.empty(n, a, b)
            bias = torch.empty(n, 1, b)
            bound = 1.0 / math.sqrt(a)  # nn.Linear's default init, per member
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(bias))
        self.n = n

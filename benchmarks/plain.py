"""Plain-PyTorch versions of what admpo optimises, timed in the same run as admpo's.

These machines are shared virtual machines whose speed drifts by 10-15 % between runs, so a figure
alone says little; each benchmark also times the straightforward implementation (nn.GRU, nn.Linear,
autograd, torch.optim.Adam) of the same network and batch, and prints the ratio.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


class PlainADM(nn.Module):
    """The authors' architecture, written the obvious way: nn.GRU, residual blocks with nn.Dropout."""

    def __init__(self, obs_dim: int = 11, act_dim: int = 3, hidden: int = 200, layers: int = 3, blocks: int = 4):
        super().__init__()
        self.gru = nn.GRU(obs_dim + act_dim, hidden, layers, batch_first=True)
        self.fcs = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(blocks))
        self.drop = nn.Dropout(0.1)
        self.out = nn.Linear(hidden, 2 * (obs_dim + 1))
        self.max_logvar = nn.Parameter(torch.full((obs_dim + 1,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((obs_dim + 1,), -10.0))

    def forward(self, s0, actions):
        L = actions.shape[1]
        h, _ = self.gru(torch.cat([s0[:, None].expand(-1, L, -1), actions], -1))
        for fc, norm in zip(self.fcs, self.norms, strict=True):
            h = norm(h + self.drop(F.silu(fc(h))))
        mean, logvar = self.out(h).chunk(2, -1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        return mean, self.min_logvar + F.softplus(logvar - self.min_logvar)


def plain_adm_step(sampler, batch: int = 256):
    torch.manual_seed(0)
    model = PlainADM().train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)

    def step():
        b = sampler.sample_all(batch)
        mean, logvar = model(b["s0"], b["actions"])
        w = b["mask"].float()[..., None]
        per = ((mean - b["target"]) ** 2 * torch.exp(-logvar) + logvar) * w
        loss = per.sum() / (w.sum() * per.shape[-1]) + 0.01 * (model.max_logvar.sum() - model.min_logvar.sum())
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


class PlainEnsemble(nn.Module):
    def __init__(self, members: int = 7, d_in: int = 14, hidden: int = 200, layers: int = 4, d_out: int = 24):
        super().__init__()
        dims = [d_in] + [hidden] * layers + [d_out]
        self.ws = nn.ParameterList(nn.Parameter(torch.randn(members, a, b) / (2 * math.sqrt(a)))
                                   for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.bs = nn.ParameterList(nn.Parameter(torch.zeros(members, 1, b)) for b in dims[1:])

    def forward(self, x):
        for i, (w, b) in enumerate(zip(self.ws, self.bs, strict=True)):
            x = torch.bmm(x, w) + b
            if i < len(self.ws) - 1:
                x = F.silu(x)
        return x.chunk(2, -1)


def plain_ensemble_step(sampler, batch: int = 256, members: int = 7):
    torch.manual_seed(0)
    model = PlainEnsemble(members)
    decays = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    opt = torch.optim.Adam([{"params": [w], "weight_decay": d} for w, d in zip(model.ws, decays, strict=True)]
                           + [{"params": list(model.bs)}], lr=1e-3)

    def step():
        b = sampler.sample_k(1, members * batch)
        x = torch.cat([b["s0"], b["actions"][:, 0]], -1).reshape(members, batch, -1)
        mean, logvar = model(x)
        target = b["target"][:, 0].reshape(members, batch, -1)
        loss = ((mean - target) ** 2 * torch.exp(-logvar) + logvar).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def plain_sac_step(obs_dim: int = 11, act_dim: int = 3, n: int = 100_000, batch: int = 256):
    """SAC as OfflineRL-Kit writes it: separate actor and two critic networks, torch.optim.Adam, autograd."""
    torch.manual_seed(0)

    def mlp(i, o):
        return nn.Sequential(nn.Linear(i, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, o))

    actor, q1, q2 = mlp(obs_dim, 2 * act_dim), mlp(obs_dim + act_dim, 1), mlp(obs_dim + act_dim, 1)
    t1, t2 = copy.deepcopy(q1), copy.deepcopy(q2)
    a_opt = torch.optim.Adam(actor.parameters(), 1e-4)
    c1_opt, c2_opt = torch.optim.Adam(q1.parameters(), 3e-4), torch.optim.Adam(q2.parameters(), 3e-4)
    obs, act = torch.randn(n, obs_dim), torch.rand(n, act_dim) * 2 - 1
    rew, done = torch.randn(n, 1), torch.zeros(n, 1)

    def sample(o):
        mu, log_std = actor(o).chunk(2, -1)
        dist = torch.distributions.Normal(mu, log_std.clamp(-5, 2).exp())
        u = dist.rsample()
        a = torch.tanh(u)
        return a, (dist.log_prob(u) - torch.log(1 - a.pow(2) + 1e-6)).sum(-1, keepdim=True)

    def step():
        i = torch.randint(n, (batch,))
        o, a, r, o2, d = obs[i], act[i], rew[i], obs[i], done[i]
        with torch.no_grad():
            a2, lp2 = sample(o2)
            x2 = torch.cat([o2, a2], -1)
            y = r + 0.99 * (1 - d) * (torch.min(t1(x2), t2(x2)) - 0.2 * lp2)
        x = torch.cat([o, a], -1)
        for q, opt in ((q1, c1_opt), (q2, c2_opt)):
            loss = (q(x) - y).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        a_new, lp = sample(o)
        xn = torch.cat([o, a_new], -1)
        actor_loss = (0.2 * lp - torch.min(q1(xn), q2(xn))).mean()
        a_opt.zero_grad()
        actor_loss.backward()
        a_opt.step()
        with torch.no_grad():
            for net, tgt in ((q1, t1), (q2, t2)):
                for p, tp in zip(net.parameters(), tgt.parameters(), strict=True):
                    tp.mul_(0.995).add_(p, alpha=0.005)

    return step

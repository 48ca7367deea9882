"""Soft actor-critic as a reader checks it against the paper: nn.Linear networks, autograd, torch.optim.

This is the plain reference of the hand-written update in sac.py (the tests hold the two equal), in
the shape of CleanRL's `sac_continuous_action.py`: two Q-networks and their targets, a tanh-Gaussian
actor, the critic step, then the actor and temperature steps with the updated critics, then Polyak
averaging. Differences from CleanRL that the authors' code (and so this project) makes: the
temperature loss is -log(alpha) (log pi + target entropy) (CleanRL multiplies alpha itself), the actor's
learning rate may follow a cosine schedule, and the log-density of the squashed action is exact
(log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)); CleanRL adds 1e-6 inside the log).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import AgentConfig
from ..numerics import FixedOrderLinear
from .nets import logp_shift

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def _mlp(d_in: int, hidden: tuple[int, ...], d_out: int) -> nn.Sequential:
    """nn.Linear layers (FixedOrderLinear: nn.Linear itself wherever a batch is at least as wide as the layer's
    output, as in every update here; acting on a few rows rounds as the fast agent's actor does)."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [FixedOrderLinear(d_in, h), nn.ReLU()]
        d_in = h
    return nn.Sequential(*layers, FixedOrderLinear(d_in, d_out))


class QNetwork(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = _mlp(obs_dim + act_dim, hidden, 1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, act], -1)).squeeze(-1)


class Actor(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], log_std_bound: str = "clamp"):
        super().__init__()
        self.net = _mlp(obs_dim, hidden, 2 * act_dim)
        self.log_std_bound = log_std_bound

    def forward(self, obs: torch.Tensor, deterministic: bool = False, with_logp: bool = True):
        """A sampled action a = tanh(u), u ~ N(mu, std), and log pi(a | obs) (None if not asked for);
        deterministic: tanh(mu)."""
        mu, log_std = self.net(obs).chunk(2, -1)
        if deterministic:
            return torch.tanh(mu), None
        if self.log_std_bound == "tanh":  # CleanRL: squash into [MIN, MAX]
            log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        else:
            log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        u = mu + std * torch.randn_like(mu)  # reparameterisation trick
        log_prob = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # change of variables for a = tanh(u): - sum log(1 - tanh(u)^2)
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), log_prob


class ReferenceSAC:
    backend = "reference"

    def __init__(self, obs_dim: int, act_dim: int, cfg: AgentConfig, total_actor_updates: int | None = None,
                 device: torch.device | str = "cpu", action_scale=None):
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor = Actor(obs_dim, act_dim, cfg.hidden, cfg.log_std_bound).to(device)
        self.qf1 = QNetwork(obs_dim, act_dim, cfg.hidden).to(device)
        self.qf2 = QNetwork(obs_dim, act_dim, cfg.hidden).to(device)
        self.qf1_target, self.qf2_target = copy.deepcopy(self.qf1), copy.deepcopy(self.qf2)
        self.q_optimizer = torch.optim.Adam([*self.qf1.parameters(), *self.qf2.parameters()], lr=cfg.critic_lr)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.scheduler = None
        if cfg.actor_lr_schedule == "cosine" and total_actor_updates:
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.actor_optimizer, total_actor_updates)
        self.log_alpha = torch.tensor(math.log(cfg.alpha), device=device, requires_grad=True)
        self.a_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.target_entropy = cfg.target_entropy if cfg.target_entropy != 0 else -float(act_dim)
        # entropy_space "env": log pi of the env's action scale * a, i.e. log pi(a) - sum log(scale)
        self.logp_shift = logp_shift(cfg.entropy_space, action_scale)
        self.updates = 0

    @torch.no_grad()
    def start_from(self, actor_state: dict, critic_w, critic_b, target_w, target_b) -> None:
        """Take another agent's initial weights (the fast SAC's: an actor state_dict and critics as
        (2, in, out) weights and (2, 1, out) biases), so that one seed starts both backends alike."""
        self.actor.load_state_dict(actor_state)
        for ws, bs, nets in ((critic_w, critic_b, (self.qf1, self.qf2)),
                             (target_w, target_b, (self.qf1_target, self.qf2_target))):
            for i, q in enumerate(nets):
                linears = [m for m in q.net if isinstance(m, nn.Linear)]
                for lin, w, b in zip(linears, ws, bs, strict=True):
                    lin.weight.copy_(w[i].t())
                    lin.bias.copy_(b[i, 0])

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.actor(obs, deterministic=deterministic, with_logp=False)[0]

    def update(self, obs, act, rew, next_obs, done, update_actor: bool = True) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        alpha = self.log_alpha.detach().exp()
        # critic: y = r + gamma (1 - d) (min_i Q'_i(s', a') - alpha log pi(a' | s')),  a' ~ pi(. | s')
        with torch.no_grad():
            next_a, next_logp = self.actor(next_obs)
            next_logp = next_logp + self.logp_shift
            min_q_next = torch.min(self.qf1_target(next_obs, next_a), self.qf2_target(next_obs, next_a))
            y = rew + cfg.gamma * (1.0 - done) * (min_q_next - alpha * next_logp)
        q1, q2 = self.qf1(obs, act), self.qf2(obs, act)
        qf_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        self.q_optimizer.zero_grad()
        qf_loss.backward()
        self.q_optimizer.step()
        out = {"critic_loss": qf_loss.detach(), "q_mean": torch.stack([q1, q2]).detach().mean()}

        for _ in range(cfg.actor_steps if update_actor else 0):
            # actor: minimise E[alpha log pi(a | s) - min_i Q_i(s, a)],  a ~ pi(. | s), with the new critics
            alpha = self.log_alpha.detach().exp()
            a, logp = self.actor(obs)
            logp = logp + self.logp_shift
            min_q = torch.min(self.qf1(obs, a), self.qf2(obs, a))
            actor_loss = (alpha * logp - min_q).mean()
            self.actor_optimizer.zero_grad()
            actor_loss.backward()
            self.actor_optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            out["actor_loss"] = actor_loss.detach()
            out["entropy"] = -logp.detach().mean()
            if cfg.auto_alpha:
                temperature = self.log_alpha if cfg.alpha_loss == "log_alpha" else self.log_alpha.exp()
                alpha_loss = -(temperature * (logp.detach() + self.target_entropy)).mean()
                self.a_optimizer.zero_grad()
                alpha_loss.backward()
                self.a_optimizer.step()
        # targets: theta' <- tau theta + (1 - tau) theta', every target_update_every updates
        self.updates += 1
        if self.updates % cfg.target_update_every == 0:
            with torch.no_grad():
                for net, target in ((self.qf1, self.qf1_target), (self.qf2, self.qf2_target)):
                    for p, tp in zip(net.parameters(), target.parameters(), strict=True):
                        tp.mul_(1.0 - cfg.tau).add_(p, alpha=cfg.tau)
        return out

    def state_dict(self) -> dict:
        nets = ("actor", "qf1", "qf2", "qf1_target", "qf2_target")
        opts = ("q_optimizer", "actor_optimizer", "a_optimizer")
        sd = {n: getattr(self, n).state_dict() for n in nets + opts}
        sd.update(log_alpha=self.log_alpha.detach().clone(), updates=self.updates,
                  scheduler=self.scheduler.state_dict() if self.scheduler is not None else {})
        return sd

    def load_state_dict(self, sd: dict) -> None:
        for n in ("actor", "qf1", "qf2", "qf1_target", "qf2_target", "q_optimizer", "actor_optimizer", "a_optimizer"):
            getattr(self, n).load_state_dict(sd[n])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(sd["scheduler"])
        with torch.no_grad():
            self.log_alpha.copy_(sd["log_alpha"])
        self.updates = int(sd["updates"])

"""Soft actor-critic (paper Table 3) built for speed: fused critics, fused Adam, foreach Polyak averaging,
no host synchronisation inside an update."""

from __future__ import annotations

import copy
import math

import torch

from ..config import AgentConfig
from .adam import LeanAdam
from .nets import FusedCritics, TanhGaussianActor


class SAC:
    def __init__(self, obs_dim: int, act_dim: int, cfg: AgentConfig, device: torch.device,
                 total_actor_updates: int | None = None):
        self.cfg = cfg
        self.device = device
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor = TanhGaussianActor(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic = FusedCritics(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # Authors' offline code: cosine decay of the actor LR over the whole run.
        self.actor_opt = LeanAdam(self.actor.parameters(), cfg.actor_lr, total_steps=total_actor_updates,
                                  schedule=cfg.actor_lr_schedule)
        self.critic_opt = LeanAdam(self.critic.parameters(), cfg.critic_lr)
        self.log_alpha = torch.tensor(math.log(cfg.alpha), device=device, requires_grad=True)
        self.alpha_opt = LeanAdam([self.log_alpha], cfg.alpha_lr)
        self.target_entropy = cfg.target_entropy if cfg.target_entropy != 0 else -float(act_dim)
        self._tgt = list(self.critic_target.parameters())
        self._src = list(self.critic.parameters())
        self.updates = 0

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.actor(obs, deterministic=deterministic, with_logp=False)[0]

    def update(self, obs, act, rew, next_obs, done, update_actor: bool = True) -> dict[str, torch.Tensor]:
        """One SAC update on a batch. Returns detached tensors; the caller decides when to read them."""
        cfg = self.cfg
        alpha = self.alpha
        with torch.no_grad():
            next_a, next_logp = self.actor(next_obs)
            q_next = self.critic_target(next_obs, next_a).amin(0) - alpha * next_logp
            y = rew + cfg.gamma * (1.0 - done) * q_next
        q = self.critic(obs, act)
        critic_loss = (q - y).pow(2).mean(1).sum()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        out = {"critic_loss": critic_loss.detach(), "q_mean": q.detach().mean()}
        if update_actor:
            a, logp = self.actor(obs)
            # Frozen critic: the actor's backward skips the critic's weight gradients (a third of its cost).
            for p in self._src:
                p.requires_grad_(False)
            q_pi = self.critic(obs, a).amin(0)
            for p in self._src:
                p.requires_grad_(True)
            actor_loss = (alpha * logp - q_pi).mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()
            out["actor_loss"] = actor_loss.detach()
            out["entropy"] = -logp.detach().mean()
            if cfg.auto_alpha:
                alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
                self.alpha_opt.zero_grad()
                alpha_loss.backward()
                self.alpha_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(self._tgt, self._src, cfg.tau)
        self.updates += 1
        return out

    def state_dict(self) -> dict:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, sd: dict) -> None:
        self.actor.load_state_dict(sd["actor"])
        self.critic.load_state_dict(sd["critic"])
        self.critic_target.load_state_dict(sd["critic_target"])
        self.actor_opt.load_state_dict(sd["actor_opt"])
        self.critic_opt.load_state_dict(sd["critic_opt"])
        with torch.no_grad():
            self.log_alpha.copy_(sd["log_alpha"])
        self.alpha_opt.load_state_dict(sd["alpha_opt"])
        self.updates = int(sd["updates"])

"""Soft actor-critic (paper Table 3) built for speed: fused critics, fused Adam, foreach Polyak averaging,
no host synchronisation inside an update."""

from __future__ import annotations

import copy
import math

import torch

from ..config import AgentConfig
from ..optim import LeanAdam
from .backprop import ActorSample, fused_backward, fused_forward
from .nets import FusedCritics, TanhGaussianActor, logp_shift


class SAC:
    backend = "fast"

    def __init__(self, obs_dim: int, act_dim: int, cfg: AgentConfig, device: torch.device,
                 total_actor_updates: int | None = None, action_scale=None):
        self.cfg = cfg
        self.device = device
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor = TanhGaussianActor(obs_dim, act_dim, cfg.hidden, cfg.log_std_bound).to(device)
        self.critic = FusedCritics(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # Authors' offline code: cosine decay of the actor LR over the whole run.
        self.actor_opt = LeanAdam(self.actor.parameters(), cfg.actor_lr, total_steps=total_actor_updates,
                                  schedule=cfg.actor_lr_schedule)
        self.critic_opt = LeanAdam(self.critic.parameters(), cfg.critic_lr)
        self.log_alpha = torch.tensor(math.log(cfg.alpha), device=device, requires_grad=True)
        self.alpha_opt = LeanAdam([self.log_alpha], cfg.alpha_lr)
        self.target_entropy = cfg.target_entropy if cfg.target_entropy != 0 else -float(act_dim)
        # log pi in the env's action units = log pi in [-1, 1] - sum log(scale) (entropy_space, config.py)
        self.logp_shift = logp_shift(cfg.entropy_space, action_scale)
        # the parameters as the hand-written passes take them
        linears = [m for m in self.actor.net if isinstance(m, torch.nn.Linear)]
        self._actor_w, self._actor_b = [m.weight for m in linears], [m.bias for m in linears]
        self._critic_w, self._critic_b = list(self.critic.weights), list(self.critic.biases)
        self._target_w, self._target_b = list(self.critic_target.weights), list(self.critic_target.biases)
        self.updates = 0

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.actor(obs, deterministic=deterministic, with_logp=False)[0]

    @torch.no_grad()
    def update(self, obs, act, rew, next_obs, done, update_actor: bool = True) -> dict[str, torch.Tensor]:
        """One SAC update on a batch (critic, then actor and alpha with the updated critic, then the
        targets), back-propagated by hand (agents/backprop.py; tested equal to autograd). Returns detached
        tensors; the caller decides when to read them."""
        cfg = self.cfg
        B = obs.shape[0]
        alpha = self.log_alpha.exp()
        aw, ab = self._actor_w, self._actor_b
        cw, cb = self._critic_w, self._critic_b
        # one actor pass for the target's next actions and the actor's loss (same parameters for both)
        pi = ActorSample(aw, ab, torch.cat([next_obs, obs]) if update_actor else next_obs, keep=update_actor,
                         bound=self.cfg.log_std_bound)
        _, q_next = fused_forward(torch.cat([next_obs, pi.a[:B]], -1), self._target_w, self._target_b)
        logp_next = pi.logp[:B] + self.logp_shift if self.logp_shift else pi.logp[:B]
        soft_v = torch.addcmul(q_next.squeeze(-1).amin(0), alpha, logp_next, value=-1.0)
        y = torch.addcmul(rew, torch.rsub(done, 1.0).mul_(cfg.gamma), soft_v)

        hs, q = fused_forward(torch.cat([obs, act], -1), cw, cb)
        diff = q.squeeze(-1).sub_(y)  # (n, B)
        critic_loss = diff.square().sum() / B
        out = {"critic_loss": critic_loss, "q_mean": (diff + y).mean()}
        gw, gb, _ = fused_backward(hs, cw, diff.mul(2.0 / B).unsqueeze(-1))
        self.critic_opt.step(gw + gb)

        if update_actor:
            self._actor_step(pi, obs, B, alpha, out)
            for _ in range(cfg.actor_steps - 1):  # CleanRL: more actor steps on the same states, fresh noise
                pi = ActorSample(aw, ab, obs, keep=True, bound=self.cfg.log_std_bound)
                self._actor_step(pi, obs, 0, self.log_alpha.exp(), out)
        self.updates += 1
        if self.updates % cfg.target_update_every == 0:
            torch._foreach_lerp_(self._target_w + self._target_b, self._critic_w + self._critic_b, cfg.tau)
        return out

    def _actor_step(self, pi: ActorSample, obs, start: int, alpha, out: dict) -> None:
        """The actor's step (and the temperature's) with the current critics, from the sample rows `start:`."""
        cw, cb, B = self._critic_w, self._critic_b, obs.shape[0]
        a, logp = pi.a[start:], pi.logp[start:]
        hs, q_pi = fused_forward(torch.cat([obs, a], -1), cw, cb)
        q_min, idx = q_pi.squeeze(-1).min(0)
        out["actor_loss"] = (alpha * logp - q_min).mean() + alpha * self.logp_shift
        out["entropy"] = -logp.mean() - self.logp_shift
        # L = mean(alpha logp - min_i Q_i): -1/B flows into the smaller critic of each row
        d_q = torch.zeros_like(q_pi).scatter_(0, idx.view(1, B, 1), -1.0 / B)
        _, _, g_x = fused_backward(hs, cw, d_q, need_params=False, need_x=True)
        gw, gb = pi.backward(self._actor_w, g_x[:, self.obs_dim :], alpha / B, start=start)
        self.actor_opt.step([g for pair in zip(gw, gb, strict=True) for g in pair])
        if self.cfg.auto_alpha:
            # d/d log_alpha of -mean(log_alpha (logp + target)) = entropy - target; of -mean(alpha (logp +
            # target)) (CleanRL) = alpha (entropy - target)
            g = out["entropy"] - self.target_entropy
            self.alpha_opt.step([g if self.cfg.alpha_loss == "log_alpha" else g * self.log_alpha.detach().exp()])

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

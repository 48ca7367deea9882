"""Behaviour cloning: the tanh-Gaussian actor fitted to the data by maximum likelihood."""

from __future__ import annotations

import torch

from .nets import TanhGaussianActor


class BC:
    def __init__(self, obs_dim: int, act_dim: int, hidden=(256, 256), lr: float = 1e-4,
                 device: torch.device | str = "cpu"):
        self.actor = TanhGaussianActor(obs_dim, act_dim, hidden).to(device)
        self.opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.updates = 0

    def update(self, obs: torch.Tensor, act: torch.Tensor) -> dict[str, torch.Tensor]:
        # Likelihood of the data's actions plus the squared error of the mean action; the latter keeps
        # the deterministic (evaluation) policy on the data when the std is still large.
        mean_act, _ = self.actor(obs, deterministic=True)
        loss = -self.actor.log_prob(obs, act).mean() * 0.01 + (mean_act - act).pow(2).sum(-1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.updates += 1
        return {"bc_loss": loss.detach()}

    def train_steps(self, obs: torch.Tensor, act: torch.Tensor, n: int, batch_size: int,
                    gen: torch.Generator | None = None) -> torch.Tensor:
        """n updates on minibatches drawn from (obs, act); returns the summed loss (no host sync)."""
        total = torch.zeros((), device=obs.device)
        for _ in range(n):
            idx = torch.randint(len(obs), (batch_size,), device=obs.device, generator=gen)
            total += self.update(obs[idx], act[idx])["bc_loss"]
        return total

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self.actor(obs, deterministic=deterministic, with_logp=False)[0]

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "opt": self.opt.state_dict(), "updates": self.updates}

    def load_state_dict(self, sd: dict) -> None:
        self.actor.load_state_dict(sd["actor"])
        self.opt.load_state_dict(sd["opt"])
        self.updates = int(sd["updates"])

"""A toy dynamics model as a third-party package would write it, in one file: a single linear layer that
predicts a Gaussian over (s' - s, r) from (s, a), with its own config key `model.toy_logvar_init`.
Registered through the `admpo.models` entry point (tests/test_plugins.py installs it as a distribution)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from admpo_cli.extend import DynamicsModel, ModelSpec, Stepper


@dataclass(frozen=True)
class ToySettings:
    # the starting log-variance of every output (a key of the config's `model:` section)
    toy_logvar_init: float = -2.0

    def __post_init__(self):
        if self.toy_logvar_init > 5:
            raise ValueError(f"model.toy_logvar_init: expected at most 5, got {self.toy_logvar_init}")


class ToyLinear(DynamicsModel):
    kind = "toy-linear"

    def __init__(self, obs_dim: int, act_dim: int, logvar_init: float):
        super().__init__(obs_dim, act_dim)
        self.linear = nn.Linear(obs_dim + act_dim, self.out_dim)
        self.logvar = nn.Parameter(torch.full((self.out_dim,), logvar_init))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.linear(torch.cat([self.norm.obs(obs), self.norm.act(act)], -1))
        return mean, self.logvar.clamp(-10, 2).expand_as(mean)

    def train_loss(self, sampler, batch_size, k_sampling, gen):
        b = sampler.sample_one_step(batch_size)
        mean, logvar = self(b["s0"], b["action"])
        return (0.5 * ((mean - b["target"]).pow(2) * (-logvar).exp() + logvar)).mean()

    @torch.no_grad()
    def holdout_mse(self, batch):
        valid = batch["mask"][:, 0]
        mean, _ = self(batch["s0"][valid], batch["actions"][valid, 0])
        return (mean - batch["target"][valid, 0]).pow(2).mean().reshape(1)

    def stepper(self, dropout_at_inference: bool = False) -> Stepper:
        return ToyStepper(self)


class ToyStepper(Stepper):
    K = 1

    def __init__(self, model: ToyLinear):
        self.model = model

    def start(self, hist_obs, hist_act):
        pass

    def step(self, obs, act):
        mean, logvar = self.model(obs, act)
        nxt = torch.cat([obs + mean[:, : self.model.obs_dim], mean[:, self.model.obs_dim :]], -1)
        return nxt[:, None], logvar.exp()[:, None]

    def keep(self, idx):
        pass


MODEL = ModelSpec(
    kind="toy-linear",
    build=lambda obs_dim, act_dim, m, s: ToyLinear(obs_dim, act_dim, s.toy_logvar_init),
    settings=ToySettings,
    uncertainties=("max_aleatoric",),
    description="a linear Gaussian model (test plugin)",
)

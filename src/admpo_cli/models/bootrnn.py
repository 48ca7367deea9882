"""Bootstrapping RNN baseline: the ADM backbone fed the whole (state, action) history, predicting the next
step from the last state and feeding its own predictions back during roll-outs."""

from __future__ import annotations

import torch

from ..registry import ModelSpec
from .base import RecurrentModel, RecurrentSettings, Stepper, masked_mse_per_position

# ADM's backbone, so ADM's keys and defaults
BootRNNSettings = RecurrentSettings


class BootRNN(RecurrentModel):
    kind = "bootrnn"

    def _inputs(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.norm.obs(states), self.norm.act(actions)], -1).to(self.dtype)

    def forward(self, states, actions, h=None):
        """-> mean, logvar (B, L, D) and the final hidden state (None when training: not needed)."""
        x = self._inputs(states, actions)
        if h is None and torch.is_grad_enabled():
            out = self.run_gru(x.transpose(0, 1)).transpose(0, 1)
        else:
            out, h = self.gru(x, h)
        mean, logvar = self.head(out)
        return mean, logvar, h

    def _targets(self, b):
        states = torch.cat([b["s0"][:, None], b["next_states"][:, :-1]], 1)
        delta = b["next_states"] - states
        return states, torch.cat([delta, b["target"][..., -1:]], -1)

    def train_loss(self, sampler, batch_size, k_sampling, gen):
        b = sampler.sample_all(batch_size)
        states, target = self._targets(b)
        # time-major, as the head and the loss take it
        out = self.run_gru(self._inputs(states, b["actions"]).transpose(0, 1))
        return self.head.nll(out, target.transpose(0, 1), b["mask"].transpose(0, 1)) + self.head.bound_penalty()

    @torch.no_grad()
    def holdout_mse(self, batch):
        states, target = self._targets(batch)
        mean, _, _ = self(states, batch["actions"])
        # One-step error at every position of the teacher-forced window, averaged.
        return masked_mse_per_position(mean, target, batch["mask"]).mean().reshape(1)

    def stepper(self, dropout_at_inference: bool = False) -> BootRNNStepper:
        return BootRNNStepper(self, dropout_at_inference)


class BootRNNStepper(Stepper):
    def __init__(self, model: BootRNN, dropout_at_inference: bool = False):
        self.model = model
        self.K = 1
        model.train(dropout_at_inference)
        self.h = None

    def start(self, hist_obs, hist_act):
        self.h = None
        if hist_obs.shape[1]:
            _, _, self.h = self.model(hist_obs, hist_act)

    def step(self, obs, act):
        mdl = self.model
        mean, logvar, self.h = mdl(obs[:, None], act[:, None], self.h)
        mean, var = mean.float(), logvar.float().exp()
        mean = torch.cat([mean[..., : mdl.obs_dim] + obs[:, None], mean[..., mdl.obs_dim :]], -1)
        return mean, var

    def keep(self, idx):
        if self.h is not None:
            self.h = self.h[:, idx]


MODEL = ModelSpec(
    kind="bootrnn",
    build=lambda obs_dim, act_dim, m, s: BootRNN(obs_dim, act_dim, m, s.hidden, s.layers, s.head_blocks, s.dropout),
    settings=BootRNNSettings,
    uncertainties=("max_aleatoric",),
    description="bootstrapping RNN baseline: one step at a time, its own predictions fed back",
)

"""The one imagined-step engine: a batch of imagined environments over a fitted dynamics model (Algorithm 1).

`ImaginedBatch` holds what an imagined step needs: the model's stepper (every candidate prediction of the next
step: ADM's k = 1..m, an ensemble's members), the k-mode (one k per step for the whole batch, as the authors'
code, or one per row), the uncertainty penalty with its settings, beta, and the task's termination function.
`step(actions)` returns the batch's transitions, with rewards r - beta * U (Eq. 4's U, or another registered
penalty's). The roll-out (models/rollout.py) is a short loop over it; the gymnasium ModelEnv
(models/model_env.py) is a batch-of-1 adapter; models/reference.py is the oracle tests hold both to.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch

from .. import registry
from .base import DynamicsModel
from .uncertainty import quantify

Termination = Callable[[torch.Tensor], torch.Tensor]


class ImaginedBatch:
    """Imagined environments for a batch of start windows; every random draw from `generator`.

    penalty: a registered penalty (registry.PENALTIES) and its settings; k_mode "batch" draws one k per imagined
    step for all rows, "row" one per row (an ensemble always draws a member per row, as MOPO); fixed_index forces
    candidate k = fixed_index + 1; sample=False follows the predicted means; `quantifiers` adds further
    penalties to each step (evaluation); dropout keeps the model's dropout on while predicting."""

    def __init__(self, model: DynamicsModel, termination: Termination, penalty: str = "authors", beta: float = 0.0,
                 k_mode: str = "batch", generator: torch.Generator | None = None, dropout: bool = False,
                 sample: bool = True, penalty_settings: Any = None, fixed_index: int | None = None,
                 quantifiers: tuple[str, ...] = ()):
        self.model, self.termination, self.penalty, self.beta = model, termination, penalty, beta
        self.gen, self.dropout, self.sample, self.fixed_index = generator, dropout, sample, fixed_index
        self.penalty_settings, self.quantifiers = penalty_settings, quantifiers
        self.per_row = k_mode == "row" or model.draws_per_row
        # without a penalty that reads the predictions only the drawn candidate's is needed: a model may compute
        # just that one (a planned stepper)
        self.plannable = not registry.penalty(penalty).uses_predictions and not quantifiers and not self.per_row
        self.step_k: torch.Tensor | None = None  # the batch's k of each imagined step (k_mode=batch)
        self.stepper = None
        self.planned = False
        self.t = 0

    def routed(self):
        """Within it, the model's dropout masks come from the engine's generator (a duck-typed model without
        dropout: none to route)."""
        if hasattr(self.model, "dropout_generator"):
            return self.model.dropout_generator(self.gen)
        return nullcontext()

    def start(self, hist_obs: torch.Tensor, hist_act: torch.Tensor, horizon: int) -> None:
        """New episodes from start windows (the m-1 real steps before each start state). The batch's k of each of
        the `horizon` steps is drawn at the first start and kept for later ones (chunks of one roll-out share
        them, as the authors' code draws one k per step for the whole batch)."""
        with self.routed():
            stepper = self.model.stepper(self.dropout)
            if self.step_k is None and self.fixed_index is None and not self.per_row:
                self.step_k = torch.randint(len(stepper.candidates), (horizon,), device=hist_obs.device,
                                            generator=self.gen)
            self.planned = False
            if self.plannable:
                n, fixed = len(stepper.candidates), self.fixed_index
                plan = [min(fixed, n - 1)] * horizon if fixed is not None else self.step_k.tolist()
                planned = self.model.planned_stepper(plan, self.dropout)
                self.planned = planned is not None
                stepper = planned or stepper
            stepper.start(hist_obs, hist_act)
        self.stepper, self.t = stepper, 0
        self.candidates = stepper.candidates.to(hist_obs.device)

    @torch.no_grad()
    def step(self, obs: torch.Tensor, act: torch.Tensor) -> dict[str, torch.Tensor]:
        """One imagined step of every live row from `obs` with `act`: obs, act, rew (r - beta * U), raw_rew,
        next_obs, done, unc, pred_mean (the drawn candidate's mean) and unc_NAME for each extra quantifier."""
        with self.routed():
            mean, var = self.stepper.step(obs, act)  # (b, K, D): every k (ADM) or every member (ensemble)
        b, d = mean.shape[0], self.model.obs_dim
        idx = self._drawn(b)
        ar = torch.arange(b, device=obs.device)
        mu, v = mean[ar, idx], var[ar, idx]
        draw = mu + v.sqrt() * torch.randn(mu.shape, device=mu.device, generator=self.gen) if self.sample else mu
        nxt, r = draw[:, :d], draw[:, d]
        unc = quantify(self.penalty, mean, var, d, self.penalty_settings)  # Eq. (4) or the registered penalty
        out = {"obs": obs, "act": act, "rew": r - self.beta * unc, "raw_rew": r, "next_obs": nxt,
               "done": self.termination(nxt), "unc": unc, "pred_mean": mu, "candidate": idx}
        for q in self.quantifiers:
            out[f"unc_{q}"] = quantify(q, mean, var, d)
        self.t += 1
        return out

    def keep(self, rows: torch.Tensor) -> None:
        """Only `rows` of the batch go on (the others terminated): the stepper's cached windows shrink."""
        self.stepper.keep(rows)

    def _drawn(self, b: int) -> torch.Tensor:
        """Which of the step's K predictions each of the b rows takes (Algorithm 1's k): the planned stepper's
        only one, a fixed candidate, one drawn per row, or the step's k for the whole batch."""
        cand = self.candidates
        if self.planned:  # the stepper yields the planned candidate alone
            return torch.zeros(b, dtype=torch.long, device=cand.device)
        if self.fixed_index is not None:
            return cand[min(self.fixed_index, len(cand) - 1)].expand(b)
        if self.per_row:
            return cand[torch.randint(len(cand), (b,), device=cand.device, generator=self.gen)]
        return cand[self.step_k[self.t]].expand(b)

"""Roll-outs with random backtracking (Algorithm 1), batched, with the uncertainty of every imagined step.

Everything stays on the model's device; rows that terminate leave the batch at once; the batch is
processed in chunks so large elementwise ops stay in cache.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from .base import DynamicsModel
from .uncertainty import quantify

Policy = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Rollout:
    obs: torch.Tensor
    act: torch.Tensor
    rew: torch.Tensor          # reward after the penalty r - beta * U
    raw_rew: torch.Tensor
    next_obs: torch.Tensor
    done: torch.Tensor
    unc: torch.Tensor
    steps: torch.Tensor        # imagined step index of each row
    pred_mean: torch.Tensor    # mean of the candidate that produced each row's next state
    rows: torch.Tensor         # index of each row's start in the input batch
    extra_unc: dict[str, torch.Tensor] | None = None

    def __len__(self) -> int:
        return int(self.obs.shape[0])


def cast_model(model: DynamicsModel, dtype: str) -> DynamicsModel:
    """A bf16 copy of the model's matrices (the normaliser stays fp32); fp32 returns the model itself."""
    if dtype != "bf16":
        return model
    low = copy.deepcopy(model)
    for name, child in low.named_children():
        if name != "norm":
            child.to(torch.bfloat16)
    for _, p in low.named_parameters(recurse=False):
        p.data = p.data.to(torch.bfloat16)
    return low


@torch.no_grad()
def rollout(
    model: DynamicsModel,
    policy: Policy,
    hist_obs: torch.Tensor,
    hist_act: torch.Tensor,
    obs: torch.Tensor,
    horizon: int,
    termination: Callable[[torch.Tensor], torch.Tensor],
    uncertainty: str = "authors",
    beta: float = 0.0,
    k_mode: str = "batch",
    chunk_size: int = 10000,
    generator: torch.Generator | None = None,
    dropout_at_inference: bool = False,
    fixed_index: int | None = None,
    actions: torch.Tensor | None = None,
    sample: bool = True,
    quantifiers: tuple[str, ...] = (),
    check: Callable[[], None] | None = None,
) -> Rollout:
    """Imagine `horizon` steps from each start (hist_obs/hist_act: the m-1 real steps before `obs`).

    k_mode: "batch" draws one k (candidate) per step for all rows (authors' code), "row" one per row
    (paper text). The ensemble always draws a member per row (MOPO). fixed_index forces candidate
    k = fixed_index + 1 (evaluation variants); `actions` (B, H, act) replaces the policy (recorded actions);
    sample=False follows the predicted means; `quantifiers` adds further uncertainties per row; `check` is
    called before every imagined step (a training loop's stop_requested).
    """
    # every draw of the roll-out from the caller's generator (a duck-typed model without dropout: none to route)
    routed = model.dropout_generator(generator) if hasattr(model, "dropout_generator") else nullcontext()
    with routed:
        return _rollout(model, policy, hist_obs, hist_act, obs, horizon, termination, uncertainty, beta, k_mode,
                        chunk_size, generator, dropout_at_inference, fixed_index, actions, sample, quantifiers,
                        check or (lambda: None))


def _rollout(model, policy, hist_obs, hist_act, obs, horizon, termination, uncertainty, beta, k_mode, chunk_size,
             generator, dropout_at_inference, fixed_index, actions, sample, quantifiers, check) -> Rollout:
    parts: list[dict[str, torch.Tensor]] = []
    B = obs.shape[0]
    obs_dim = model.obs_dim
    per_row = k_mode == "row" or model.draws_per_row
    # without an uncertainty only the drawn candidate's prediction is needed: a model may compute just that
    plannable = uncertainty == "none" and not quantifiers and not per_row
    step_k = None
    for lo in range(0, B, chunk_size):
        hi = min(lo + chunk_size, B)
        stepper = model.stepper(dropout_at_inference)
        if lo == 0 and fixed_index is None and not per_row:
            # Algorithm 1 as the authors' code runs it: one k per imagined step for the whole batch, drawn
            # once for all chunks (a draw per chunk would give each chunk its own k)
            step_k = torch.randint(len(stepper.candidates), (horizon,), device=obs.device, generator=generator)
        planned = None
        if plannable:
            n = len(stepper.candidates)
            plan = [min(fixed_index, n - 1)] * horizon if fixed_index is not None else step_k.tolist()
            planned = model.planned_stepper(plan, dropout_at_inference)
            stepper = planned or stepper
        stepper.start(hist_obs[lo:hi], hist_act[lo:hi])
        cur = obs[lo:hi]
        rows = torch.arange(hi - lo, device=obs.device)
        cand = stepper.candidates.to(obs.device)  # the predictions a next state may be drawn from
        for t in range(horizon):
            check()
            act = policy(cur) if actions is None else actions[lo:hi][rows, t]
            mean, var = stepper.step(cur, act)  # (b, K, D): every k (ADM) or every member (ensemble)
            b = mean.shape[0]
            idx = _drawn(b, cand, planned is not None, fixed_index, per_row, step_k[t] if step_k is not None else None,
                         generator)
            ar = torch.arange(b, device=obs.device)
            mu, v = mean[ar, idx], var[ar, idx]
            draw = mu + v.sqrt() * torch.randn(mu.shape, device=mu.device, generator=generator) if sample else mu
            nxt, r = draw[:, :obs_dim], draw[:, obs_dim]
            unc = quantify(uncertainty, mean, var, obs_dim)
            done = termination(nxt)
            part = {"obs": cur, "act": act, "rew": r - beta * unc, "raw_rew": r, "next_obs": nxt,
                    "done": done, "unc": unc, "steps": torch.full((b,), t, device=obs.device, dtype=torch.long),
                    "pred_mean": mu, "rows": rows + lo}
            for q in quantifiers:
                part[f"unc_{q}"] = quantify(q, mean, var, obs_dim)
            parts.append(part)
            if t == horizon - 1:
                break
            keep = (~done).nonzero().squeeze(1)  # the one host sync of a step: the batch shrinks
            if keep.numel() == 0:
                break
            if keep.numel() == b:  # nobody finished: no need to compact the cached windows
                cur = nxt
                continue
            stepper.keep(keep)
            cur = nxt[keep]
            rows = rows[keep]
    cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    extra = {k[4:]: cat.pop(k) for k in list(cat) if k.startswith("unc_")}
    return Rollout(**cat, extra_unc=extra)


def _drawn(b: int, cand: torch.Tensor, planned: bool, fixed_index: int | None, per_row: bool,
           k: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
    """Which of the step's K predictions each of the b rows takes (Algorithm 1's k): the planned stepper's only
    one, a fixed candidate, one drawn per row, or the step's k for the whole batch."""
    if planned:  # the stepper yields the planned candidate alone
        return torch.zeros(b, dtype=torch.long, device=cand.device)
    if fixed_index is not None:
        return cand[min(fixed_index, len(cand) - 1)].expand(b)
    if per_row:
        return cand[torch.randint(len(cand), (b,), device=cand.device, generator=generator)]
    return cand[k].expand(b)

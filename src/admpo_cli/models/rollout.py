"""Roll-outs with random backtracking (Algorithm 1), batched, with the uncertainty of every imagined step.

Everything stays on the model's device; rows that terminate leave the batch at once; the batch is
processed in chunks so large elementwise ops stay in cache.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .base import DynamicsModel
from .imagined import ImaginedBatch

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
    penalty_settings: Any = None,
) -> Rollout:
    """Imagine `horizon` steps from each start (hist_obs/hist_act: the m-1 real steps before `obs`), over the
    imagined-step engine (models/imagined.py: k_mode, the penalty `uncertainty` with `penalty_settings`, beta,
    fixed_index, sample, `quantifiers` are its own). `actions` (B, H, act) replaces the policy (recorded
    actions); `check` is called before every imagined step (a training loop's stop_requested). Rows that
    terminate leave the batch at once; the batch is processed `chunk_size` rows at a time."""
    engine = ImaginedBatch(model, termination, uncertainty, beta, k_mode, generator, dropout_at_inference, sample,
                           penalty_settings, fixed_index, quantifiers)
    check = check or (lambda: None)
    parts: list[dict[str, torch.Tensor]] = []
    for lo in range(0, obs.shape[0], chunk_size):
        hi = min(lo + chunk_size, obs.shape[0])
        engine.start(hist_obs[lo:hi], hist_act[lo:hi], horizon)
        cur, rows = obs[lo:hi], torch.arange(hi - lo, device=obs.device)
        for t in range(horizon):
            check()
            act = policy(cur) if actions is None else actions[lo:hi][rows, t]
            part = engine.step(cur, act)
            part.pop("candidate")
            parts.append({**part, "steps": torch.full_like(rows, t), "rows": rows + lo})
            if t == horizon - 1:
                break
            keep = (~part["done"]).nonzero().squeeze(1)  # the one host sync of a step: the batch shrinks
            if keep.numel() == 0:
                break
            if keep.numel() == len(rows):  # nobody finished: no need to compact the cached windows
                cur = part["next_obs"]
                continue
            engine.keep(keep)
            cur, rows = part["next_obs"][keep], rows[keep]
    cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    extra = {k[4:]: cat.pop(k) for k in list(cat) if k.startswith("unc_")}
    return Rollout(**cat, extra_unc=extra)

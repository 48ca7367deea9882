"""The steps offline and online training share around the model: imagine roll-outs into the model buffer
(Algorithm 3 lines 4-8; Algorithm 2 lines 5-8), resize the buffer as the roll-out length grows (MBPO keeps a
number of roll-outs), and draw SAC's minibatch from real ∪ model data."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..config import Config
from ..data.dataset import start_windows
from ..models.base import DynamicsModel
from ..models.rollout import rollout
from ..registry import dropout_at_inference, uncertainty_for
from .buffers import RingBuffer, TransitionTable


@dataclass(frozen=True)
class RolloutSettings:
    """Algorithm 1's knobs as this run resolved them (recorded in summary.json)."""

    horizon: int
    beta: float
    uncertainty: str
    k_mode: str
    chunk_size: int
    batch_size: int
    dropout: bool
    penalty: Any = None  # the penalty's own settings (cfg.rollout.settings(uncertainty))

    @classmethod
    def of(cls, cfg: Config) -> RolloutSettings:
        unc = uncertainty_for(cfg.model.kind, cfg.rollout.uncertainty)
        return cls(cfg.rollout.horizon, cfg.rollout.beta, unc, cfg.rollout.k_mode, cfg.rollout.chunk_size,
                   cfg.rollout.batch_size, dropout_at_inference(cfg.model.dropout_at_inference, cfg.model.kind, unc),
                   cfg.rollout.settings(unc))

    def with_horizon(self, horizon: int) -> RolloutSettings:
        return replace(self, horizon=horizon)


@torch.no_grad()
def rollout_into_buffer(model: DynamicsModel, agent, real: dict[str, torch.Tensor], starts: torch.Tensor,
                        model_buf: RingBuffer, ro: RolloutSettings, termination, gen: torch.Generator,
                        check=None) -> dict:
    """Draw `ro.batch_size` start windows (m-1 real steps and a start state) among `starts`, imagine H steps
    with random backtracking under the current policy (Algorithm 1), penalise the rewards r - beta * U,
    and add the transitions to the model buffer. Returns the roll-out's statistics."""
    t0 = time.perf_counter()
    rows = starts[torch.randint(len(starts), (ro.batch_size,), device=starts.device, generator=gen)]
    w = start_windows(real["obs"], real["act"], rows, model.context)
    out = rollout(model, lambda o: agent.actor(o, with_logp=False)[0], w["hist_obs"], w["hist_act"], w["obs"],
                  ro.horizon, termination, ro.uncertainty, ro.beta, ro.k_mode, ro.chunk_size, gen, ro.dropout,
                  check=check, penalty_settings=ro.penalty)
    model_buf.add({"obs": out.obs, "act": out.act, "rew": out.rew, "next_obs": out.next_obs,
                   "done": out.done.float()})
    dt = time.perf_counter() - t0
    unc = float(out.unc.mean())
    return {"rollout_transitions": len(out), "rollout_tps": len(out) / max(dt, 1e-9), "uncertainty_mean": unc,
            "penalty_mean": unc * ro.beta, "rollout_reward_mean": float(out.raw_rew.mean()),
            "rollout_done_frac": float(out.done.float().mean()), "transitions": _kept_rows(out)}


# The imagined transitions a run keeps of its last roll-out (diagnostics/last_rollout.npz): those of the first
# LAST_ROLLOUT_STARTS start windows, enough to look at without writing 50 000 x H rows at every checkpoint.
LAST_ROLLOUT_STARTS = 2000


def _kept_rows(out) -> dict[str, torch.Tensor]:
    """The last roll-out's rows of its first LAST_ROLLOUT_STARTS start windows, as CPU tensors."""
    sel = out.rows < LAST_ROLLOUT_STARTS
    return {"obs": out.obs[sel].cpu(), "act": out.act[sel].cpu(), "next_obs": out.next_obs[sel].cpu(),
            "reward": out.raw_rew[sel].cpu(), "penalised_reward": out.rew[sel].cpu(),
            "uncertainty": out.unc[sel].cpu(), "done": out.done[sel].cpu(), "step": out.steps[sel].cpu(),
            "start": out.rows[sel].cpu()}


def write_last_rollout(path, stats: dict) -> None:
    """diagnostics/last_rollout.npz: the imagined transitions kept of the last roll-out (see _kept_rows), atomically."""
    import io

    import numpy as np

    from ..files import atomic_write_bytes

    rows = stats.get("transitions")
    if not rows:
        return
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: v.numpy() for k, v in rows.items()})
    atomic_write_bytes(path, buf.getvalue())


def resize_model_buffer(buf: RingBuffer, capacity: int) -> RingBuffer:
    """A buffer of `capacity` rows holding the newest rows of `buf` (in their order of arrival); `buf` itself
    when it already has that capacity. MBPO keeps a number of roll-outs, so the capacity follows the length."""
    if buf.capacity == capacity:
        return buf
    new = RingBuffer(capacity, buf.store.cols["obs"][1], buf.store.cols["act"][1], buf.device)
    if buf.size:
        order = (buf.ptr - buf.size + torch.arange(buf.size, device=buf.device)) % buf.capacity
        new.add(buf.store.split(buf.store.table[order][-capacity:]))
    return new


def mixed_batch(real_rows: torch.Tensor, model_buf: RingBuffer, table: TransitionTable, batch_size: int,
                real_ratio: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One SAC minibatch: real_ratio of it from the real rows, the rest from the model buffer (all real while
    the buffer is empty); `table` splits the gathered rows into fields. The real part is int(batch *
    real_ratio), rounded down as the authors' and MBPO's code (256 x 0.05: 12 real + 244 model)."""
    n_real = int(batch_size * real_ratio) if model_buf.size else batch_size
    rows = real_rows[torch.randint(real_rows.shape[0], (n_real,), device=real_rows.device, generator=gen)]
    if model_buf.size and batch_size - n_real > 0:
        rows = torch.cat([rows, model_buf.store.table[model_buf.sample_idx(batch_size - n_real, gen)]])
    return table.split(rows)

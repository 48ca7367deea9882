"""The offline loop (Algorithm 3, the MOPO framework): SAC on the dataset mixed with penalised roll-outs of a
fitted model. ADMPO-OFF runs it with ADM; MOPO (algos/mopo.py) with its published settings and ensemble; an
offline algorithm of a plugin can run it with its own settings. The stage hands in the dataset and the fitted
model; this module never reads them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import torch

from .. import registry
from ..agents import make_agent
from ..config import Config
from ..data.dataset import Transitions, rollout_starts
from ..envs.specs import spec_for
from ..envs.termination import termination_fn
from ..errors import UserError
from ..evaluate.policy import EPOCH_STRIDE
from ..models.base import DynamicsModel
from ..models.rollout import cast_model
from ..rundir import RunDir
from .buffers import KEYS, RingBuffer, table_of
from .model_buffer import RolloutSettings, mixed_batch, rollout_into_buffer, write_last_rollout
from .plumbing import evaluate, finish, write_policy
from .summary import read_rows
from .training_run import Hooks, TrainingRun


@dataclass
class OfflineState:
    """The loop's counters (the checkpoint keeps them beside the agent and the model buffer)."""

    step: int = 0  # SAC updates done
    last_rollout: dict = field(default_factory=dict)


def train_offline(cfg: Config, run: RunDir, device: torch.device, data: Transitions, model: DynamicsModel,
                  hooks: Hooks | None = None) -> dict:
    """Algorithm 3: SAC on D_env ∪ D_model, D_model refilled with penalised roll-outs of `model` every
    rollout_freq updates; resumes from the run's checkpoint when there is one."""
    ro, spec, total = RolloutSettings.of(cfg), spec_for(cfg.data), cfg.train.epochs * cfg.train.steps_per_epoch
    term = termination_fn(spec)
    model = cast_model(model.to(device).eval(), cfg.rollout.dtype)
    agent = make_agent(data.obs_dim, data.act_dim, cfg.agent, device,
                       total_actor_updates=math.ceil(total / cfg.agent.actor_update_every))
    real = table_of(data, device)  # D_env
    model_buf = RingBuffer(ro.batch_size * ro.horizon * cfg.train.model_retain_epochs, data.obs_dim, data.act_dim,
                           device)  # D_model: the last model_retain_epochs roll-outs
    starts = _start_rows(data, model.context, device)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.run.seed)
    tr = TrainingRun(cfg, run, OfflineState(), {"agent": agent, "model_buffer": model_buf}, gen, total, "step",
                     hooks, agent, rate_of="step", unsaved=() if cfg.train.checkpoint_buffer else ("model_buffer",))
    state = tr.start(lambda s: s.step)
    with tr.running() as stop_requested:
        while state.step < total:
            stop_requested()  # a Ctrl-C or SIGTERM during the last step takes effect here, between two steps
            if state.step % cfg.train.rollout_freq == 0 or model_buf.size == 0:
                # lines 4-8: start windows from D_env, H imagined steps with random backtracking (Algorithm 1),
                # rewards r - beta * U (Eq. 4), into D_model (a stop request ends it at once, redone on resume)
                with tr.undone_if_stopped():
                    state.last_rollout = rollout_into_buffer(model, agent, real.data, starts, model_buf, ro, term,
                                                             gen, stop_requested)
            batch = mixed_batch(real.table, model_buf, real, cfg.agent.batch_size, cfg.train.real_ratio, gen)  # l. 9
            tr.add(agent.update(*(batch[k] for k in KEYS),  # line 10: a SAC update on the mixed batch
                                update_actor=(state.step % cfg.agent.actor_update_every == 0)))
            state.step += 1
            if state.step % cfg.train.steps_per_epoch == 0 or state.step == total:
                _end_of_epoch(cfg, tr, agent, model_buf, state, total, device)
    write_policy(cfg, run, agent.actor, data.obs_dim, data.act_dim)
    return _summary(cfg, run, agent, ro, model, state)


def _start_rows(data: Transitions, context: int, device: torch.device) -> torch.Tensor:
    starts = torch.as_tensor(rollout_starts(data, context), device=device)
    if len(starts) == 0:
        raise UserError(f"{data.source}: no roll-out start windows: every episode is shorter than the model's "
                        f"{context}-step context (lower model.m)")
    return starts


def _end_of_epoch(cfg: Config, tr: TrainingRun, agent, model_buf: RingBuffer, state: OfflineState, total: int,
                  device: torch.device) -> None:
    """Losses and the divergence guard; every eval.every epochs an evaluation (10 deterministic episodes in the
    authors' code) and a metrics.csv row; every checkpoint_every epochs a checkpoint."""
    epoch = math.ceil(state.step / cfg.train.steps_per_epoch)
    losses = tr.losses(f"step {state.step}")
    ups = tr.rate()  # this epoch's training (roll-outs included, evaluation and checkpoints not)
    row = None
    if epoch % cfg.eval.every == 0 or state.step == total:
        last = state.last_rollout
        row = {"step": state.step, "epoch": epoch,
               **evaluate(cfg, tr.run, lambda o: agent.act(o, deterministic=True), epoch * EPOCH_STRIDE, device),
               **losses, "alpha": float(agent.alpha), "model_buffer": model_buf.size,
               "uncertainty_mean": last.get("uncertainty_mean", ""), "penalty_mean": last.get("penalty_mean", ""),
               # the last roll-out's imagined reward before the penalty and its share of terminated rows
               "imagined_reward_mean": last.get("rollout_reward_mean", ""),
               "imagined_done_frac": last.get("rollout_done_frac", ""),
               "rollout_tps": last.get("rollout_tps", ""), "updates_per_s": ups}
    checkpoint = epoch % cfg.train.checkpoint_every == 0 or state.step == total
    tr.log(state.step, row, {"epoch": epoch, **losses, "updates_per_s": ups}, checkpoint=checkpoint)
    if checkpoint:
        write_last_rollout(tr.run.file("diagnostics", "last_rollout.npz"), state.last_rollout)
    tr.restart_rate()


def _fit_record(run: RunDir, kind: str) -> dict:
    """How the run's model was fitted (model/<kind>.json, the fit stage's record), for summary.json."""
    path = run.file("model", f"{kind}.json")
    if not path.exists():
        return {}
    fit = json.loads(path.read_text())
    return {f"model_{k}": fit.get(k) for k in ("k_sampling", "steps_per_epoch", "validation", "epochs",
                                               "gradient_steps") if k in fit}


def _summary(cfg: Config, run: RunDir, agent, ro: RolloutSettings, model: DynamicsModel, state: OfflineState) -> dict:
    spec = registry.algorithm(cfg.train.algo, "offline")
    rows = read_rows(run.file("metrics.csv"))
    extra = {"published_setting": spec.published_for(cfg.data.task)} if spec.published_for else {}
    return finish(cfg, run, cfg.model.kind, {
        "uncertainty": ro.uncertainty, "k_mode": ro.k_mode, "beta": ro.beta, "m": getattr(model, "m", None),
        "horizon": ro.horizon, "gradient_steps": state.step, "rollout_dtype": cfg.rollout.dtype,
        "dropout_at_inference": ro.dropout, "agent_backend": agent.backend, **extra,
        **_fit_record(run, cfg.model.kind),
        "score_curve": [float(r["score_mean"]) for r in rows if r.get("score_mean") not in ("", None)],
    })

"""ADMPO-OFF (Algorithm 3, the MOPO framework) and MOPO: SAC on real data mixed with penalised roll-outs.

`--algo mopo` runs MOPO with its published settings (algorithms.py); `--model ensemble` under ADMPO's
settings is the ensemble ablation. The loop is the same for all three:

    every rollout_freq updates:  rollout_model_and_fill_buffer   (Algorithm 3, lines 4-8)
    every update:                buffers.sac_batch -> agent.update (lines 9-10, real_ratio of real data)
    every epoch:                 end_of_epoch (losses, divergence guard, evaluation, checkpoint)

The stage (stages/train.py) hands in the dataset and the fitted model; this module never reads them.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..agents import make_agent
from ..algorithms import dropout_at_inference, mopo_published, uncertainty_for
from ..config import Config, fingerprint
from ..data.dataset import Transitions, rollout_starts, start_windows
from ..data.scores import Reference, reference_for
from ..envs.registry import EnvSpec, spec_for
from ..envs.termination import termination_fn
from ..errors import DivergenceError, UserError
from ..evaluate.policy import evaluate, score_row
from ..models.base import DynamicsModel
from ..models.rollout import cast_model, rollout
from ..rundir import RunDir, append_csv, atomic_torch_save, truncate_csv_after
from ..runtime import interrupts_at_step_ends
from .buffers import KEYS, RingBuffer, sac_batch, table_of
from .loop_guards import add_losses, ensure_finite, loss_sums, mean_losses, read_checkpoint
from .policy_files import save_policy
from .rng import rng_state, set_rng_state
from .summary import read_rows, write_summary

CKPT = ("checkpoints", "offline.pt")


@dataclass
class Hooks:
    """What the loop tells its caller: on_start(update, total) once, on_progress(update, row) after every
    epoch. A KeyboardInterrupt (Ctrl-C, or raised by a hook) saves a checkpoint and ends the run."""

    on_start: Callable[[int, int], None] | None = None
    on_progress: Callable[[int, dict], None] | None = None


@dataclass
class LoopState:
    """The counters a checkpoint keeps besides the agent, the model buffer and the random streams."""

    step: int = 0
    acc: dict = field(default_factory=loss_sums)
    last_rollout: dict = field(default_factory=dict)
    wall_s: float = 0.0  # training seconds before this process (a resumed run)


@dataclass
class RolloutSettings:
    """Algorithm 1's knobs as this run resolved them (recorded in summary.json)."""

    horizon: int
    beta: float
    uncertainty: str
    k_mode: str
    chunk_size: int
    batch_size: int
    dropout: bool

    @classmethod
    def of(cls, cfg: Config) -> RolloutSettings:
        unc = uncertainty_for(cfg.model.kind, cfg.rollout.uncertainty)
        return cls(cfg.rollout.horizon, cfg.rollout.beta, unc, cfg.rollout.k_mode, cfg.rollout.chunk_size,
                   cfg.rollout.batch_size, dropout_at_inference(cfg.model.dropout_at_inference, cfg.model.kind, unc))


def rollout_model_and_fill_buffer(model: DynamicsModel, agent, real: dict[str, torch.Tensor], starts: torch.Tensor,
                                  model_buf: RingBuffer, ro: RolloutSettings, termination,
                                  gen: torch.Generator) -> dict:
    """Algorithm 3, lines 4-8: draw start windows (m-1 real steps and a start state) from the data, imagine
    H steps with random backtracking under the current policy (Algorithm 1), penalise the rewards
    r - beta * U, and add the transitions to the model buffer. Returns the roll-out's statistics."""
    t0 = time.perf_counter()
    rows = starts[torch.randint(len(starts), (ro.batch_size,), device=starts.device, generator=gen)]
    w = start_windows(real["obs"], real["act"], rows, model.context)
    out = rollout(model, lambda o: agent.actor(o, with_logp=False)[0], w["hist_obs"], w["hist_act"], w["obs"],
                  ro.horizon, termination, ro.uncertainty, ro.beta, ro.k_mode, ro.chunk_size, gen, ro.dropout)
    model_buf.add({"obs": out.obs, "act": out.act, "rew": out.rew, "next_obs": out.next_obs,
                   "done": out.done.float()})
    dt = time.perf_counter() - t0
    unc = float(out.unc.mean())
    return {"rollout_transitions": len(out), "rollout_tps": len(out) / max(dt, 1e-9), "uncertainty_mean": unc,
            "penalty_mean": unc * ro.beta, "rollout_reward_mean": float(out.raw_rew.mean())}


def save_checkpoint(path, config_fp: str, state: LoopState, agent, model_buf: RingBuffer, keep_buffer: bool,
                    gen: torch.Generator, agent_state: dict | None = None) -> None:
    atomic_torch_save(path, {
        "fingerprint": config_fp, "step": state.step, "agent": agent_state or agent.state_dict(),
        "model_buffer": model_buf.state_dict() if keep_buffer else {}, "rng": rng_state(gen), "acc": state.acc,
        "last_rollout": state.last_rollout, "wall_s": state.wall_s,
    })


def load_checkpoint(path, config_fp: str, agent, model_buf: RingBuffer, gen: torch.Generator) -> LoopState:
    """Restore a run that was interrupted; refuse one written with other settings."""
    ck = read_checkpoint(path, config_fp)
    agent.load_state_dict(ck["agent"])
    if ck.get("model_buffer"):
        model_buf.load_state_dict(ck["model_buffer"])
    set_rng_state(ck["rng"], gen)
    return LoopState(int(ck["step"]), dict(ck["acc"]), dict(ck["last_rollout"]), float(ck.get("wall_s", 0.0)))


def evaluation_row(agent, spec: EnvSpec, cfg: Config, ref: Reference | None, epoch: int, device) -> dict:
    """10 deterministic episodes (authors' code) on the simulator, seeded by the epoch."""
    rets = evaluate(lambda o: agent.act(o, deterministic=True), spec, cfg.eval.episodes,
                    seed=cfg.run.seed * 100_003 + epoch * 1009, max_steps=cfg.eval.max_episode_steps, device=device)
    return score_row(rets, ref)


def train_offline(cfg: Config, run: RunDir, device: torch.device, data: Transitions, model: DynamicsModel,
                  hooks: Hooks | None = None) -> dict:
    """Train SAC on the dataset and penalised roll-outs of `model` (ADMPO-OFF, MOPO or the ablation);
    resumes from the run's checkpoint when there is one."""
    hooks = hooks or Hooks()
    ro = RolloutSettings.of(cfg)
    config_fp = fingerprint(cfg)
    spec = spec_for(cfg.data)
    term = termination_fn(spec)
    ref = reference_for(cfg.data.task, cfg.data.env)
    model = cast_model(model.to(device).eval(), cfg.rollout.dtype)

    total = cfg.train.epochs * cfg.train.steps_per_epoch
    agent = make_agent(data.obs_dim, data.act_dim, cfg.agent, device,
                       total_actor_updates=math.ceil(total / cfg.agent.actor_update_every))
    real_table = table_of(data, device)
    model_buf = RingBuffer(ro.batch_size * ro.horizon * cfg.train.model_retain_epochs, data.obs_dim, data.act_dim,
                           device)
    starts = torch.as_tensor(rollout_starts(data, model.context), device=device)
    if len(starts) == 0:
        raise UserError(f"{data.source}: no roll-out start windows: every episode is shorter than the model's "
                        f"{model.context}-step context (lower model.m)")
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.run.seed)

    ckpt_path, metrics = run.file(*CKPT), run.file("metrics.csv")
    state = LoopState()
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path, config_fp, agent, model_buf, gen)
        truncate_csv_after(metrics, "step", state.step)
    elif metrics.exists():
        metrics.unlink()  # a fresh run: no rows of an earlier attempt
    last_good = copy.deepcopy(agent.state_dict())

    if hooks.on_start:
        hooks.on_start(state.step, total)
    t_start = t_epoch = time.perf_counter()
    wall0, updates_at = state.wall_s, state.step

    def checkpoint(path=ckpt_path, agent_state=None) -> None:
        state.wall_s = wall0 + time.perf_counter() - t_start
        save_checkpoint(path, config_fp, state, agent, model_buf, cfg.train.checkpoint_buffer, gen, agent_state)

    with interrupts_at_step_ends() as stop_requested:
        try:
            while state.step < total:
                stop_requested()  # a Ctrl-C or SIGTERM during the last step takes effect here, between two steps
                if state.step % cfg.train.rollout_freq == 0 or model_buf.size == 0:
                    with torch.no_grad():
                        state.last_rollout = rollout_model_and_fill_buffer(model, agent, real_table.data, starts,
                                                                           model_buf, ro, term, gen)
                batch = sac_batch(real_table.table, model_buf, real_table, cfg.agent.batch_size, cfg.train.real_ratio,
                                  gen)
                out = agent.update(*(batch[k] for k in KEYS),
                                   update_actor=(state.step % cfg.agent.actor_update_every == 0))
                add_losses(state.acc, out)
                state.step += 1
                if state.step % cfg.train.steps_per_epoch and state.step != total:
                    continue
                # ---- end of an epoch: losses, divergence guard, evaluation, checkpoint
                epoch = math.ceil(state.step / cfg.train.steps_per_epoch)
                losses = mean_losses(state.acc)
                ensure_finite(losses, f"step {state.step}", run.file("checkpoints", "last_good.pt"),
                              lambda p, good=last_good: checkpoint(p, good))
                last_good = copy.deepcopy(agent.state_dict())
                # updates/s of this epoch's training (roll-outs included, evaluation and checkpoints not)
                ups = (state.step - updates_at) / max(time.perf_counter() - t_epoch, 1e-9)
                state.acc = loss_sums()
                row = None
                if epoch % cfg.eval.every == 0 or state.step == total:
                    last = state.last_rollout
                    row = {"step": state.step, "epoch": epoch, **evaluation_row(agent, spec, cfg, ref, epoch, device),
                           **losses, "alpha": float(agent.alpha), "model_buffer": model_buf.size,
                           "uncertainty_mean": last.get("uncertainty_mean", ""),
                           "penalty_mean": last.get("penalty_mean", ""), "rollout_tps": last.get("rollout_tps", ""),
                           "updates_per_s": ups, "wall_s": round(wall0 + time.perf_counter() - t_start, 2),
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
                    append_csv(metrics, row)
                if epoch % cfg.train.checkpoint_every == 0 or state.step == total:
                    checkpoint()
                if hooks.on_progress:
                    hooks.on_progress(state.step, row or {"epoch": epoch, **losses, "updates_per_s": ups})
                t_epoch, updates_at = time.perf_counter(), state.step
        except KeyboardInterrupt:
            checkpoint()
            raise
    save_policy(run, agent.actor, data.obs_dim, data.act_dim, cfg.agent.hidden, cfg.data.task, cfg.train.algo)
    rows = read_rows(metrics)
    extra = {"published_setting": mopo_published(cfg.data.task)} if cfg.train.algo == "mopo" else {}
    return write_summary(run, cfg, cfg.train.algo, cfg.model.kind, rows, ref, {
        "uncertainty": ro.uncertainty, "k_mode": ro.k_mode, "beta": ro.beta, "m": getattr(model, "m", None),
        "horizon": ro.horizon, "gradient_steps": state.step, "rollout_dtype": cfg.rollout.dtype,
        "dropout_at_inference": ro.dropout, "agent_backend": agent.backend, **extra,
        "score_curve": [float(r["score_mean"]) for r in rows if r.get("score_mean") not in ("", None)],
    })


def train_bc(cfg: Config, run: RunDir, device: torch.device, data: Transitions, hooks: Hooks | None = None) -> dict:
    """Behaviour cloning through the same data path, evaluation and summary."""
    from ..agents.bc import BC

    hooks = hooks or Hooks()
    spec = spec_for(cfg.data)
    ref = reference_for(cfg.data.task, cfg.data.env)
    bc = BC(data.obs_dim, data.act_dim, cfg.agent.hidden, cfg.agent.actor_lr * 10, device)
    real = table_of(data, device).data
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.run.seed)
    metrics = run.file("metrics.csv")
    if metrics.exists():
        metrics.unlink()
    total = cfg.train.bc_steps
    every = max(total // 10, 1)
    if hooks.on_start:
        hooks.on_start(0, total)
    t0 = time.perf_counter()
    step = 0
    while step < total:
        n = min(every, total - step)
        loss = float(bc.train_steps(real["obs"], real["act"], n, cfg.agent.batch_size, gen)) / n
        step += n
        if not math.isfinite(loss):
            raise DivergenceError(f"BC loss is not finite at step {step}")
        rets = evaluate(lambda o: bc.act(o), spec, cfg.eval.episodes, seed=cfg.run.seed * 100_003 + step,
                        max_steps=cfg.eval.max_episode_steps, device=device)
        row = {"step": step, "epoch": math.ceil(step / every), **score_row(rets, ref), "bc_loss": loss,
               "updates_per_s": n / max(time.perf_counter() - t0, 1e-9),
               "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        append_csv(metrics, row)
        t0 = time.perf_counter()
        if hooks.on_progress:
            hooks.on_progress(step, row)
    save_policy(run, bc.actor, data.obs_dim, data.act_dim, cfg.agent.hidden, cfg.data.task, "bc")
    save_policy(run, bc.actor, data.obs_dim, data.act_dim, cfg.agent.hidden, cfg.data.task, "bc", name="bc")
    return write_summary(run, cfg, "bc", None, read_rows(metrics), ref, {"gradient_steps": total})

"""ADMPO-OFF (Algorithm 3, the MOPO framework) and MOPO: SAC on real data mixed with penalised roll-outs.

`--algo mopo` runs MOPO with its published settings (algorithms.py); `--model ensemble` under ADMPO's
settings is the ensemble ablation. The loop is the same for all three.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..agents.sac import SAC
from ..algorithms import dropout_at_inference, mopo_published, uncertainty_for
from ..config import Config, fingerprint
from ..data.dataset import Transitions, rollout_starts, start_windows
from ..data.scores import reference_for
from ..envs.registry import spec_for
from ..envs.termination import termination_fn
from ..errors import DivergenceError, UserError
from ..evaluate.policy import evaluate, score_row
from ..models.rollout import cast_model, rollout
from ..rundir import RunDir, append_csv, atomic_torch_save, torch_load, truncate_csv_after
from ..stages import dataset_for_run, model_for_training
from .buffers import KEYS, RingBuffer, table_of
from .common import read_rows, rng_state, save_policy, set_rng_state, write_summary

CKPT = ("checkpoints", "offline.pt")


@dataclass
class Hooks:
    """Callbacks for the CLI's progress display; `stop_at` ends the loop early (tests of resume)."""

    on_start: Callable[[int, int], None] | None = None
    on_progress: Callable[[int, dict], None] | None = None
    stop_at: int | None = None


def _finite(x: float) -> bool:
    return math.isfinite(x)


def train_offline(cfg: Config, run: RunDir, device: torch.device, hooks: Hooks | None = None,
                  data: Transitions | None = None, force: bool = False) -> dict:
    hooks = hooks or Hooks()
    algo = cfg.train.algo
    kind = cfg.model.kind
    unc_name = uncertainty_for(kind, cfg.rollout.uncertainty)
    dropout = dropout_at_inference(cfg.model.dropout_at_inference, kind, unc_name)
    config_fp = fingerprint(cfg)
    data = data if data is not None else dataset_for_run(cfg, run)
    spec = spec_for(cfg.data)
    term = termination_fn(spec)
    ref = reference_for(cfg.data.task, cfg.data.env)

    # ---- the model: the run's fitted one if fitted with these settings, else fit it now (Algorithm 3, line 1)
    model, _ = model_for_training(cfg, run, device, kind, data, force)
    model = cast_model(model.to(device).eval(), cfg.rollout.dtype)

    # ---- agent, buffers, RNG
    total = cfg.train.epochs * cfg.train.steps_per_epoch
    agent = SAC(data.obs_dim, data.act_dim, cfg.agent, device,
                total_actor_updates=math.ceil(total / cfg.agent.actor_update_every))
    real_table = table_of(data, device)
    real = real_table.data
    n_real = len(data)
    rollout_cap = cfg.rollout.batch_size * cfg.rollout.horizon * cfg.train.model_retain_epochs
    model_buf = RingBuffer(rollout_cap, data.obs_dim, data.act_dim, device)
    starts = torch.as_tensor(rollout_starts(data, model.context), device=device)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.run.seed)
    B = cfg.agent.batch_size
    n_real_batch = int(round(B * cfg.train.real_ratio))

    step, last_rollout = 0, {}
    wall0 = 0.0  # training seconds spent before this process (a resumed run)
    acc = {"critic_loss": 0.0, "actor_loss": 0.0, "q_mean": 0.0, "n": 0}
    ckpt_path = run.file(*CKPT)
    metrics = run.file("metrics.csv")
    if ckpt_path.exists():
        ck = torch_load(ckpt_path)
        if ck.get("fingerprint") != config_fp:
            raise UserError(f"{ckpt_path}: written with other settings (config fingerprint "
                            f"{ck.get('fingerprint') or 'none'}, now {config_fp}); --force starts the run over")
        agent.load_state_dict(ck["agent"])
        if ck.get("model_buffer"):
            model_buf.load_state_dict(ck["model_buffer"])
        set_rng_state(ck["rng"], gen)
        step, acc, last_rollout = int(ck["step"]), dict(ck["acc"]), dict(ck["last_rollout"])
        wall0 = float(ck.get("wall_s", 0.0))
        truncate_csv_after(metrics, "step", step)
    elif metrics.exists():
        metrics.unlink()  # a fresh run: no rows of an earlier attempt
    last_good = copy.deepcopy(agent.state_dict())

    def save_ckpt(path=ckpt_path, agent_state=None) -> None:
        atomic_torch_save(path, {
            "fingerprint": config_fp, "step": step, "agent": agent_state or agent.state_dict(),
            "model_buffer": model_buf.state_dict() if cfg.train.checkpoint_buffer else {},
            "rng": rng_state(gen), "acc": acc,
            "last_rollout": last_rollout, "wall_s": wall0 + time.perf_counter() - t_start,
        })

    def policy(o: torch.Tensor) -> torch.Tensor:
        return agent.actor(o, with_logp=False)[0]

    def do_rollout() -> None:
        nonlocal last_rollout
        t0 = time.perf_counter()
        rows = starts[torch.randint(len(starts), (cfg.rollout.batch_size,), device=device, generator=gen)]
        w = start_windows(real["obs"], real["act"], rows, model.context)
        ro = rollout(model, policy, w["hist_obs"], w["hist_act"], w["obs"],
                     cfg.rollout.horizon, term, unc_name, cfg.rollout.beta, cfg.rollout.k_mode,
                     cfg.rollout.chunk_size, gen, dropout)
        model_buf.add({"obs": ro.obs, "act": ro.act, "rew": ro.rew, "next_obs": ro.next_obs,
                       "done": ro.done.float()})
        dt = time.perf_counter() - t0
        last_rollout = {"rollout_transitions": len(ro), "rollout_tps": len(ro) / max(dt, 1e-9),
                        "uncertainty_mean": float(ro.unc.mean()), "penalty_mean": float(ro.unc.mean()) *
                        cfg.rollout.beta, "rollout_reward_mean": float(ro.raw_rew.mean())}

    if hooks.on_start:
        hooks.on_start(step, total)
    t_epoch, updates_at = time.perf_counter(), step
    t_start = t_epoch
    try:
        while step < total:
            if step % cfg.train.rollout_freq == 0 or model_buf.size == 0:
                with torch.no_grad():
                    do_rollout()
            ridx = torch.randint(n_real, (n_real_batch if model_buf.size else B,), device=device, generator=gen)
            rows = real_table.table[ridx]
            if model_buf.size and B - n_real_batch > 0:
                midx = model_buf.sample_idx(B - n_real_batch, gen)
                rows = torch.cat([rows, model_buf.store.table[midx]])
            batch = real_table.split(rows)
            out = agent.update(*(batch[k] for k in KEYS), update_actor=(step % cfg.agent.actor_update_every == 0))
            acc["critic_loss"] += out["critic_loss"]
            acc["q_mean"] += out["q_mean"]
            if "actor_loss" in out:
                acc["actor_loss"] += out["actor_loss"]
            acc["n"] += 1
            step += 1
            if step % cfg.train.steps_per_epoch == 0 or step == total:
                epoch = math.ceil(step / cfg.train.steps_per_epoch)
                n = max(acc["n"], 1)
                losses = {k: float(acc[k]) / n for k in ("critic_loss", "actor_loss", "q_mean")}
                if not all(_finite(v) for v in losses.values()):
                    save_ckpt(run.file("checkpoints", "last_good.pt"), last_good)
                    raise DivergenceError(
                        f"non-finite losses at step {step} ({losses}); last good state saved to "
                        f"{run.file('checkpoints', 'last_good.pt')}"
                    )
                last_good = copy.deepcopy(agent.state_dict())
                # updates/s of this epoch's training (roll-outs included, evaluation and checkpoints not)
                ups = (step - updates_at) / max(time.perf_counter() - t_epoch, 1e-9)
                acc = {"critic_loss": 0.0, "actor_loss": 0.0, "q_mean": 0.0, "n": 0}
                row = None
                if epoch % cfg.eval.every == 0 or step == total:
                    rets = evaluate(lambda o: agent.act(o, deterministic=True), spec, cfg.eval.episodes,
                                    seed=cfg.run.seed * 100_003 + epoch * 1009, max_steps=cfg.eval.max_episode_steps,
                                    device=device)
                    row = {"step": step, "epoch": epoch, **score_row(rets, ref), **losses,
                           "alpha": float(agent.alpha), "model_buffer": model_buf.size,
                           "uncertainty_mean": last_rollout.get("uncertainty_mean", ""),
                           "penalty_mean": last_rollout.get("penalty_mean", ""),
                           "rollout_tps": last_rollout.get("rollout_tps", ""),
                           "updates_per_s": ups, "wall_s": round(wall0 + time.perf_counter() - t_start, 2),
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
                    append_csv(metrics, row)
                if epoch % cfg.train.checkpoint_every == 0 or step == total:
                    save_ckpt()
                if hooks.on_progress:
                    hooks.on_progress(step, row or {"epoch": epoch, **losses, "updates_per_s": ups})
                t_epoch, updates_at = time.perf_counter(), step
            if hooks.stop_at is not None and step >= hooks.stop_at:
                return {"stopped_at": step}
    except KeyboardInterrupt:
        save_ckpt()
        raise
    save_policy(run, agent.actor, data.obs_dim, data.act_dim, cfg.agent.hidden, cfg.data.task, algo)
    rows = read_rows(metrics)
    extra = {"published_setting": mopo_published(cfg.data.task)} if algo == "mopo" else {}
    return write_summary(run, cfg, algo, kind, rows, ref, {
        "uncertainty": unc_name, "k_mode": cfg.rollout.k_mode, "beta": cfg.rollout.beta,
        "m": getattr(model, "m", None), "horizon": cfg.rollout.horizon, "gradient_steps": step,
        "rollout_dtype": cfg.rollout.dtype, "dropout_at_inference": dropout, **extra,
        "score_curve": [float(r["score_mean"]) for r in rows if r.get("score_mean") not in ("", None)],
    })


def train_bc(cfg: Config, run: RunDir, device: torch.device, hooks: Hooks | None = None,
             data: Transitions | None = None) -> dict:
    """Behaviour cloning through the same data path, evaluation and summary."""
    from ..agents.bc import BC

    hooks = hooks or Hooks()
    data = data if data is not None else dataset_for_run(cfg, run)
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


"""The online loop (Algorithm 2, the MBPO framework): ADMPO-ON, MBPO and model-free SAC.

As the authors' `runner/online_trainer.py` (and MBPO's code): train.warmup_steps random env steps come
first and are not counted; then for each learning step it = 0 .. total_steps-1: every model_update_interval
steps re-fit the model on D_env and roll it out into D_model; one env step with the current policy; utd SAC
updates on D_env ∪ D_model; every eval.every steps an evaluation, a metrics.csv row (env_steps counts
learning steps) and a checkpoint. SAC (no model) skips the model steps. The run resumes to the same result:
the checkpoint holds D_env, the model, the agent and its optimisers, every random stream and the simulator's
integration state.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import registry
from ..agents import make_agent
from ..config import Config
from ..data.dataset import Transitions, rollout_starts
from ..data.scores import run_reference
from ..envs.specs import action_scale, spec_for
from ..envs.termination import termination_fn
from ..files import append_csv, truncate_csv_after
from ..models.factory import build_model
from ..models.fit import fit
from ..rundir import RunDir
from . import fine_tune
from .buffers import KEYS, RingBuffer
from .model_buffer import RolloutSettings, mixed_batch, resize_model_buffer, rollout_into_buffer, write_last_rollout
from .plumbing import evaluate, finish, write_policy
from .real_env import RealData, Simulator
from .summary import read_rows
from .training_run import LOSSES, Hooks, TrainingRun

PHASES = ("env", "fit", "rollout", "sac", "eval")


def rollout_length(schedule: tuple[float, ...], env_steps: int) -> int:
    """Table 4's schedule [x, y, a, b]: min(max(x + (t - a) / (b - a) (y - x), x), y), as an integer."""
    x, y, a, b = schedule
    frac = (env_steps - a) / (b - a) if b > a else 1.0
    return int(min(max(x + frac * (y - x), x), y))


@dataclass
class OnlineState:
    """The loop's counters (the checkpoint keeps them beside the parts)."""

    env_steps: int = 0  # warm-up included
    updates: int = 0
    carried: list = field(default_factory=list)  # what a fine-tuned run took over from its source run
    # seconds spent in each phase so far (metrics.csv has them; the benchmark reads them)
    phase_s: dict = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))


class PhaseClock:
    """Adds the time since the last lap to a phase's total."""

    def __init__(self, totals: dict[str, float]):
        self.totals, self.t = totals, time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.totals[phase] += now - self.t
        self.t = now


def fit_dynamics(cfg: Config, model, opt_state: dict | None, data: Transitions, device: torch.device, seed: int,
                 check=None):
    """Fit the model on all real data so far: a fresh one (the ADMPO authors' `reset_dyna()`, `from_scratch`)
    or the last fit and its optimiser state continued (`warm_start`, MBPO: on copies, so that a fit cut short by
    a stop request leaves them as they were). Returns the model, its optimiser state and the fit's figures."""
    t0 = time.perf_counter()
    if model is None or cfg.train.model_refit == "from_scratch":
        model, opt_state = build_model(cfg.model.kind, data.obs_dim, data.act_dim, cfg.model), None
    else:
        model, opt_state = copy.deepcopy(model), copy.deepcopy(opt_state)
    res = fit(model, data, cfg.model, device, seed, opt_state=opt_state, check=check)
    keep = res.opt_state if cfg.train.model_refit == "warm_start" else None
    return model.eval(), keep, {"model_holdout_mse": float(np.mean(res.holdout_mse)), "model_epochs": res.epochs,
                                "model_fit_s": time.perf_counter() - t0, "model_validation": res.validation}


class LearnedDynamics:
    """The model side of a model-based online run: the model re-fitted on D_env (and its optimiser state, which
    `warm_start` keeps across fits), and the model buffer D_model, sized for model_retain_rollouts roll-outs."""

    def __init__(self, cfg: Config, obs_dim: int, act_dim: int, device: torch.device):
        self.cfg, self.device, self.dims = cfg, device, (obs_dim, act_dim)
        self.ro = RolloutSettings.of(cfg)
        self.term = termination_fn(spec_for(cfg.data))
        self.model, self.opt_state = None, None
        self.buffer = RingBuffer(1, obs_dim, act_dim, device)  # empty until the first roll-out
        self.last_fit: dict = {}
        self.last_rollout: dict = {}

    def refit(self, data: Transitions, seed: int, check=None) -> None:
        self.model, self.opt_state, self.last_fit = fit_dynamics(self.cfg, self.model, self.opt_state, data,
                                                                 self.device, seed, check)

    def snapshot(self) -> tuple:
        """What a re-fit and its roll-out replace (a fit never changes the model or optimiser state it starts
        from: fit_dynamics continues copies), to put back when a stop request cuts them short."""
        return self.model, self.opt_state, self.buffer, self.last_fit, self.last_rollout

    def restore_to(self, snap: tuple):
        def restore() -> None:
            self.model, self.opt_state, self.buffer, self.last_fit, self.last_rollout = snap

        return restore

    def rollout(self, agent, real: RealData, data: Transitions, length: int, gen: torch.Generator,
                check=None) -> None:
        """Roll-outs of `length` steps from real histories of m-1 steps (`data`: D_env as the model was fitted
        on it) into the resized model buffer."""
        t = self.cfg.train
        self.buffer = resize_model_buffer(self.buffer, self.ro.batch_size * length * t.model_retain_rollouts)
        starts = torch.as_tensor(rollout_starts(data, self.model.context), device=self.device)
        if len(starts):
            self.last_rollout = rollout_into_buffer(self.model, agent, real.buffer.data, starts, self.buffer,
                                                    self.ro.with_horizon(length), self.term, gen, check)
            self.last_rollout["rollout_length"] = length

    def diagnostics(self) -> dict:
        """What a collapsing model-based run is read by, after a re-fit and its roll-out: the fit's hold-out error,
        the imagined rewards (raw and penalised), the share of imagined rows that terminated, the uncertainty."""
        f, r = self.last_fit, self.last_rollout
        return {"model_holdout_mse": f.get("model_holdout_mse", ""), "model_epochs": f.get("model_epochs", ""),
                "model_fit_s": round(f.get("model_fit_s", 0.0), 3), "rollout_length": r.get("rollout_length", ""),
                "imagined_reward_mean": r.get("rollout_reward_mean", ""),
                "imagined_done_frac": r.get("rollout_done_frac", ""), "uncertainty_mean": r.get("uncertainty_mean", ""),
                "penalty_mean": r.get("penalty_mean", ""), "model_buffer": self.buffer.size}

    def state_dict(self) -> dict:
        keep = self.cfg.train.checkpoint_buffer and self.buffer.size > 0
        return {"model": None if self.model is None else {k: v.detach().cpu() for k, v in
                                                          self.model.state_dict().items()},
                "model_opt": self.opt_state, "buffer": self.buffer.state_dict() if keep else {},
                "capacity": self.buffer.capacity, "last_fit": self.last_fit, "last_rollout": self.last_rollout}

    def load_state_dict(self, sd: dict) -> None:
        if sd["model"] is not None:
            self.model = build_model(self.cfg.model.kind, *self.dims, self.cfg.model).to(self.device)
            self.model.load_state_dict(sd["model"])
            self.model.eval()
        self.opt_state, self.last_fit, self.last_rollout = sd["model_opt"], sd["last_fit"], sd["last_rollout"]
        if sd["buffer"]:
            self.buffer = RingBuffer(int(sd["capacity"]), *self.dims, self.device)
            self.buffer.load_state_dict(sd["buffer"])


def train_online(cfg: Config, run: RunDir, device: torch.device, data=None, model=None,
                 hooks: Hooks | None = None) -> dict:
    """Algorithm 2 for the registered algorithm cfg.train.algo (model-free when it has no model)."""
    t, spec = cfg.train, spec_for(cfg.data)
    total, warmup = t.total_steps, t.warmup_steps  # learning steps; random steps before them, not counted
    sim = Simulator(spec, cfg.run.seed, cfg.eval.max_episode_steps)
    agent = _make_agent(cfg, spec, sim, device)
    source, kept = _fine_tuning_source(cfg, spec, data)  # train-on --init-from RUN: the run and the data it gives
    real = RealData(warmup + total + (len(kept) if kept is not None else 0), spec.obs_dim, spec.act_dim, device)
    dyn = LearnedDynamics(cfg, spec.obs_dim, spec.act_dim, device)  # the model and D_model
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.run.seed)
    model_based = _model_based(cfg)
    parts = {"agent": agent, "real": real, "env": sim, **({"dynamics": dyn} if model_based else {})}
    tr = TrainingRun(cfg, run, OnlineState(), parts, gen, total, "env_steps", hooks, agent)
    # metrics rows are kept up to the checkpoint's step (a fine-tuned run's step-0 row once it has started)
    state = tr.start(lambda s: max(s.env_steps - warmup, 0) if s.carried else s.env_steps - warmup)
    refits = run.file("diagnostics", "refits.csv")  # a row per re-fit; rows after the checkpoint are redone
    truncate_csv_after(refits, "env_steps", state.env_steps - warmup - 1)
    if state.env_steps == 0:
        sim.reset()
    if source is not None and not state.carried:
        _start_from(source, cfg, tr, agent, dyn, real, kept, state, device)
    clock = PhaseClock(state.phase_s)
    try:
        with tr.running() as stop_requested:
            while state.env_steps < warmup + total:
                stop_requested()  # a Ctrl-C or SIGTERM during the last env step takes effect here
                it = state.env_steps - warmup  # the learning step (negative during warm-up)
                if model_based and it >= 0 and it % t.model_update_interval == 0:
                    # Algorithm 2: train the model on D_env; roll it out from real histories of m-1 steps with
                    # random backtracking (Algorithm 1), the length of the schedule at `it`, into D_model
                    # (a stop request ends the fit or roll-out at once; the resumed run redoes both from here)
                    data = real.transitions()
                    with tr.undone_if_stopped(dyn.restore_to(dyn.snapshot())):
                        dyn.refit(data, cfg.run.seed + state.env_steps, stop_requested)
                        clock.lap("fit")
                        dyn.rollout(agent, real, data, rollout_length(t.rollout_schedule, it), gen, stop_requested)
                    append_csv(refits, {"env_steps": it, **dyn.diagnostics()})
                    clock.lap("rollout")
                # Algorithm 2: act in the environment (uniformly at random during warm-up), add to D_env
                obs = sim.obs
                a = _act(agent, obs, it < 0 and source is None, spec.act_dim, gen, device)
                nxt, r, terminal, truncated = sim.step(a)
                real.add(obs, a, r, nxt, terminal, truncated and not terminal)
                state.env_steps += 1
                clock.lap("env")
                if it < 0:
                    continue
                for _ in range(t.utd):  # Algorithm 2: G policy updates on D_env ∪ D_model
                    _sac_update(cfg, agent, real, dyn.buffer, state, tr, gen)
                clock.lap("sac")
                if (it + 1) % cfg.eval.every == 0 or it + 1 == total:
                    _evaluate_and_checkpoint(cfg, tr, agent, sim, dyn, state, it + 1, device)
                    clock.lap("eval")
    finally:
        sim.close()
    write_policy(cfg, run, agent.actor, spec.obs_dim, spec.act_dim)
    write_last_rollout(run.file("diagnostics", "last_rollout.npz"), dyn.last_rollout)
    return _summary(cfg, run, agent, dyn, state, source)


def _make_agent(cfg: Config, spec, sim: Simulator, device: torch.device):
    t = cfg.train
    return make_agent(spec.obs_dim, spec.act_dim, cfg.agent, device, action_scale=action_scale(sim.env.action_space),
                      total_actor_updates=math.ceil(t.total_steps * t.utd / cfg.agent.actor_update_every)
                      * cfg.agent.actor_steps)


def _fine_tuning_source(cfg: Config, spec, data: Transitions | None):
    """The run a fine-tuned run starts from (none without --init-from) and the dataset that starts its D_env
    (the source's, which the training stage loaded, unless train.init_dataset is drop)."""
    if not cfg.train.init_from:
        return None, None
    source = fine_tune.open_source(cfg.train.init_from)
    fine_tune.check_compatible(source, cfg, spec)
    return source, data if cfg.train.init_dataset == "keep" else None


def _act(agent, obs: np.ndarray, random: bool, act_dim: int, gen: torch.Generator, device: torch.device):
    """Uniformly random during warm-up (a fine-tuned run's warm-up acts with the policy it carried over), else
    the stochastic policy."""
    if random:
        return _random_action(act_dim, gen, device)
    return agent.act(torch.as_tensor(obs, device=device)[None])[0].cpu().numpy()


def _start_from(source, cfg: Config, tr: TrainingRun, agent, dyn: LearnedDynamics, real: RealData,
                kept: Transitions | None, state: OnlineState, device: torch.device) -> None:
    """A fine-tuned run's start (algos/fine_tune.py): the source's policy, critics and temperature into the agent,
    its model into the model side, its dataset into D_env; then the carried policy evaluated as the source's last
    evaluation was (the step-0 metrics row) and a checkpoint."""
    spec = spec_for(cfg.data)
    state.carried = fine_tune.carry_agent(source, agent)
    if _model_based(cfg) and source.model_file is not None:
        dyn.model = fine_tune.carry_model(source, spec, device)
        state.carried.append("model")
    if kept is not None:
        real.extend(kept)
        state.carried.append(f"dataset ({len(kept)} transitions)")
    first = fine_tune.first_evaluation(source, lambda o: agent.act(o, deterministic=True), spec,
                                       run_reference(cfg, tr.run), device)
    _evaluate_and_checkpoint(cfg, tr, agent, None, dyn, state, 0, device, evaluation=first)


def _model_based(cfg: Config) -> bool:
    return registry.algorithm(cfg.train.algo).model is not None


def _random_action(act_dim: int, gen: torch.Generator, device: torch.device) -> np.ndarray:
    return (torch.rand(act_dim, generator=gen, device=device) * 2 - 1).cpu().numpy()


def _sac_update(cfg: Config, agent, real: RealData, model_buf: RingBuffer, state: OnlineState, tr: TrainingRun,
                gen: torch.Generator) -> None:
    """One SAC update on a batch of int(batch · real_ratio) real rows and the rest from the model buffer."""
    batch = mixed_batch(real.buffer.store.table[: real.n], model_buf, real.buffer.store, cfg.agent.batch_size,
                        cfg.train.real_ratio, gen)
    tr.add(agent.update(*(batch[k] for k in KEYS), update_actor=(state.updates % cfg.agent.actor_update_every == 0)))
    state.updates += 1


def _evaluate_and_checkpoint(cfg: Config, tr: TrainingRun, agent, sim: Simulator | None, dyn: LearnedDynamics,
                             state: OnlineState, step: int, device: torch.device,
                             evaluation: dict | None = None) -> None:
    """Losses (divergence guard), deterministic episodes on a separate env, a metrics.csv row, a checkpoint.
    `evaluation`: one made elsewhere (a fine-tuned run's step 0, before any update: no losses yet)."""
    losses = tr.losses(f"env step {step}") if state.updates else dict.fromkeys(LOSSES, "")
    ups = tr.rate()  # updates/s since the last evaluation (this evaluation not included)
    row = {"env_steps": step, "updates": state.updates,
           **(evaluation or evaluate(cfg, tr.run, lambda o: agent.act(o, deterministic=True), step, device)),
           **losses, "alpha": float(agent.alpha),
           "train_return": float(np.mean(sim.returns)) if sim is not None and sim.returns else "",
           "model_holdout_mse": dyn.last_fit.get("model_holdout_mse", ""),
           "model_fit_s": dyn.last_fit.get("model_fit_s", ""),
           "rollout_length": dyn.last_rollout.get("rollout_length", ""),
           "imagined_reward_mean": dyn.last_rollout.get("rollout_reward_mean", ""),
           "imagined_done_frac": dyn.last_rollout.get("rollout_done_frac", ""),
           "model_buffer": dyn.buffer.size, "updates_per_s": ups,
           **{f"{k}_s": round(v, 3) for k, v in state.phase_s.items()},
           "env_steps_with_warmup": state.env_steps}
    tr.log(step, row, checkpoint=True)
    tr.restart_rate()


def _summary(cfg: Config, run: RunDir, agent, dyn: LearnedDynamics, state: OnlineState,
             source: fine_tune.Source | None = None) -> dict:
    t, model_based = cfg.train, _model_based(cfg)
    spec = registry.algorithm(cfg.train.algo, "online")
    rows = read_rows(run.file("metrics.csv"))
    return finish(cfg, run, cfg.model.kind if model_based else None, {
        "setting": "online", "env_steps": state.env_steps - t.warmup_steps, "warmup_steps": t.warmup_steps,
        "gradient_steps": state.updates, "utd": t.utd,
        "m": getattr(dyn.model, "m", None) if model_based else None,
        "model_refit": t.model_refit if model_based else None, "agent_backend": agent.backend,
        "entropy_space": cfg.agent.entropy_space, "target_entropy": agent.target_entropy,
        "dropout_at_inference": dyn.ro.dropout if model_based else None,
        "model_validation": dyn.last_fit.get("model_validation") if model_based else None,
        "model_k_sampling": cfg.model.k_sampling if model_based else None,
        "log_std_bound": cfg.agent.log_std_bound,
        "return_curve": [(int(r["env_steps"]), float(r["return_mean"])) for r in rows],
        **({"init_from": fine_tune.record(source, state.carried, cfg)} if source is not None else {}),
        **({"published_setting": spec.published_for(cfg.data.task)} if spec.published_for else {}),
    })

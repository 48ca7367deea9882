"""ADMPO-ON (Algorithm 2, the MBPO framework), MBPO and model-free SAC: one loop over environment steps.

As the authors' `runner/online_trainer.py` (and MBPO's code): train.warmup_steps random env steps come
first and are not counted; then for each learning step it = 0 .. total_steps-1:

    it % model_update_interval == 0:  fit_dynamics (all real data so far; from scratch as the authors, or
                                      warm-started as MBPO) and rollout_model_and_fill_buffer from real
                                      histories of m-1 steps, the roll-out length of the schedule at `it`
    every step:                       one env step with the stochastic policy, then utd SAC updates on
                                      real ∪ model data (int(batch · real_ratio) real rows)
    (it + 1) % eval.every == 0:       deterministic episodes on a separate env, a metrics.csv row (its
                                      env_steps column is it + 1: the step axis starts after warm-up), a
                                      checkpoint

SAC (no model) skips the model steps. The run is resumable to the same result: a checkpoint holds the
real buffer, the model, the agent and its optimisers, every random stream, and the simulator's full
integration state (episodes are reset with seeds derived from their index, so none is needed beyond that).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import mujoco
import numpy as np
import torch

from ..agents import make_agent
from ..algorithms import mbpo_published
from ..config import Config, fingerprint
from ..data.dataset import Transitions, rollout_starts
from ..data.scores import reference_for
from ..envs.registry import EnvSpec, make_env, spec_for
from ..envs.termination import termination_fn
from ..evaluate.policy import evaluate, score_row
from ..models.factory import build_model
from ..models.fit import fit
from ..rundir import RunDir, append_csv, atomic_torch_save, truncate_csv_after
from ..runtime import interrupts_at_step_ends
from .buffers import KEYS, RingBuffer, sac_batch
from .loop_guards import add_losses, ensure_finite, loss_sums, mean_losses, read_checkpoint
from .offline import Hooks, RolloutSettings, rollout_model_and_fill_buffer
from .policy_files import save_policy
from .rng import rng_state, set_rng_state
from .summary import read_rows, write_summary

CKPT = ("checkpoints", "online.pt")
PHASES = ("env", "fit", "rollout", "sac", "eval")
_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


def rollout_length(schedule: tuple[float, ...], env_steps: int) -> int:
    """Table 4's schedule [x, y, a, b]: min(max(x + (t - a) / (b - a) (y - x), x), y), as an integer."""
    x, y, a, b = schedule
    frac = (env_steps - a) / (b - a) if b > a else 1.0
    return int(min(max(x + frac * (y - x), x), y))


@dataclass
class OnlineState:
    """The counters a checkpoint keeps besides the buffers, the networks and the random streams."""

    env_steps: int = 0
    episode: int = 0  # index of the running episode: its reset seed is derived from it
    episode_return: float = 0.0
    updates: int = 0
    acc: dict = field(default_factory=loss_sums)
    last_fit: dict = field(default_factory=dict)
    last_rollout: dict = field(default_factory=dict)
    train_returns: list = field(default_factory=list)
    wall_s: float = 0.0
    # seconds spent in each phase so far (metrics.csv has them; the benchmark reads them)
    phase_s: dict = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))


class RealData:
    """Every real transition so far, as numpy arrays (for fitting the model on windows that respect episode
    ends) and as a ring buffer on the training device (for SAC batches; it never wraps)."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device):
        self.n = 0
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.act = np.zeros((capacity, act_dim), np.float32)
        self.rew = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.terminal = np.zeros(capacity, bool)
        self.timeout = np.zeros(capacity, bool)
        self.buffer = RingBuffer(capacity, obs_dim, act_dim, device)

    def add(self, obs, act, rew, next_obs, terminal: bool, timeout: bool) -> None:
        i = self.n
        self.obs[i], self.act[i], self.rew[i], self.next_obs[i] = obs, act, rew, next_obs
        self.terminal[i], self.timeout[i] = terminal, timeout
        self.n += 1
        dev = self.buffer.device
        self.buffer.add({"obs": torch.as_tensor(obs, device=dev)[None], "act": torch.as_tensor(act, device=dev)[None],
                         "rew": torch.tensor([rew], dtype=torch.float32, device=dev),
                         "next_obs": torch.as_tensor(next_obs, device=dev)[None],
                         "done": torch.tensor([float(terminal)], device=dev)})

    def transitions(self) -> Transitions:
        n = self.n
        return Transitions(self.obs[:n], self.act[:n], self.rew[:n], self.next_obs[:n], self.terminal[:n],
                           self.timeout[:n], source="online")

    def state_dict(self) -> dict:
        n = self.n
        return {"n": n, **{k: torch.from_numpy(getattr(self, k)[:n].copy()) for k in
                           ("obs", "act", "rew", "next_obs", "terminal", "timeout")}}

    def load_state_dict(self, sd: dict) -> None:
        n = self.n = int(sd["n"])
        for k in ("obs", "act", "rew", "next_obs", "terminal", "timeout"):
            getattr(self, k)[:n] = sd[k].numpy()
        dev = self.buffer.device
        self.buffer.ptr = self.buffer.size = 0
        rows = {k: torch.as_tensor(getattr(self, k)[:n], device=dev) for k in ("obs", "act", "rew", "next_obs")}
        self.buffer.add({**rows, "done": torch.as_tensor(self.terminal[:n], device=dev).float()})


class Simulator:
    """The training environment, its episodes reset with seeds derived from the run's seed and the episode
    index, and its full MuJoCo integration state saved and restored with a checkpoint. Actions are the
    agent's in [-1, 1], scaled to the env's range here (Humanoid: +-0.4)."""

    def __init__(self, spec: EnvSpec, seed: int, max_steps: int):
        self.env = make_env(spec, max_steps)
        self.seed = seed
        self.scale = self.env.action_space.high.astype(np.float32)
        self.obs: np.ndarray | None = None

    def reset(self, episode: int) -> np.ndarray:
        self.obs = self.env.reset(seed=self.seed * 1_000_003 + episode)[0].astype(np.float32)
        return self.obs

    def step(self, action: np.ndarray):
        nxt, r, term, trunc, _ = self.env.step(action * self.scale)
        self.obs = nxt.astype(np.float32)
        return self.obs, float(r), bool(term), bool(trunc)

    def state_dict(self) -> dict:
        u = self.env.unwrapped
        state = np.empty(mujoco.mj_stateSize(u.model, _STATE))
        mujoco.mj_getState(u.model, u.data, state, _STATE)
        return {"mj_state": torch.from_numpy(state), "elapsed": int(self.env._elapsed_steps),
                "obs": torch.from_numpy(self.obs.copy())}

    def load_state_dict(self, sd: dict, episode: int) -> None:
        self.reset(episode)
        u = self.env.unwrapped
        mujoco.mj_setState(u.model, u.data, sd["mj_state"].numpy(), _STATE)
        self.env._elapsed_steps = int(sd["elapsed"])
        self.obs = sd["obs"].numpy().copy()

    def close(self) -> None:
        self.env.close()


def fit_dynamics(cfg: Config, model, opt_state: dict | None, data: Transitions, device: torch.device, seed: int):
    """Fit the model on all real data so far: a fresh one (the ADMPO authors' `reset_dyna()`, `from_scratch`)
    or the last fit and its optimiser state continued (`warm_start`, MBPO). Returns the model, its optimiser
    state and the fit's figures."""
    t0 = time.perf_counter()
    if model is None or cfg.train.model_refit == "from_scratch":
        model, opt_state = build_model(cfg.model.kind, data.obs_dim, data.act_dim, cfg.model), None
    res = fit(model, data, cfg.model, device, seed, opt_state=opt_state)
    keep = res.opt_state if cfg.train.model_refit == "warm_start" else None
    return model.eval(), keep, {"model_holdout_mse": float(np.mean(res.holdout_mse)), "model_epochs": res.epochs,
                                "model_fit_s": time.perf_counter() - t0}


def resize_model_buffer(buf: RingBuffer | None, capacity: int, obs_dim: int, act_dim: int,
                        device: torch.device) -> RingBuffer:
    """MBPO keeps a fixed number of roll-outs: the capacity follows the roll-out length. The newest rows of
    the old buffer move over (in their order of arrival)."""
    if buf is not None and buf.capacity == capacity:
        return buf
    new = RingBuffer(capacity, obs_dim, act_dim, device)
    if buf is not None and buf.size:
        order = (buf.ptr - buf.size + torch.arange(buf.size, device=device)) % buf.capacity
        rows = buf.store.table[order][-capacity:]
        new.add(buf.store.split(rows))
    return new


def train_online(cfg: Config, run: RunDir, device: torch.device, hooks: Hooks | None = None) -> dict:
    hooks = hooks or Hooks()
    algo, t = cfg.train.algo, cfg.train
    model_based = algo != "sac"
    spec = spec_for(cfg.data)
    ref = reference_for(cfg.data.task, cfg.data.env)
    term = termination_fn(spec)
    ro = RolloutSettings.of(cfg)
    config_fp = fingerprint(cfg)
    total, warmup = t.total_steps, t.warmup_steps  # learning steps; random steps before them, not counted
    sim = Simulator(spec, cfg.run.seed, cfg.eval.max_episode_steps)
    agent = make_agent(spec.obs_dim, spec.act_dim, cfg.agent, device,
                       total_actor_updates=math.ceil(total * t.utd / cfg.agent.actor_update_every)
                       * cfg.agent.actor_steps, action_scale=sim.scale)
    real = RealData(warmup + total, spec.obs_dim, spec.act_dim, device)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.run.seed)
    model, model_opt, model_buf = None, None, None
    state = OnlineState()

    ckpt_path, metrics = run.file(*CKPT), run.file("metrics.csv")
    if ckpt_path.exists():
        ck = read_checkpoint(ckpt_path, config_fp)
        agent.load_state_dict(ck["agent"])
        real.load_state_dict(ck["real"])
        if ck.get("model") is not None:
            model = build_model(cfg.model.kind, spec.obs_dim, spec.act_dim, cfg.model).to(device)
            model.load_state_dict(ck["model"])
            model.eval()
            model_opt = ck.get("model_opt")
        if ck.get("model_buffer"):
            model_buf = RingBuffer(int(ck["model_buffer_capacity"]), spec.obs_dim, spec.act_dim, device)
            model_buf.load_state_dict(ck["model_buffer"])
        s = ck["state"]
        state = OnlineState(**{k: s[k] for k in OnlineState.__dataclass_fields__})
        sim.load_state_dict(ck["env"], state.episode)
        set_rng_state(ck["rng"], gen)
        truncate_csv_after(metrics, "env_steps", state.env_steps - warmup)
    else:
        if metrics.exists():
            metrics.unlink()
        sim.reset(state.episode)
    if model_buf is None:
        model_buf = RingBuffer(1, spec.obs_dim, spec.act_dim, device)  # empty until the first roll-out
    last_good = copy.deepcopy(agent.state_dict())

    if hooks.on_start:
        hooks.on_start(max(state.env_steps - warmup, 0), total)
    t_start = t_eval = time.perf_counter()
    wall0, updates_at = state.wall_s, state.updates

    def checkpoint(path=ckpt_path, agent_state=None) -> None:
        state.wall_s = wall0 + time.perf_counter() - t_start
        keep_buf = t.checkpoint_buffer and model_buf.size > 0
        atomic_torch_save(path, {
            "fingerprint": config_fp, "state": {k: getattr(state, k) for k in OnlineState.__dataclass_fields__},
            "agent": agent_state or agent.state_dict(), "real": real.state_dict(),
            "model": None if model is None else {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "model_opt": model_opt,
            "model_buffer": model_buf.state_dict() if keep_buf else {}, "model_buffer_capacity": model_buf.capacity,
            "env": sim.state_dict(), "rng": rng_state(gen),
        })

    with interrupts_at_step_ends() as stop_requested:
        try:
            clock = time.perf_counter()

            def lap(phase: str) -> None:
                nonlocal clock
                now = time.perf_counter()
                state.phase_s[phase] += now - clock
                clock = now

            while state.env_steps < warmup + total:
                stop_requested()  # a Ctrl-C or SIGTERM during the last env step takes effect here
                it = state.env_steps - warmup  # the learning step (negative during warm-up)
                # ---- Algorithm 2: refit the model and roll it out every model_update_interval learning steps
                if model_based and it >= 0 and it % t.model_update_interval == 0:
                    data = real.transitions()  # all real data so far, episode ends marked
                    model, model_opt, state.last_fit = fit_dynamics(cfg, model, model_opt, data, device,
                                                                    cfg.run.seed + state.env_steps)
                    lap("fit")
                    length = rollout_length(t.rollout_schedule, it)
                    model_buf = resize_model_buffer(model_buf, ro.batch_size * length * t.model_retain_rollouts,
                                                    spec.obs_dim, spec.act_dim, device)
                    starts = torch.as_tensor(rollout_starts(data, model.context), device=device)
                    if len(starts):
                        with torch.no_grad():
                            state.last_rollout = rollout_model_and_fill_buffer(
                                model, agent, real.buffer.data, starts, model_buf,
                                RolloutSettings(length, ro.beta, ro.uncertainty, ro.k_mode, ro.chunk_size,
                                                ro.batch_size, ro.dropout), term, gen)
                        state.last_rollout["rollout_length"] = length
                    lap("rollout")
                # ---- act in the real environment (uniformly random during warm-up)
                obs = sim.obs
                if it < 0:
                    a = (torch.rand(spec.act_dim, generator=gen, device=device) * 2 - 1).cpu().numpy()
                else:
                    a = agent.act(torch.as_tensor(obs, device=device)[None])[0].cpu().numpy()
                nxt, r, terminal, truncated = sim.step(a)
                real.add(obs, a, r, nxt, terminal, truncated and not terminal)
                state.env_steps += 1
                state.episode_return += r
                if terminal or truncated:
                    state.train_returns = (state.train_returns + [state.episode_return])[-10:]
                    state.episode += 1
                    state.episode_return = 0.0
                    sim.reset(state.episode)
                lap("env")
                if it < 0:
                    continue
                # ---- G SAC updates per env step on real ∪ model data
                for _ in range(t.utd):
                    batch = sac_batch(real.buffer.store.table[: real.n], model_buf, real.buffer.store,
                                      cfg.agent.batch_size, t.real_ratio, gen)
                    out = agent.update(*(batch[k] for k in KEYS),
                                       update_actor=(state.updates % cfg.agent.actor_update_every == 0))
                    add_losses(state.acc, out)
                    state.updates += 1
                lap("sac")
                step = it + 1  # learning env steps done: the logged step axis
                if step % cfg.eval.every and step != total:
                    continue
                # ---- evaluation, divergence guard, checkpoint
                losses = mean_losses(state.acc)
                ensure_finite(losses, f"env step {step}", run.file("checkpoints", "last_good.pt"),
                              lambda p, good=last_good: checkpoint(p, good))
                last_good = copy.deepcopy(agent.state_dict())
                now = time.perf_counter()
                ups = (state.updates - updates_at) / max(now - t_eval, 1e-9)
                state.acc = loss_sums()
                rets = evaluate(lambda o: agent.act(o, deterministic=True), spec, cfg.eval.episodes,
                                seed=cfg.run.seed * 100_003 + step, max_steps=cfg.eval.max_episode_steps, device=device)
                row = {"env_steps": step, "updates": state.updates, **score_row(rets, ref), **losses,
                       "alpha": float(agent.alpha),
                       "train_return": float(np.mean(state.train_returns)) if state.train_returns else "",
                       "model_holdout_mse": state.last_fit.get("model_holdout_mse", ""),
                       "model_fit_s": state.last_fit.get("model_fit_s", ""),
                       "rollout_length": state.last_rollout.get("rollout_length", ""),
                       "model_buffer": model_buf.size, "updates_per_s": ups,
                       **{f"{k}_s": round(v, 3) for k, v in state.phase_s.items()},
                       "env_steps_with_warmup": state.env_steps,
                       "wall_s": round(wall0 + now - t_start, 2), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
                append_csv(metrics, row)
                lap("eval")
                checkpoint()
                if hooks.on_progress:
                    hooks.on_progress(step, row)
                t_eval, updates_at = time.perf_counter(), state.updates
                clock = t_eval
        except KeyboardInterrupt:
            checkpoint()
            raise
        finally:
            sim.close()
    save_policy(run, agent.actor, spec.obs_dim, spec.act_dim, cfg.agent.hidden, cfg.data.task, algo)
    rows = read_rows(metrics)
    return write_summary(run, cfg, algo, cfg.model.kind if model_based else None, rows, ref, {
        "setting": "online", "env_steps": state.env_steps - warmup, "warmup_steps": warmup,
        "gradient_steps": state.updates, "utd": t.utd,
        "m": cfg.model.m if model_based and cfg.model.kind == "adm" else None,
        "model_refit": t.model_refit if model_based else None, "agent_backend": agent.backend,
        "entropy_space": cfg.agent.entropy_space, "target_entropy": agent.target_entropy,
        "dropout_at_inference": ro.dropout if model_based else None,
        "return_curve": [(int(r["env_steps"]), float(r["return_mean"])) for r in rows],
        **({"published_setting": mbpo_published(cfg.data.env)} if algo == "mbpo" else {}),
    })


__all__ = ["train_online", "rollout_length", "Hooks"]

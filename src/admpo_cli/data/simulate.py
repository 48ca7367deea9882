"""Transitions from a gymnasium MuJoCo environment (random or a given policy), written in the D4RL or NeoRL
layout with the simulator state (infos/qpos, infos/qvel). The `admpo collect` command is stages/collect.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..envs.specs import EnvSpec, env_action, make_env
from .dataset import Transitions

Policy = Callable[[np.ndarray], np.ndarray]  # (obs_dim,) -> (act_dim,)


def collect(
    spec: EnvSpec,
    steps: int,
    policy: Policy | None = None,
    seed: int = 0,
    max_episode_steps: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> tuple[Transitions, np.ndarray, np.ndarray]:
    """Run `policy` (uniform random when None; a policy acts in [-1, 1], scaled to the env's range) for `steps`
    transitions.

    Returns the transitions and the simulator state (qpos, qvel) before each step, as D4RL stores them.
    Episodes cut by the time limit are marked as timeouts; the last, unfinished one too.
    """
    env = make_env(spec, max_episode_steps)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    obs_dim, act_dim = spec.obs_dim, spec.act_dim
    O = np.empty((steps, obs_dim), np.float32)
    N = np.empty((steps, obs_dim), np.float32)
    A = np.empty((steps, act_dim), np.float32)
    R = np.empty(steps, np.float32)
    T = np.zeros(steps, bool)
    U = np.zeros(steps, bool)
    u = env.unwrapped
    qpos = np.empty((steps, u.model.nq), np.float32)
    qvel = np.empty((steps, u.model.nv), np.float32)
    low, high = env.action_space.low, env.action_space.high
    obs, _ = env.reset(seed=int(rng.integers(2**31)))
    for i in range(steps):
        qpos[i], qvel[i] = u.data.qpos, u.data.qvel
        a = rng.uniform(low, high).astype(np.float32) if policy is None else \
            env_action(np.clip(policy(obs), -1.0, 1.0), env.action_space).astype(np.float32)
        nxt, r, term, trunc, _ = env.step(a)
        O[i], A[i], R[i], N[i], T[i], U[i] = obs, a, r, nxt, term, trunc and not term
        if term or trunc:
            obs, _ = env.reset()
        else:
            obs = nxt
        if progress is not None and (i + 1) % 1000 == 0:
            progress(1000)
    U[-1] = U[-1] or not T[-1]
    env.close()
    return Transitions(O, A, R, N, T, U, source=f"collected:{spec.gym_id}"), qpos, qvel


def write_dataset(path: Path, data: Transitions, fmt: str, qpos=None, qvel=None, metadata=None) -> None:
    """Write `data` in the registered format `fmt` (one that can write: d4rl, neorl, a plugin's)."""
    from .. import registry
    from ..errors import UserError

    spec = registry.dataset_format(fmt, "--format")
    if spec.write is None:
        writers = [n for n in registry.FORMATS.names() if _writes(n)]
        raise UserError(f"--format {fmt}: this format cannot be written; formats that can: {', '.join(writers)}")
    spec.write(path, data, qpos, qvel, metadata)


def _writes(name: str) -> bool:
    from .. import registry
    from ..errors import UserError

    try:
        return registry.dataset_format(name).write is not None
    except UserError:
        return False

"""One episode of a policy in the simulator, the loop every single-env caller runs (eval-policy and its video,
export's recorded observations): actions in [-1, 1] mapped to the env's units in one place (env_action)."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from .specs import env_action


def run_episode(env: gym.Env, act: Callable[[np.ndarray], np.ndarray], seed: int,
                on_obs: Callable[[np.ndarray], None] | None = None,
                stop: Callable[[], bool] | None = None) -> tuple[float, int]:
    """Reset with `seed`, then step act(obs) (an action in [-1, 1]) until the episode terminates or is truncated
    (or `stop()` says so before a step). on_obs hears every observation: the first and each step's.
    Returns (return, steps)."""
    obs, _ = env.reset(seed=seed)
    if on_obs is not None:
        on_obs(obs)
    total, n = 0.0, 0
    while stop is None or not stop():
        obs, r, term, trunc, _ = env.step(env_action(act(obs), env.action_space))
        total, n = total + float(r), n + 1
        if on_obs is not None:
            on_obs(obs)
        if term or trunc:
            break
    return total, n

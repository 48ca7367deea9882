"""The simulator as ground truth: set the MuJoCo state from an observation and step it."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .specs import EnvSpec, make_env


class SimulatorOracle:
    """True next observation and reward for (observation, action) pairs of Hopper/Walker2d/HalfCheetah.

    With the D4RL layout the root x position is not observed; it does not affect the dynamics or the
    reward (which uses the x displacement), so it is set to 0.
    """

    def __init__(self, spec: EnvSpec):
        if spec.env not in ("hopper", "walker2d", "halfcheetah"):
            raise UserError(f"the simulator oracle supports hopper, walker2d, halfcheetah, not {spec.env}")
        self.spec = spec
        self.env = make_env(spec).unwrapped
        self.env.reset(seed=0)
        self.nq = self.env.model.nq
        self.nv = self.env.model.nv

    def state_from_obs(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs = np.asarray(obs, dtype=np.float64)
        if self.spec.layout == "neorl":
            return obs[: self.nq].copy(), obs[self.nq : self.nq + self.nv].copy()
        qpos = np.concatenate([[0.0], obs[: self.nq - 1]])
        return qpos, obs[self.nq - 1 : self.nq - 1 + self.nv].copy()

    def step(self, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of (obs, action) -> (next_obs, reward, terminated). A loop over rows: MuJoCo is serial."""
        obs = np.atleast_2d(obs)
        actions = np.atleast_2d(actions)
        n = len(obs)
        next_obs = np.empty((n, self.spec.obs_dim), dtype=np.float32)
        rewards = np.empty(n, dtype=np.float32)
        terms = np.empty(n, dtype=bool)
        for i in range(n):
            qpos, qvel = self.state_from_obs(obs[i])
            self.env.set_state(qpos, qvel)
            o, r, term, _, _ = self.env.step(actions[i])
            next_obs[i], rewards[i], terms[i] = o, r, term
        return next_obs, rewards, terms

    def close(self) -> None:
        self.env.close()

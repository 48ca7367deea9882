"""A fitted dynamics model as a gymnasium environment: Algorithm 1 one step at a time.

`ModelEnv` starts each episode from a real start window of a dataset (the m-1 real steps before a start
state, for ADM's backtracking; one-step models need none), and each step asks the model's stepper for all
its candidate predictions of the next step (ADM: every k; the ensemble: every member), draws one (ADM: k
uniform in [1, m], random backtracking; the ensemble: an elite), samples (s', r) from its Gaussian, and
returns r - beta * U with U the model's uncertainty over the candidates (Eq. 4, the authors' formula, MOPO's
max-aleatoric). The task's termination function ends an episode; `max_episode_steps` truncates it. The
stepper keeps the last m-1 steps of history itself (its cached windows).

It is the imagined-step engine (models/imagined.py) at batch 1 with k_mode="row": for the same generator seed,
start window and actions its transitions are `models.rollout.rollout`'s (tests/test_model_env.py holds them
equal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ..data.dataset import Transitions, rollout_starts, start_windows
from ..envs.specs import EnvSpec
from ..envs.termination import never, termination_fn
from .base import DynamicsModel
from .imagined import ImaginedBatch


class ModelEnv(gym.Env):
    """gymnasium.Env over a fitted model. Actions are the policy's in [-1, 1] (the datasets' units for the
    MuJoCo tasks admpo reads); observations are the model's (float32).

    model: a fitted DynamicsModel; data: the dataset whose start windows begin episodes; spec: the task (its
    termination function) or `termination` directly; beta and uncertainty: the reward penalty r - beta * U
    (uncertainty "none" or beta 0: the model's reward); sample: draw (s', r) from the Gaussian (else its mean);
    dropout: keep the model's dropout on while predicting (as the authors' ADM roll-outs)."""

    metadata = {"render_modes": []}

    def __init__(self, model: DynamicsModel, data: Transitions, spec: EnvSpec | None = None,
                 termination: Callable[[torch.Tensor], torch.Tensor] | None = None, beta: float = 0.0,
                 uncertainty: str = "none", max_episode_steps: int = 1000, sample: bool = True,
                 dropout: bool = False, device: torch.device | str = "cpu"):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.beta, self.uncertainty, self.sample, self.dropout = beta, uncertainty, sample, dropout
        self.max_episode_steps = max_episode_steps
        if termination is None:
            termination = termination_fn(spec) if spec is not None else never
        self.termination = termination
        self.obs_all = torch.as_tensor(data.observations, device=self.device)
        self.act_all = torch.as_tensor(data.actions, device=self.device)
        self.starts = rollout_starts(data, model.context)
        if len(self.starts) == 0:
            raise ValueError(f"{data.source}: no start window of {model.context} steps (every episode is shorter)")
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (model.obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (model.act_dim,), np.float32)
        self.gen = torch.Generator(device=self.device)
        self.engine = ImaginedBatch(self.model, termination, uncertainty, beta, "row", self.gen, dropout, sample)
        self._started = False
        self._obs: torch.Tensor | None = None
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """A new episode from a start window drawn from the dataset (options={"start": i}: the i-th of
        `self.starts`); `seed` seeds both the draw and the model's sampling (the torch generator)."""
        super().reset(seed=seed)
        self.gen.manual_seed(seed if seed is not None else int(self.np_random.integers(2**62)))
        i = (options or {}).get("start")
        row = int(self.starts[i if i is not None else int(self.np_random.integers(len(self.starts)))])
        w = start_windows(self.obs_all, self.act_all, torch.tensor([row], device=self.device), self.model.context)
        self.engine.start(w["hist_obs"], w["hist_act"], self.max_episode_steps)
        self._started = True
        self._obs, self._t = w["obs"], 0
        return self._obs[0].cpu().numpy().astype(np.float32), {"start_row": row}

    @torch.no_grad()
    def step(self, action):
        if not self._started:
            raise RuntimeError("ModelEnv.step before reset")
        act = torch.as_tensor(np.asarray(action, dtype=np.float32), device=self.device).reshape(1, -1)
        out = self.engine.step(self._obs, act)  # Algorithm 1: every candidate predicted, one drawn, sampled
        nxt, r, unc = out["next_obs"], float(out["raw_rew"][0]), float(out["unc"][0])
        terminated = bool(out["done"][0])
        self._obs, self._t = nxt, self._t + 1
        truncated = self._t >= self.max_episode_steps and not terminated
        info = {"uncertainty": unc, "raw_reward": r, "candidate": int(out["candidate"][0])}
        return nxt[0].cpu().numpy().astype(np.float32), r - self.beta * unc, terminated, truncated, info

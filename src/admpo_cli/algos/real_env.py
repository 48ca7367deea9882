"""The real environment of an online run and what it yields: the simulator (seeded episodes, its MuJoCo
state in checkpoints) and every real transition so far (D_env of Algorithm 2)."""

from __future__ import annotations

import mujoco
import numpy as np
import torch

from ..data.dataset import Transitions
from ..envs.specs import EnvSpec, env_action, make_env
from .buffers import RingBuffer

_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


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

    def extend(self, data: Transitions) -> None:
        """Every transition of a dataset, in order (a fine-tuned run's D_env starts with its source's data); its
        last transition ends an episode, so no model window joins it to the first online one."""
        i, n = self.n, len(data)
        self.obs[i:i + n], self.act[i:i + n] = data.observations, data.actions
        self.rew[i:i + n], self.next_obs[i:i + n] = data.rewards, data.next_observations
        self.terminal[i:i + n], self.timeout[i:i + n] = data.terminals, data.timeouts
        self.timeout[i + n - 1] |= not self.terminal[i + n - 1]
        self.n += n
        self._to_buffer(i, i + n)

    def _to_buffer(self, lo: int, hi: int) -> None:
        """Rows lo..hi of the arrays appended to the ring buffer (on the training device)."""
        dev = self.buffer.device
        rows = {k: torch.as_tensor(getattr(self, k)[lo:hi], device=dev) for k in ("obs", "act", "rew", "next_obs")}
        self.buffer.add({**rows, "done": torch.as_tensor(self.terminal[lo:hi], device=dev).float()})

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
        self.buffer.ptr = self.buffer.size = 0
        self._to_buffer(0, n)


class Simulator:
    """The training environment, its episodes reset with seeds derived from the run's seed and the episode
    index, and its full MuJoCo integration state saved and restored with a checkpoint. Actions are the
    agent's in [-1, 1], scaled to the env's range here (Humanoid: +-0.4). It keeps the running episode's
    index and return, and the returns of the last 10 episodes (metrics.csv's train_return)."""

    def __init__(self, spec: EnvSpec, seed: int, max_steps: int):
        self.env = make_env(spec, max_steps)
        self.seed = seed
        self.obs: np.ndarray | None = None
        self.episode, self.episode_return, self.returns = 0, 0.0, []

    def reset(self) -> np.ndarray:
        self.obs = self.env.reset(seed=self.seed * 1_000_003 + self.episode)[0].astype(np.float32)
        return self.obs

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        """One step from the current state: (next state, reward, terminal, truncated); an ended episode is
        counted and the next one starts (self.obs is then its first state)."""
        nxt, r, term, trunc, _ = self.env.step(env_action(action, self.env.action_space))
        nxt = nxt.astype(np.float32)
        self.obs = nxt
        self.episode_return += float(r)
        if term or trunc:
            self.returns = (self.returns + [self.episode_return])[-10:]
            self.episode, self.episode_return = self.episode + 1, 0.0
            self.reset()
        return nxt, float(r), bool(term), bool(trunc)

    def state_dict(self) -> dict:
        u = self.env.unwrapped
        state = np.empty(mujoco.mj_stateSize(u.model, _STATE))
        mujoco.mj_getState(u.model, u.data, state, _STATE)
        return {"mj_state": torch.from_numpy(state), "elapsed": int(self.env._elapsed_steps),
                "obs": torch.from_numpy(self.obs.copy()), "episode": self.episode,
                "episode_return": self.episode_return, "returns": list(self.returns)}

    def load_state_dict(self, sd: dict) -> None:
        self.episode, self.episode_return, self.returns = int(sd["episode"]), float(sd["episode_return"]), \
            list(sd["returns"])
        self.reset()
        u = self.env.unwrapped
        mujoco.mj_setState(u.model, u.data, sd["mj_state"].numpy(), _STATE)
        self.env._elapsed_steps = int(sd["elapsed"])
        self.obs = sd["obs"].numpy().copy()

    def close(self) -> None:
        self.env.close()

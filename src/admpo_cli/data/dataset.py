"""The one in-memory dataset form and the samplers of k-step windows built on it."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import UserError

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


@dataclass
class Transitions:
    """N transitions as float32/bool arrays; `ends` marks the last transition of every episode."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    source: str = "<memory>"
    dropped_nonfinite: int = 0
    ends: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.observations = np.ascontiguousarray(self.observations, dtype=np.float32)
        self.actions = np.ascontiguousarray(self.actions, dtype=np.float32)
        self.rewards = np.ascontiguousarray(np.reshape(self.rewards, (-1,)), dtype=np.float32)
        self.next_observations = np.ascontiguousarray(self.next_observations, dtype=np.float32)
        self.terminals = np.reshape(self.terminals, (-1,)).astype(bool)
        self.timeouts = np.reshape(self.timeouts, (-1,)).astype(bool)
        self.ends = episode_ends(self.observations, self.next_observations, self.terminals, self.timeouts)

    def __len__(self) -> int:
        return int(self.observations.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    def episode_slices(self) -> list[tuple[int, int]]:
        stops = np.flatnonzero(self.ends) + 1
        starts = np.concatenate([[0], stops[:-1]])
        return list(zip(starts.tolist(), stops.tolist(), strict=True))

    def episode_returns(self) -> np.ndarray:
        """Return of each episode that is complete (ends in a terminal or a timeout)."""
        csum = np.concatenate([[0.0], np.cumsum(self.rewards, dtype=np.float64)])
        out = []
        for a, b in self.episode_slices():
            if self.terminals[b - 1] or self.timeouts[b - 1]:
                out.append(csum[b] - csum[a])
        return np.asarray(out)

    def fingerprint(self) -> str:
        h = hashlib.sha1()
        for name in ("observations", "actions", "rewards"):
            h.update(np.ascontiguousarray(getattr(self, name)).tobytes())
        return h.hexdigest()[:16]


def episode_ends(obs, next_obs, terminals, timeouts) -> np.ndarray:
    """An episode ends at a terminal, a timeout, the last row, or where next_obs[i] != obs[i+1].

    The last rule catches the unmarked episode ends of D4RL's medium-replay files (D4RL issue #162).
    """
    n = len(obs)
    ends = terminals.astype(bool) | timeouts.astype(bool)
    if n:
        ends = ends.copy()
        ends[-1] = True
        if n > 1:
            jump = np.any(np.abs(next_obs[:-1] - obs[1:]) > 1e-6, axis=1)
            ends[:-1] |= jump
    return ends


def validate(
    data: Transitions, source: str, obs_dim: int | None = None, act_dim: int | None = None,
    nonfinite: str = "reject",
) -> Transitions:
    """Check shapes, dims and finiteness; NaN/inf rows are rejected or dropped, never kept."""
    n = len(data.observations)
    if n == 0:
        raise UserError(f"{source}: dataset has no transitions")
    for name in FIELDS:
        arr = getattr(data, name)
        if len(arr) != n:
            raise UserError(f"{source}: field '{name}' has {len(arr)} rows, expected {n} (as observations)")
    if data.observations.ndim != 2 or data.next_observations.shape != data.observations.shape:
        raise UserError(
            f"{source}: field 'next_observations' has shape {data.next_observations.shape}, "
            f"expected {data.observations.shape}"
        )
    if obs_dim is not None and data.obs_dim != obs_dim:
        raise UserError(f"{source}: field 'observations' has {data.obs_dim} dims, expected {obs_dim} for this task")
    if act_dim is not None and data.act_dim != act_dim:
        raise UserError(f"{source}: field 'actions' has {data.act_dim} dims, expected {act_dim} for this task")
    bad = ~(
        np.isfinite(data.observations).all(1)
        & np.isfinite(data.next_observations).all(1)
        & np.isfinite(data.actions).all(1)
        & np.isfinite(data.rewards)
    )
    if bad.any():
        rows = np.flatnonzero(bad)
        if nonfinite != "drop":
            raise UserError(
                f"{source}: {len(rows)} rows with NaN/inf (first at row {rows[0]}); "
                "pass --set data.nonfinite=drop to drop them"
            )
        # Dropped rows end their episode: the previous row becomes a boundary.
        keep = ~bad
        before = np.clip(rows - 1, 0, None)
        timeouts = data.timeouts.copy()
        timeouts[before] |= ~data.terminals[before]
        cleaned = Transitions(
            data.observations[keep], data.actions[keep], data.rewards[keep],
            data.next_observations[keep], data.terminals[keep], timeouts[keep], source=source,
        )
        cleaned.dropped_nonfinite = int(len(rows))
        return cleaned
    data.source = source
    return data


# ---------------------------------------------------------------- windows


def steps_to_end(ends: np.ndarray) -> np.ndarray:
    """For each row t, the number of transitions from t to its episode's end, inclusive."""
    n = len(ends)
    end_idx = np.flatnonzero(ends)
    nxt = end_idx[np.searchsorted(end_idx, np.arange(n))]
    return (nxt - np.arange(n) + 1).astype(np.int64)


def steps_from_start(ends: np.ndarray) -> np.ndarray:
    """For each row t, how many transitions of the same episode precede it."""
    n = len(ends)
    starts = np.zeros(n, dtype=bool)
    starts[0] = True
    starts[1:] = ends[:-1]
    start_idx = np.flatnonzero(starts)
    first = start_idx[np.searchsorted(start_idx, np.arange(n), side="right") - 1]
    return (np.arange(n) - first).astype(np.int64)


def holdout_mask(data: Transitions, ratio: float, max_n: int, seed: int, how: str = "episodes") -> np.ndarray:
    """min(ratio * N, max_n) held-out transitions: whole episodes drawn at random (seeded, `episodes`), the
    newest transitions (`last`: the ADMPO authors' online split) or single transitions drawn at random
    (`random`: MBPO's split)."""
    target = int(min(ratio * len(data), max_n))
    mask = np.zeros(len(data), dtype=bool)
    if target <= 0:
        return mask
    if how == "last":
        mask[len(data) - target :] = True
        return mask
    if how == "random":
        mask[np.random.default_rng(seed).permutation(len(data))[:target]] = True
        return mask
    slices = data.episode_slices()
    order = np.random.default_rng(seed).permutation(len(slices))
    held = 0
    # Keep at least one episode for training, whatever the ratio asks.
    for i in order[: max(len(slices) - 1, 0)]:
        if held >= target:
            break
        a, b = slices[i]
        mask[a:b] = True
        held += b - a
    return mask


def cut_before_holdout(data: Transitions, hold: np.ndarray) -> Transitions:
    """The data as the training sampler of a `last` split sees it: an episode end just before the held-out
    block, so that no training window reaches into it (the authors' code samples training windows that end
    before the split). The arrays are shared; only `ends` is a copy."""
    if not hold.any() or hold.all():
        return data
    view = copy.copy(data)
    view.ends = data.ends.copy()
    view.ends[int(np.argmax(hold)) - 1] = True
    return view


class WindowSampler:
    """Batches of k-step windows (s_t, a_t..a_{t+k-1}, s_{t+k}, r_{t+k}) that never cross an episode end.

    Valid start indices per k are computed once. Tensors live on `device` and batches are gathers.
    """

    def __init__(self, data: Transitions, m: int, rows: np.ndarray | None = None,
                 device: torch.device | str = "cpu", seed: int = 0):
        self.m = m
        self.device = torch.device(device)
        remaining = steps_to_end(data.ends)
        allowed = np.ones(len(data), dtype=bool) if rows is None else rows.astype(bool)
        # starts[k-1]: rows from which a k-step window stays inside one episode.
        self.starts = [
            torch.as_tensor(np.flatnonzero(allowed & (remaining >= k)), device=self.device)
            for k in range(1, m + 1)
        ]
        if len(self.starts[0]) == 0:
            raise UserError(f"{data.source}: no transitions to sample windows from")
        self.n = len(data)
        # one row per transition, [obs | act | next_obs | rew | steps to the episode end | next_obs - obs |
        # rew], so that a batch of windows is a single gather (five gathers were ~5 % of an ensemble
        # gradient step) and a one-step target a slice of it
        d, a = data.obs_dim, data.act_dim
        self.table = torch.as_tensor(np.concatenate([
            data.observations, data.actions, data.next_observations, data.rewards[:, None],
            remaining[:, None], data.next_observations - data.observations, data.rewards[:, None]],
            1).astype(np.float32), device=self.device)
        self.cols = {"obs": slice(0, d), "act": slice(d, d + a), "next_obs": slice(d + a, 2 * d + a),
                     "target": slice(d + a, 2 * d + a + 1), "remaining": 2 * d + a + 1,
                     "delta_target": slice(2 * d + a + 2, 3 * d + a + 3)}
        self.offsets = torch.arange(m, device=self.device)
        self.offsets_f = self.offsets.float()
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed)

    def count(self, k: int) -> int:
        return int(len(self.starts[k - 1]))

    def _pick(self, k: int, batch: int) -> torch.Tensor:
        pool = self.starts[k - 1]
        if len(pool) == 0:
            raise UserError(f"no {k}-step windows: every episode is shorter than {k} steps (lower model.m)")
        # index_select: a quarter of the time of advanced indexing for these 1-D gathers
        return pool.index_select(0, torch.randint(len(pool), (batch,), generator=self.gen, device=self.device))

    def gather(self, t: torch.Tensor, length: int) -> dict[str, torch.Tensor]:
        """Windows of `length` steps from starts t; positions past the episode end are masked out."""
        c = self.cols
        idx = (t[:, None] + self.offsets[:length]).clamp_max_(self.n - 1)
        rows = self.table.index_select(0, idx.view(-1)).view(len(t), length, -1)  # (B, L, D)
        s0 = rows[:, 0, c["obs"]]
        mask = self.offsets_f[:length][None, :] < rows[:, 0, c["remaining"], None]
        # (next state - s0, reward): s0 padded with a 0 under the reward column
        target = rows[..., c["target"]] - torch.nn.functional.pad(s0, (0, 1))[:, None, :]
        return {"s0": s0, "actions": rows[..., c["act"]], "target": target, "mask": mask,
                "next_states": rows[..., c["next_obs"]]}

    def sample_all(self, batch: int) -> dict[str, torch.Tensor]:
        """Windows of length m from any start; mask[:, k-1] tells whether the k-step target exists."""
        return self.gather(self._pick(1, batch), self.m)

    def sample_k(self, k: int, batch: int) -> dict[str, torch.Tensor]:
        """Windows of exactly k steps (all valid)."""
        return self.gather(self._pick(k, batch), k)

    def sample_one_step(self, batch: int) -> dict[str, torch.Tensor]:
        """Single transitions for one-step models: s0 (B, obs), action (B, act), target (B, obs+1) =
        (next state - s0, reward). The same draws as sample_k(1, batch), without the window bookkeeping."""
        c = self.cols
        rows = self.table.index_select(0, self._pick(1, batch))
        return {"s0": rows[:, c["obs"]], "action": rows[:, c["act"]], "target": rows[:, c["delta_target"]]}


def rollout_starts(data: Transitions, m: int) -> np.ndarray:
    """Rows t whose m-1 preceding transitions lie in the same episode (a full real history window)."""
    return np.flatnonzero(steps_from_start(data.ends) >= m - 1)


def sample_start_windows(data: Transitions, m: int, n: int, rng: np.random.Generator, device,
                         replace: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """n rows drawn by `rng` from `rollout_starts` (without replacement: at most all of them) and their real
    start windows (`start_windows`), on `device`."""
    pool = rollout_starts(data, m)
    rows = torch.as_tensor(rng.choice(pool, size=n if replace else min(n, len(pool)), replace=replace), device=device)
    return rows, start_windows(torch.as_tensor(data.observations, device=device),
                               torch.as_tensor(data.actions, device=device), rows, m)


def start_windows(obs: torch.Tensor, act: torch.Tensor, rows: torch.Tensor, m: int) -> dict[str, torch.Tensor]:
    """Real windows (s_1, a_1, ..., s_{m-1}, a_{m-1}, s_m) ending at state obs[rows] (rows from
    `rollout_starts`): what a model's stepper is started with before it imagines from s_m."""
    hist = rows[:, None] + torch.arange(-(m - 1), 0, device=rows.device)
    return {"hist_obs": obs[hist], "hist_act": act[hist], "obs": obs[rows]}  # (B, m-1, .), (B, obs)

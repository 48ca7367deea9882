"""Preallocated transition storage on the training device; a batch is one row gather."""

from __future__ import annotations

import torch

KEYS = ("obs", "act", "rew", "next_obs", "done")


class TransitionTable:
    """Transitions as the rows of one (N, D) tensor, columns [obs | act | rew | next_obs | done], so that
    a batch is a single gather (five separate ones were a tenth of a SAC update's time). `data` holds
    per-field column views of it."""

    def __init__(self, table: torch.Tensor, obs_dim: int, act_dim: int):
        self.table = table
        widths = {"obs": obs_dim, "act": act_dim, "rew": 0, "next_obs": obs_dim, "done": 0}  # 0: a scalar
        self.cols, at = {}, 0
        for k in KEYS:
            self.cols[k] = (at, widths[k])
            at += max(widths[k], 1)
        self.data = self.split(table)

    @classmethod
    def zeros(cls, n: int, obs_dim: int, act_dim: int, device: torch.device) -> TransitionTable:
        return cls(torch.zeros(n, 2 * obs_dim + act_dim + 2, device=device), obs_dim, act_dim)

    @classmethod
    def of(cls, fields: dict[str, torch.Tensor]) -> TransitionTable:
        cols = [fields[k].float().reshape(fields[k].shape[0], -1) for k in KEYS]
        return cls(torch.cat(cols, 1), fields["obs"].shape[1], fields["act"].shape[1])

    def split(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows of the table (or gathered from it) -> column views per field."""
        return {k: rows[:, a] if w == 0 else rows[:, a : a + w] for k, (a, w) in self.cols.items()}


class RingBuffer:
    """Fixed-capacity FIFO of transitions: the model buffer keeps the newest roll-outs."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device):
        self.capacity = capacity
        self.device = device
        self.store = TransitionTable.zeros(capacity, obs_dim, act_dim, device)
        self.ptr = 0
        self.size = 0

    @property
    def data(self) -> dict[str, torch.Tensor]:
        return self.store.data

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        n = batch["obs"].shape[0]
        if n == 0:
            return
        if n > self.capacity:
            batch = {k: v[-self.capacity :] for k, v in batch.items()}
            n = self.capacity
        idx = (self.ptr + torch.arange(n, device=self.device)) % self.capacity
        self.store.table[idx] = TransitionTable.of(batch).table
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample_idx(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(self.size, (n,), device=self.device, generator=gen)

    def state_dict(self) -> dict:
        return {"ptr": self.ptr, "size": self.size,
                **{k: v[: self.size].detach().cpu().clone() if self.size < self.capacity else v.cpu()
                   for k, v in self.data.items()}}

    def load_state_dict(self, sd: dict) -> None:
        self.ptr, self.size = int(sd["ptr"]), int(sd["size"])
        for k in KEYS:
            self.data[k][: sd[k].shape[0]] = sd[k].to(self.device)


def table_of(data, device: torch.device) -> TransitionTable:
    """The real dataset as a training table (done = true terminal, not timeout)."""
    return TransitionTable.of({
        "obs": torch.as_tensor(data.observations, device=device),
        "act": torch.as_tensor(data.actions, device=device),
        "rew": torch.as_tensor(data.rewards, device=device),
        "next_obs": torch.as_tensor(data.next_observations, device=device),
        "done": torch.as_tensor(data.terminals, device=device),
    })

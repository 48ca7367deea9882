"""Preallocated transition storage on the training device; batches are index gathers."""

from __future__ import annotations

import torch

KEYS = ("obs", "act", "rew", "next_obs", "done")


class RingBuffer:
    """Fixed-capacity FIFO of transitions: the model buffer keeps the newest roll-outs."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device):
        self.capacity = capacity
        self.device = device
        self.data = {
            "obs": torch.zeros(capacity, obs_dim, device=device),
            "act": torch.zeros(capacity, act_dim, device=device),
            "rew": torch.zeros(capacity, device=device),
            "next_obs": torch.zeros(capacity, obs_dim, device=device),
            "done": torch.zeros(capacity, device=device),
        }
        self.ptr = 0
        self.size = 0

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        n = batch["obs"].shape[0]
        if n == 0:
            return
        if n > self.capacity:
            batch = {k: v[-self.capacity :] for k, v in batch.items()}
            n = self.capacity
        idx = (self.ptr + torch.arange(n, device=self.device)) % self.capacity
        for k in KEYS:
            self.data[k][idx] = batch[k].to(self.data[k].dtype)
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


def tensors_of(data, device: torch.device) -> dict[str, torch.Tensor]:
    """The real dataset as training tensors (done = true terminal, not timeout)."""
    return {
        "obs": torch.as_tensor(data.observations, device=device),
        "act": torch.as_tensor(data.actions, device=device),
        "rew": torch.as_tensor(data.rewards, device=device),
        "next_obs": torch.as_tensor(data.next_observations, device=device),
        "done": torch.as_tensor(data.terminals, device=device).float(),
    }

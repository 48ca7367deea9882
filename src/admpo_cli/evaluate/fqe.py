"""Fitted Q evaluation (Le, Voloshin & Yue, 2019): a policy's value estimated from the dataset alone.

Q(s, a) is fitted by regression to r + gamma (1 - terminal) Q'(s', pi(s')) on the dataset's transitions, Q' a
slowly following copy of Q; the value is the mean of Q(s_0, pi(s_0)) over the dataset's episode start states.
No simulator and no dynamics model: a second offline criterion for `admpo tune` (`--select fqe`) beside the
policy's return in the learned model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..data.dataset import Transitions


def _q_net(obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = obs_dim + act_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 1))


def episode_starts(data: Transitions) -> np.ndarray:
    """Rows that begin an episode: the first row, and every row after an episode's end."""
    ends = np.flatnonzero(data.ends)
    return np.unique(np.concatenate([[0], ends[ends + 1 < len(data)] + 1]))


def fqe(policy: Callable[[torch.Tensor], torch.Tensor], data: Transitions, gamma: float = 0.99, steps: int = 5000,
        batch_size: int = 256, hidden: tuple[int, ...] = (256, 256), lr: float = 3e-4, tau: float = 0.005,
        seed: int = 0, device: torch.device | str = "cpu") -> dict[str, float]:
    """The deterministic `policy`'s discounted value from the dataset's episode starts, by `steps` Adam steps of
    fitted Q evaluation on minibatches drawn with `seed`."""
    gen = torch.Generator(device=device).manual_seed(seed)  # minibatches drawn where the data is: no copy a step
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        q = _q_net(data.obs_dim, data.act_dim, hidden).to(device)
    target = copy.deepcopy(q).requires_grad_(False)
    opt = torch.optim.Adam(q.parameters(), lr=lr)
    t = {k: torch.as_tensor(v, dtype=torch.float32, device=device) for k, v in (
        ("obs", data.observations), ("act", data.actions), ("rew", data.rewards),
        ("next_obs", data.next_observations), ("terminal", data.terminals))}
    with torch.no_grad():
        next_act = policy(t["next_obs"])  # the policy is fixed: its actions at s' once
    for _ in range(steps):
        i = torch.randint(len(data), (batch_size,), generator=gen, device=device)
        with torch.no_grad():
            q_next = target(torch.cat([t["next_obs"][i], next_act[i]], 1))[:, 0]
            y = t["rew"][i] + gamma * (1 - t["terminal"][i]) * q_next
        loss = ((q(torch.cat([t["obs"][i], t["act"][i]], 1))[:, 0] - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p, pt in zip(q.parameters(), target.parameters(), strict=True):
                pt.lerp_(p, tau)
    starts = torch.as_tensor(episode_starts(data), device=device)
    with torch.no_grad():
        s0 = t["obs"][starts]
        values = q(torch.cat([s0, policy(s0)], 1))[:, 0]
    return {"fqe_value": float(values.mean()), "fqe_starts": int(len(starts)), "fqe_gamma": gamma,
            "fqe_steps": steps, "fqe_final_loss": float(loss.detach())}

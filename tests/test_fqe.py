"""Fitted Q evaluation against values computed by hand on made-up data (evaluate/fqe.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from admpo_cli.data.dataset import Transitions
from admpo_cli.evaluate.fqe import episode_starts, fqe


def chain(n: int, terminal: bool, reward_is_action: bool, seed: int = 0) -> Transitions:
    """n transitions of a 2-dim state with random actions in [-1, 1]; reward 1 (or the action taken); every
    transition terminal or none; episodes of 10 steps (time-outs)."""
    rng = np.random.default_rng(seed)
    states = rng.normal(size=(n // 10, 11, 2)).astype(np.float32)  # episodes of 10 steps: s_0 .. s_10
    obs, nxt = states[:, :-1].reshape(n, 2), states[:, 1:].reshape(n, 2)
    act = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    rew = act[:, 0].copy() if reward_is_action else np.ones(n, np.float32)
    timeouts = (np.arange(n) % 10) == 9
    return Transitions(obs, act, rew, nxt, np.full(n, terminal), timeouts & (not terminal))


def half(o: torch.Tensor) -> torch.Tensor:
    return torch.full((o.shape[0], 1), 0.5)


@pytest.mark.parametrize("terminal, reward_is_action, gamma, want", [
    (False, False, 0.5, 2.0),  # r = 1 forever: 1 / (1 - gamma)
    (True, False, 0.5, 1.0),  # every step ends the episode: Q = r
    (True, True, 0.5, 0.5),  # r = a: the policy's action (0.5), not the data's
    (False, True, 0.5, 1.0),  # 0.5 + gamma * 0.5 / (1 - gamma)
])
def test_fqe_matches_the_value_by_hand(terminal, reward_is_action, gamma, want):
    data = chain(2000, terminal, reward_is_action)
    out = fqe(half, data, gamma=gamma, steps=1500, hidden=(64, 64), lr=1e-3, tau=0.05, seed=0)
    assert out["fqe_value"] == pytest.approx(want, abs=0.08)
    assert out["fqe_starts"] == (2000 if terminal else 200)  # every row after an episode end (10-step episodes)


def test_episode_starts_follow_the_ends():
    data = chain(30, False, False)
    assert episode_starts(data).tolist() == [0, 10, 20]

"""Policy evaluation in the real environment: N deterministic episodes stepped in lockstep so the
policy runs once per step for all of them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..data.scores import Reference, normalized_score
from ..envs.specs import EnvSpec, env_action, make_env


def evaluate(
    act: Callable[[torch.Tensor], torch.Tensor],
    spec: EnvSpec,
    episodes: int,
    seed: int,
    max_steps: int = 1000,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Returns of `episodes` episodes; env i is reset with seed + i. Actions in [-1, 1] are scaled to the
    env's range (Humanoid: +-0.4; 1 elsewhere)."""
    envs = [make_env(spec, max_steps) for _ in range(episodes)]
    obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]).astype(np.float32)
    returns = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        idx = np.flatnonzero(running)
        with torch.no_grad():
            a = act(torch.as_tensor(obs[idx], device=device)).cpu().numpy()
        for j, i in enumerate(idx):
            o, r, term, trunc, _ = envs[i].step(env_action(a[j], envs[i].action_space))
            returns[i] += r
            obs[i] = o
            if term or trunc:
                running[i] = False
    for e in envs:
        e.close()
    return returns


def score_row(returns: np.ndarray, ref: Reference | None) -> dict[str, float | str]:
    scores = [normalized_score(float(r), ref) for r in returns] if ref is not None else None
    return {
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "score_mean": float(np.mean(scores)) if scores else "",
        "score_std": float(np.std(scores)) if scores else "",
    }


EPOCH_STRIDE = 1009  # an offline epoch's evaluation position: epoch x 1009


def position_of(row: dict, algo: str) -> int:
    """Where an offline run's metrics row was evaluated (evaluation_seed's position): BC's gradient step, an
    offline SAC loop's epoch x EPOCH_STRIDE."""
    return int(float(row["step"])) if algo == "bc" else int(float(row["epoch"])) * EPOCH_STRIDE


def evaluation_seed(run_seed: int, position: int) -> int:
    """The seed of a training run's evaluation at `position` (env i then resets with seed + i): every loop
    evaluates on episodes that depend on the run's seed and where in training it is, never on what ran before.
    Positions: the online env step, BC's gradient step, the offline epoch x 1009."""
    return run_seed * 100_003 + position


def evaluation_row(act: Callable[[torch.Tensor], torch.Tensor], spec: EnvSpec, episodes: int, run_seed: int,
                   position: int, ref: Reference | None, max_steps: int = 1000,
                   device: torch.device | str = "cpu") -> dict[str, float | str]:
    """A training run's evaluation: `episodes` deterministic episodes seeded by `evaluation_seed`, scored."""
    return score_row(evaluate(act, spec, episodes, evaluation_seed(run_seed, position), max_steps, device), ref)

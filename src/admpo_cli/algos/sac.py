"""Model-free SAC as CleanRL's `sac_continuous_action.py` runs it: the online loop of algos/online.py without
a model (every batch real)."""

from __future__ import annotations

from typing import Any

from ..registry import AlgorithmSpec
from .loops import online_loop


def sac_settings() -> dict[str, dict[str, Any]]:
    """Model-free SAC as CleanRL's `sac_continuous_action.py` runs it: UTD 1, 256x256, policy lr 3e-4, Q lr
    1e-3, alpha autotuned from 1 (lr 1e-3, loss -alpha (log pi + target), target -|A| in the env's action
    units), the policy and alpha updated twice every 2 env steps, targets every step, 5000 random steps
    first, log std squashed by tanh into [-5, 2] (CleanRL's LOG_STD_MIN/MAX)."""
    return {
        "agent": {"actor_lr": 3e-4, "critic_lr": 1e-3, "alpha_lr": 1e-3, "alpha": 1.0, "auto_alpha": True,
                  "target_entropy": 0.0, "entropy_space": "env", "alpha_loss": "alpha", "actor_update_every": 2,
                  "actor_steps": 2, "target_update_every": 1, "actor_lr_schedule": "none", "batch_size": 256,
                  "hidden": [256, 256], "gamma": 0.99, "tau": 0.005, "log_std_bound": "tanh"},
        "train": {"utd": 1, "warmup_steps": 5000, "real_ratio": 1.0},
        "rollout": {"uncertainty": "none", "beta": 0.0},
    }


def published(task: str, setting: str) -> dict[str, dict[str, Any]]:
    return sac_settings() if setting == "online" else {}


ALGORITHM = AlgorithmSpec(
    name="sac", label="SAC", setting="online", command="train-on --algo sac",
    train=online_loop, model=None,
    uncertainty="none", published=published, description="soft actor-critic, model-free (CleanRL's)",
)

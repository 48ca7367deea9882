"""MBPO as its authors' code runs it (GitHub jannerm/mbpo): the online loop of algos/online.py with a 7/5
ensemble warm-started across re-fits, no penalty, and MBPO's SAC."""

from __future__ import annotations

from typing import Any

from ..config import env_of
from ..registry import AlgorithmSpec
from .loops import online_loop

# MBPO as its authors ran it (GitHub jannerm/mbpo, `examples/config/<env>/0.py`): model re-fit interval (env
# steps), roll-out length schedule [x, y, a, b] (their [epoch a, epoch b, x, y] at 1000 env steps an epoch,
# counted after the 5000 exploration steps), model buffer in roll-outs (retain epochs * 1000 / interval),
# ensemble width, SAC target entropy (in the normalised [-1, 1] action space).
MBPO_TASKS: dict[str, dict[str, Any]] = {
    "hopper": {"interval": 250, "schedule": [1, 15, 20_000, 150_000], "retain": 4, "hidden": 200,
               "target_entropy": -1.0},
    "walker2d": {"interval": 250, "schedule": [1, 1, 20_000, 150_000], "retain": 4, "hidden": 200,
                 "target_entropy": -3.0},
    "ant": {"interval": 250, "schedule": [1, 25, 20_000, 100_000], "retain": 4, "hidden": 200,
            "target_entropy": -4.0},
    "humanoid": {"interval": 1000, "schedule": [1, 25, 20_000, 300_000], "retain": 5, "hidden": 400,
                 "target_entropy": -2.0},
}


def mbpo_published(env: str) -> bool:
    return env in MBPO_TASKS


def mbpo_settings(env: str) -> dict[str, dict[str, Any]]:
    """MBPO as its authors' code runs it. The env-step budget is the preset's (ADMPO's Figure 3 budget
    applies to every curve); everything else is MBPO's: a 7/5 ensemble warm-started across re-fits with its
    Adam state, trained with no epoch cap until no member improved its hold-out loss by more than 1 % for
    more than 5 epochs (patience 6), hold-out min(20 %, 5000) drawn afresh at each fit; 100 000 roll-outs
    every re-fit; SAC 256x256, lr 3e-4, alpha from 1 with targets in the normalised action space, 5 % real
    data in each batch, 20 updates per env step."""
    p = MBPO_TASKS.get(env, MBPO_TASKS["hopper"])
    return {
        "model": {"kind": "ensemble", "ensemble_size": 7, "elites": 5, "ensemble_hidden": p["hidden"],
                  "ensemble_layers": 4, "ensemble_weight_decay": [2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4],
                  "lr": 1e-3, "batch_size": 256, "holdout": "random", "holdout_ratio": 0.2, "holdout_max": 5000,
                  "early_stopping": "members", "min_improvement": 0.01, "patience": 6, "max_epochs": 0,
                  "steps_per_epoch": 0, "validation": "all"},
        "rollout": {"batch_size": 100_000, "uncertainty": "none", "beta": 0.0},
        "agent": {"hidden": [256, 256], "actor_lr": 3e-4, "critic_lr": 3e-4, "alpha_lr": 3e-4, "alpha": 1.0,
                  "auto_alpha": True, "target_entropy": p["target_entropy"], "entropy_space": "normalized",
                  "alpha_loss": "log_alpha", "target_update_every": 1, "actor_update_every": 1, "actor_steps": 1,
                  "actor_lr_schedule": "none", "batch_size": 256, "gamma": 0.99, "tau": 0.005},
        "train": {"utd": 20, "model_update_interval": p["interval"], "model_retain_rollouts": p["retain"],
                  "rollout_schedule": p["schedule"], "warmup_steps": 5000, "real_ratio": 0.05,
                  "model_refit": "warm_start"},
    }


def published(task: str, setting: str) -> dict[str, dict[str, Any]]:
    return mbpo_settings(env_of(task)) if setting == "online" else {}


ALGORITHM = AlgorithmSpec(
    name="mbpo", label="MBPO (published)", setting="online", command="train-on --algo mbpo",
    train=online_loop,
    model="ensemble", uncertainty="none", published=published, published_for=lambda task: mbpo_published(env_of(task)),
    description="MBPO (Janner et al. 2019) as its authors' code runs it",
)

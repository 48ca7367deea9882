"""MOPO as OfflineRL-Kit publishes it (`run_example/run_mopo.py` and its per-task README table): the offline
loop of algos/offline.py with a 7/5 ensemble and the max-aleatoric penalty. With ADMPO's settings and the
ensemble instead (`train-off --model ensemble`), the run is the ablation and is labelled as one."""

from __future__ import annotations

from typing import Any

from ..registry import AlgorithmSpec
from .loops import offline_loop

# OfflineRL-Kit's MOPO per task: (rollout-length h, penalty-coef lambda).
MOPO_TASKS: dict[str, tuple[int, float]] = {
    "halfcheetah-medium": (5, 0.5),
    "hopper-medium": (5, 5.0),
    "walker2d-medium": (5, 0.5),
    "halfcheetah-medium-replay": (5, 0.5),
    "hopper-medium-replay": (5, 2.5),
    "walker2d-medium-replay": (1, 2.5),
    "halfcheetah-medium-expert": (5, 2.5),
    "hopper-medium-expert": (5, 5.0),
    "walker2d-medium-expert": (1, 2.5),
}
# Tasks without a published setting (the *-random and NeoRL tasks, local data): run_mopo.py's own
# defaults would be h 5, lambda 0.5; the common choice for unlisted tasks is h 5, lambda 1.0.
MOPO_UNPUBLISHED = (5, 1.0)


def _task_key(task: str) -> str:
    return task[:-3] if task.endswith("-v2") else task


def mopo_published(task: str) -> bool:
    return _task_key(task) in MOPO_TASKS


def mopo_settings(task: str) -> dict[str, dict[str, Any]]:
    """MOPO as OfflineRL-Kit runs it, as a {section: {key: value}} mapping applied over the preset."""
    h, lam = MOPO_TASKS.get(_task_key(task), MOPO_UNPUBLISHED)
    return {
        "model": {
            "kind": "ensemble", "ensemble_size": 7, "elites": 5, "ensemble_hidden": 200, "ensemble_layers": 4,
            "ensemble_weight_decay": [2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4], "lr": 1e-3, "batch_size": 256,
            "holdout_ratio": 0.2, "holdout_max": 1000, "holdout": "random",  # a random split of transitions
            # stop when no member improved its hold-out loss by more than 1 % for 5 epochs
            "early_stopping": "members", "min_improvement": 0.01, "patience": 5,
            # no epoch cap (dynamics.train's max_epochs=None), an epoch = every training row once, all of the
            # hold-out scored each epoch
            "max_epochs": 0, "steps_per_epoch": 0, "validation": "all",
        },
        "rollout": {"horizon": h, "beta": lam, "uncertainty": "max_aleatoric", "batch_size": 50000},
        "agent": {
            "hidden": [256, 256], "actor_lr": 1e-4, "critic_lr": 3e-4, "gamma": 0.99, "tau": 0.005,
            # auto-alpha from log alpha = 0 (alpha 1), lr 1e-4, target entropy -|A|
            "alpha": 1.0, "auto_alpha": True, "alpha_lr": 1e-4, "target_entropy": 0.0, "batch_size": 256,
            "actor_lr_schedule": "cosine", "actor_update_every": 1,
        },
        "train": {"epochs": 3000, "steps_per_epoch": 1000, "rollout_freq": 1000, "model_retain_epochs": 5,
                  "real_ratio": 0.05},
        "eval": {"episodes": 10},
    }


def published(task: str, setting: str) -> dict[str, dict[str, Any]]:
    return mopo_settings(task) if setting == "offline" else {}


ALGORITHM = AlgorithmSpec(
    name="mopo", label="MOPO (published)", setting="offline", command="train-off",
    train=offline_loop,
    model="ensemble", uncertainty="max_aleatoric", published=published, published_for=mopo_published,
    description="MOPO (Yu et al. 2020) with OfflineRL-Kit's published per-task settings",
)

"""The algorithms admpo knows, in one table that the CLI, training and the report all read.

Each algorithm says which command trains it, its default dynamics model and uncertainty, how the report
labels it, and, for a baseline, the settings its authors publish. A baseline runs with its published
settings by default: running it with ADMPO's settings is an ablation and is labelled as one.

Sources: MOPO as OfflineRL-Kit publishes it (`run_example/run_mopo.py`, its per-task README table); MBPO as
its authors' code runs it (GitHub jannerm/mbpo); SAC as CleanRL's `sac_continuous_action.py`; ADMPO as the
authors' code (GitHub HxLyn3/ADMPO) configures it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Setting = Literal["offline", "online"]


@dataclass(frozen=True)
class Algorithm:
    name: str
    # How reports and summaries name it.
    label: str
    setting: Setting
    # The command that trains it.
    command: str
    # Default dynamics model (None: model-free) and roll-out uncertainty.
    model: str | None
    uncertainty: str


ALGORITHMS: dict[str, Algorithm] = {
    "admpo": Algorithm("admpo", "ADMPO-OFF", "offline", "train-off", "adm", "authors"),
    "mopo": Algorithm("mopo", "MOPO (published)", "offline", "train-off", "ensemble", "max_aleatoric"),
    "bc": Algorithm("bc", "BC", "offline", "train-off --algo bc", None, "none"),
    "sac": Algorithm("sac", "SAC", "online", "train-on --algo sac", None, "none"),
    "mbpo": Algorithm("mbpo", "MBPO (published)", "online", "train-on --algo mbpo", "ensemble", "none"),
}

# Default uncertainty of a model when an algorithm does not fix it.
MODEL_UNCERTAINTY = {"adm": "authors", "ensemble": "max_aleatoric", "bootrnn": "max_aleatoric"}


def get(name: str) -> Algorithm:
    return ALGORITHMS[name]


def default_model(algo: str) -> str | None:
    return ALGORITHMS[algo].model if algo in ALGORITHMS else None


def uncertainty_for(kind: str, configured: str) -> str:
    """The quantifier a roll-out uses: the configured one, or the model's default for `auto`."""
    return MODEL_UNCERTAINTY[kind] if configured == "auto" else configured


def dropout_at_inference(setting: str, kind: str, uncertainty: str) -> bool:
    """`auto` follows the authors' code, which never switches ADM to eval mode: with their uncertainty
    formula (`authors`, with which Table 5's beta were tuned) and in their online runs (no penalty), the
    sampled next state and the m means carry dropout noise. With Eq. 4 (`paper`) and for the baselines'
    models, predictions are made without dropout."""
    if setting == "auto":
        return kind == "adm" and uncertainty in ("authors", "none")
    return setting == "on"


def variant_label(algo: str, model: str | None, uncertainty: str | None = None, published: bool = True,
                  setting: str = "offline", budget: str = "") -> str:
    """Report label: the algorithm, and an ablation named as one where the model or uncertainty is not
    the algorithm's own (e.g. ADMPO-OFF's settings with MOPO's ensemble); a baseline on a task its
    authors publish no setting for says so; a run at a named reduced budget says "(reduced budget: NAME)"."""
    label = _variant_label(algo, model, uncertainty, published, setting)
    return f"{label} (reduced budget: {budget})" if budget else label


def _variant_label(algo: str, model: str | None, uncertainty: str | None, published: bool, setting: str) -> str:
    a = ALGORITHMS.get(algo)
    if a is None:
        return algo
    if algo == "admpo" and setting == "online":
        a = Algorithm("admpo", "ADMPO-ON", "online", "train-on", "adm", "none")
    if not published:
        return f"{a.label.replace(' (published)', '')} (no published setting for this task)"
    parts = []
    if model and a.model and model != a.model:
        parts.append(f"{model} model")
    if uncertainty and a.model and uncertainty not in ("auto", uncertainty_for(model or a.model, "auto"),
                                                       a.uncertainty):
        parts.append(f"{uncertainty} uncertainty")
    if not parts:
        return a.label
    return f"{a.label.replace(' (published)', '')} with {', '.join(parts)} (ablation)"


# ---------------------------------------------------------------- MOPO as published

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


# ---------------------------------------------------------------- MBPO and SAC as published (online)

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
MBPO_SOURCE = "jannerm/mbpo examples/config/<env>/0.py, examples/development/base.py, mbpo/models/bnn.py"


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
                  "steps_per_epoch": 0},
        "rollout": {"batch_size": 100_000, "uncertainty": "none", "beta": 0.0},
        "agent": {"hidden": [256, 256], "actor_lr": 3e-4, "critic_lr": 3e-4, "alpha_lr": 3e-4, "alpha": 1.0,
                  "auto_alpha": True, "target_entropy": p["target_entropy"], "entropy_space": "normalized",
                  "alpha_loss": "log_alpha", "target_update_every": 1, "actor_update_every": 1, "actor_steps": 1,
                  "actor_lr_schedule": "none", "batch_size": 256, "gamma": 0.99, "tau": 0.005},
        "train": {"utd": 20, "model_update_interval": p["interval"], "model_retain_rollouts": p["retain"],
                  "rollout_schedule": p["schedule"], "warmup_steps": 5000, "real_ratio": 0.05,
                  "model_refit": "warm_start"},
    }


SAC_SOURCE = "CleanRL cleanrl/sac_continuous_action.py"


def sac_settings() -> dict[str, dict[str, Any]]:
    """Model-free SAC as CleanRL's `sac_continuous_action.py` runs it: UTD 1, 256x256, policy lr 3e-4, Q lr
    1e-3, alpha autotuned from 1 (lr 1e-3, loss -alpha (log pi + target), target -|A| in the env's action
    units), the policy and alpha updated twice every 2 env steps, targets every step, 5000 random steps
    first. (CleanRL squashes log std with tanh into [-5, 2] where admpo clamps it: the one difference left.)"""
    return {
        "agent": {"actor_lr": 3e-4, "critic_lr": 1e-3, "alpha_lr": 1e-3, "alpha": 1.0, "auto_alpha": True,
                  "target_entropy": 0.0, "entropy_space": "env", "alpha_loss": "alpha", "actor_update_every": 2,
                  "actor_steps": 2, "target_update_every": 1, "actor_lr_schedule": "none", "batch_size": 256,
                  "hidden": [256, 256], "gamma": 0.99, "tau": 0.005},
        "train": {"utd": 1, "warmup_steps": 5000, "real_ratio": 1.0},
        "rollout": {"uncertainty": "none", "beta": 0.0},
    }


# Algorithms whose runs take their authors' published settings over the preset.
PUBLISHED = ("mopo", "mbpo", "sac")

# The training budget inside published settings; a preset with `budget: preset` (the quickstarts) keeps
# its own values of these.
BUDGET_KEYS = {"train": ("epochs", "steps_per_epoch", "rollout_freq", "total_steps", "warmup_steps",
                         "model_update_interval", "rollout_schedule"),
               "rollout": ("batch_size",), "eval": ("episodes",),
               "model": ("max_epochs", "steps_per_epoch")}


def published_settings(algo: str, task: str, setting: str) -> dict[str, dict[str, Any]]:
    """The settings a baseline's authors publish for a task (applied over an offline preset), or {}."""
    if algo == "mopo" and setting == "offline":
        return mopo_settings(task)
    if algo == "mbpo" and setting == "online":
        return mbpo_settings(env_of(task))
    if algo == "sac" and setting == "online":
        return sac_settings()
    return {}


def env_of(task: str) -> str:
    return next((e for e in ("halfcheetah", "hopper", "walker2d", "ant", "humanoid") if e in task), task)


def check_command(command: str, algo: str, setting: str, preset: str) -> None:
    """Refuse, in one line naming the command to use, settings that belong to another command."""
    from .errors import UserError

    if command == "train-off":
        if setting == "online":
            raise UserError(f"preset {preset or '(config)'} is an online task (train.setting=online): run it with "
                            f"`admpo train-on --preset {preset or '...'}`; train-off trains on a fixed dataset")
        a = ALGORITHMS[algo]
        if a.setting != "offline":
            raise UserError(f"train.algo={algo}: {a.label} is an online algorithm; run it with `admpo {a.command}`, "
                            "not train-off")
    if command == "train-on":
        if setting != "online":
            raise UserError(f"preset {preset or '(config)'} is an offline task (a fixed dataset): run it with "
                            f"`admpo train-off --preset {preset or '...'}`; train-on needs an online preset "
                            "(e.g. hopper-online)")
        if algo not in ("admpo", "mbpo", "sac"):
            raise UserError(f"train.algo={algo}: {ALGORITHMS[algo].label} trains offline; run it with "
                            f"`admpo {ALGORITHMS[algo].command}`")

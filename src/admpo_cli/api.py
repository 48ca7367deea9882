"""admpo as a library: the functions the commands run, for your own code.

    from admpo_cli import api

    run = api.fit_model("quickstart-hopper", run="runs/lib", overrides={"model.max_epochs": 5})
    model, data = run.model(), run.dataset()
    out = api.rollout(model, api.random_policy(data.act_dim), data, horizon=10, n_starts=256)   # Algorithm 1
    u = api.uncertainty(model, data, formula="paper", n_starts=256)                           # Eq. (4)
    env = run.env(beta=1.0)                                 # the model as a gymnasium.Env (ModelEnv)
    returns = api.evaluate_policy(run.policy(), "hopper", episodes=5)   # a trained run's policy, simulated

Every function here is the one the stages call (fit_model_stage, models.rollout.rollout, the uncertainty
quantifiers, evaluate.policy.evaluate), not a second implementation. The public names are `__all__`;
everything else in admpo is internal and may change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["Run", "load_run", "fit_model", "rollout", "uncertainty", "random_policy", "evaluate_policy",
           "ModelEnv"]

from .models.model_env import ModelEnv  # noqa: E402  (re-exported: the gymnasium env over a fitted model)

Policy = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Run:
    """A run directory: what the commands wrote there, read back."""

    path: Path

    @property
    def config(self):
        """The run's resolved configuration (config.Config)."""
        from .rundir import RunDir

        return RunDir.open(self.path).config()

    @property
    def summary(self) -> dict:
        """summary.json of a finished training run."""
        from .rundir import RunDir

        return RunDir.open(self.path).read_json("summary.json")

    @property
    def metrics(self):
        """metrics.csv as a pandas DataFrame (one row per evaluation)."""
        import pandas as pd

        return pd.read_csv(self.path / "metrics.csv")

    def dataset(self):
        """The run's dataset (data.dataset.Transitions), as its stages load it."""
        from .rundir import RunDir
        from .stages.fit import dataset_for_run

        return dataset_for_run(self.config, RunDir.open(self.path))

    def model(self, kind: str | None = None, device: torch.device | str = "cpu"):
        """The fitted dynamics model of `kind` (default: the run's), in eval mode."""
        from .rundir import RunDir
        from .stages.fit import require_model

        cfg, data = self.config, self.dataset()
        model = require_model(RunDir.open(self.path), kind or cfg.model.kind, cfg, data.obs_dim, data.act_dim)[0]
        return model.to(device).eval()

    def policy(self, deterministic: bool = True, device: torch.device | str = "cpu") -> Policy:
        """The trained actor as a function: observations (B, obs) -> actions (B, act) in [-1, 1]."""
        from .algos.policy_files import policy_fn

        return policy_fn(self.path / "policy" / "actor.pt", deterministic=deterministic, device=device)

    def env(self, kind: str | None = None, beta: float = 0.0, uncertainty: str = "auto",
            max_episode_steps: int = 1000, device: torch.device | str = "cpu") -> ModelEnv:
        """The run's fitted model as a gymnasium environment over its dataset's start windows, with the task's
        termination function and the penalty r - beta * U (uncertainty "auto": the model's own)."""
        from .envs.specs import spec_for
        from .registry import dropout_at_inference, uncertainty_for

        cfg, kind = self.config, kind or self.config.model.kind
        unc = uncertainty_for(kind, uncertainty)
        return ModelEnv(self.model(kind, device), self.dataset(), spec_for(cfg.data), beta=beta, uncertainty=unc,
                        max_episode_steps=max_episode_steps, device=device,
                        dropout=dropout_at_inference(cfg.model.dropout_at_inference, kind, unc))


def load_run(path: str | Path) -> Run:
    """A run directory written by any admpo command (or this module)."""
    from .errors import UserError

    if not (Path(path) / "config.yaml").exists():
        raise UserError(f"{path}: not an admpo run directory (no config.yaml)")
    return Run(Path(path))


def fit_model(preset: str | None = None, *, run: str | Path | None = None, dataset: str | None = None,
              kind: str | None = None, overrides: Mapping[str, Any] | None = None, seed: int = 0,
              device: str = "auto") -> Run:
    """Fit a dynamics model as `admpo fit-model` does: the preset's settings (or an existing run's), then
    `overrides` ({"model.m": 3, ...}: what --set takes); the run directory `run` (default: runs/<name>)."""
    from .config import resolve
    from .rundir import RunDir
    from .stages.fit import fit_model_stage
    from .stages.setup import start_run

    base = RunDir.open(run).config() if run is not None and preset is None and (Path(run) / "config.yaml").exists() \
        else None
    sets = [f"{k}={v}" for k, v in (overrides or {}).items()]
    cfg = resolve(preset, None, sets, {"data.path": dataset, "run.seed": seed, "run.device": device,
                                       "model.kind": kind}, base=base)
    rd, dev = start_run(cfg, run)
    fit_model_stage(cfg, rd, dev, kind)
    return Run(rd.path)


def random_policy(act_dim: int, seed: int = 0) -> Policy:
    """Uniform actions in [-1, 1] (the random policy of Figure 4)."""
    from .agents.uniform import uniform_policy

    return uniform_policy(act_dim, torch.Generator().manual_seed(seed))


def rollout(model, policy: Policy, data, horizon: int, n_starts: int = 1000, seed: int = 0, uncertainty: str = "auto",
            beta: float = 0.0, k_mode: str = "batch", termination: str | Callable | None = None,
            device: torch.device | str = "cpu"):
    """Algorithm 1: `n_starts` real histories of m-1 steps drawn from `data`, `horizon` imagined steps under
    `policy` with random backtracking (one k per step for the batch, or per row with k_mode="row"), rewards
    r - beta * U. `termination`: an env name ("hopper") or a function of next states (default: none ends).
    Returns models.rollout.Rollout (obs, act, rew, raw_rew, next_obs, done, unc, rows, steps)."""
    from .data.dataset import sample_start_windows
    from .envs.specs import get_spec
    from .envs.termination import never, termination_fn
    from .models.rollout import rollout as algorithm_1
    from .registry import uncertainty_for

    model = model.to(device).eval()
    if isinstance(termination, str):
        termination = termination_fn(get_spec(termination))
    term = termination or never
    _, w = sample_start_windows(data, model.context, n_starts, np.random.default_rng(seed), device)
    gen = torch.Generator(device=device).manual_seed(seed)
    return algorithm_1(model, policy, w["hist_obs"], w["hist_act"], w["obs"], horizon, term,
                       uncertainty_for(model.kind, uncertainty), beta, k_mode, 4096, gen)


def uncertainty(model, data, formula: str = "paper", n_starts: int = 1000, seed: int = 0,
                actions: torch.Tensor | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """The model's uncertainty about the next step from `n_starts` real start windows of `data`, taking the
    data's own next actions (or `actions`, (n, act)): "paper" is Eq. (4), "authors" the formula of the
    authors' code; "max_aleatoric" and "ensemble_std" for the ensemble. Returns (n,)."""
    from .data.dataset import sample_start_windows
    from .models.uncertainty import quantify

    model = model.to(device).eval()
    rows, w = sample_start_windows(data, model.context, n_starts, np.random.default_rng(seed), device)
    if actions is None:  # the data's own next actions, at the start states
        actions = torch.as_tensor(data.actions, device=device)[rows]
    stepper = model.stepper()
    with torch.no_grad():
        stepper.start(w["hist_obs"], w["hist_act"])
        mean, var = stepper.step(w["obs"], actions)
    return quantify(formula, mean, var, model.obs_dim)


def evaluate_policy(policy: Policy, env: str, episodes: int = 10, seed: int = 0, max_steps: int = 1000,
                    layout: str = "d4rl", device: torch.device | str = "cpu") -> np.ndarray:
    """Returns of `episodes` deterministic episodes of `policy` in the real simulator (env i seeded seed + i)."""
    from .envs.specs import get_spec
    from .evaluate.policy import evaluate

    return evaluate(policy, get_spec(env, layout), episodes, seed, max_steps, device)

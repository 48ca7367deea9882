"""What every training loop does around its algorithm, in one place: evaluate the policy in the simulator (scored
with the run's reference returns), write the policy file, finish with summary.json. The built-in loops and
plugin loops (admpo_cli.extend) call these."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..config import Config
from ..data.scores import run_reference
from ..envs.specs import spec_for
from ..evaluate.policy import evaluation_row
from ..rundir import RunDir
from .policy_files import save_policy
from .summary import read_rows, write_summary


def evaluate(cfg: Config, run: RunDir, act: Callable[[torch.Tensor], torch.Tensor], position: int,
             device: torch.device | str = "cpu") -> dict[str, Any]:
    """cfg.eval.episodes deterministic episodes of `act` (observations -> actions in [-1, 1]) in the task's
    simulator, seeded by the run's seed and `position` (the metrics row's step), scored with the run's reference:
    return_mean, return_std, score_mean, score_std, ..."""
    return evaluation_row(act, spec_for(cfg.data), cfg.eval.episodes, cfg.run.seed, position, run_reference(cfg, run),
                          cfg.eval.max_episode_steps, device)


def write_policy(cfg: Config, run: RunDir, actor, obs_dim: int, act_dim: int, name: str = "actor") -> None:
    """policy/NAME.pt: a TanhGaussianActor of cfg.agent.hidden, as `admpo eval-policy` and `export` read it."""
    save_policy(run, actor, obs_dim, act_dim, cfg.agent.hidden, cfg.data.task, cfg.train.algo, name=name)


def finish(cfg: Config, run: RunDir, model_kind: str | None, extra: dict[str, Any]) -> dict:
    """summary.json from the run's metrics.csv (final score: the mean of the last cfg.eval.final_window
    evaluations), its label and `extra` figures; returns it."""
    return write_summary(run, cfg, cfg.train.algo, model_kind, read_rows(run.file("metrics.csv")),
                         run_reference(cfg, run), extra)

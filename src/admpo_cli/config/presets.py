"""The preset catalogue (presets/*.yaml) and each preset's named reduced budgets."""

from __future__ import annotations

import functools
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from .overrides import _closest, apply_mapping
from .schema import Config, DataConfig, ModelConfig, RolloutConfig


def _preset_dirs() -> list[Path]:
    dirs = [Path(str(resources.files("admpo_cli") / "presets"))]
    # A source checkout also has the top-level presets/ folder (a link to the same files).
    return [d for d in dirs if d.is_dir()]


def preset_paths() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in _preset_dirs():
        for p in sorted(d.glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


# libyaml's loader where PyYAML was built with it (~10x the pure-Python one: `presets list` reads 27 files)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, what: str = "config file") -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{what} {path}: no such file")
    try:
        data = yaml.load(path.read_text(), Loader=_LOADER)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise UserError(f"{what} {path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{what} {path}: expected a mapping of sections at the top level")
    return data


def load_preset(name: str) -> Config:
    presets = preset_paths()
    if name not in presets:
        raise UserError(f"unknown preset '{name}'{_closest(name, list(presets))}; see `admpo presets list`")
    mapping = _preset_file(name)
    cfg = apply_mapping(Config(), {k: v for k, v in mapping.items() if k not in PRESET_NOTES}, f"preset {name}")
    return replace(cfg, preset=name)


@functools.cache
def _preset_file(name: str) -> dict[str, Any]:
    """A shipped preset's YAML, read once per process (do not modify the mapping)."""
    return read_yaml(preset_paths()[name], "preset")


# The training budget inside an algorithm's published settings; a preset with `budget: preset` (the
# quickstarts) keeps its own values of these.
BUDGET_KEYS = {"train": ("epochs", "steps_per_epoch", "rollout_freq", "total_steps", "warmup_steps",
                         "model_update_interval", "rollout_schedule"),
               "rollout": ("batch_size",), "eval": ("episodes",),
               "model": ("max_epochs", "steps_per_epoch")}

# Top-level preset keys that are notes rather than config: a description, and `budget: preset` on the
# quickstart presets (their small training budget wins over a baseline's published one).
PRESET_NOTES = ("description", "budget", "budgets")


def preset_keeps_budget(name: str | None) -> bool:
    return bool(name) and _preset_file(name).get("budget") == "preset"


def preset_columns(name: str) -> tuple[str, int, int, float]:
    """(benchmark, m, H, beta) as the preset's file says them (defaults where it does not), for `presets list`:
    read, not resolved, so that listing loads no model or algorithm module."""
    raw = _preset_file(name)
    get = lambda section, key, default: (raw.get(section) or {}).get(key, default)  # noqa: E731
    return (str(get("data", "benchmark", DataConfig.benchmark)), int(get("model", "m", ModelConfig.m)),
            int(get("rollout", "horizon", RolloutConfig.horizon)), float(get("rollout", "beta", RolloutConfig.beta)))


def preset_description(name: str) -> str:
    return str(_preset_file(name).get("description", ""))


def preset_budgets(name: str | None) -> dict[str, dict[str, Any]]:
    """The named reduced budgets a preset offers ({name: {"description": .., section: {key: value}}})."""
    if not name:
        return {}
    budgets = _preset_file(name).get("budgets") or {}
    if not isinstance(budgets, dict):
        raise UserError(f"preset {name}: `budgets` must be a mapping of budget names")
    return budgets


def budget_settings(preset: str | None, budget: str) -> dict[str, Any]:
    """A budget's {section: {key: value}} changes, or a one-line error naming the budgets there are."""
    offered = preset_budgets(preset)
    if budget not in offered:
        names = ", ".join(offered) or "none"
        raise UserError(f"--budget {budget}: preset {preset or '(none)'} offers no budget of that name "
                        f"(budgets: {names}){_closest(budget, list(offered)) if offered else ''}")
    return {k: v for k, v in offered[budget].items() if k != "description"}

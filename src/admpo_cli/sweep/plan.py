"""A sweep's grid expanded into runs: presets x algorithms x grid points x seeds, each with its resolved
config and its run directory (named by config.run_name, the rule single runs follow, with the grid keys
spelled out)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import registry
from ..config import Config, resolve, run_name, to_dict
from ..errors import UserError


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: what it varies, the command it is, its directory and resolved config."""

    preset: str
    algo: str
    seed: int
    point: tuple[tuple[str, str], ...]  # the grid point: (key, value) pairs
    command: str  # train-off | train-on
    path: Path
    config: Config

    def name_in(self, out: Path) -> str:
        """The run directory as the study lists it: relative to the study folder when inside it."""
        return str(self.path.relative_to(out) if self.path.is_relative_to(out) else self.path)

    def to_dict(self) -> dict[str, Any]:
        """What a worker needs (plain data: it crosses process and machine boundaries)."""
        return {"preset": self.preset, "algo": self.algo, "seed": self.seed, "point": [list(p) for p in self.point],
                "command": self.command, "path": str(self.path), "config": to_dict(self.config)}


def parse_seeds(text: str) -> list[int]:
    """"0-4" -> 0..4; "0,3,7"; "2". One line naming the option on anything else."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds += list(range(a, b + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise UserError(f"--seeds: expected a range like 0-4 or a list like 0,1,5; got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds: {text!r} names a seed twice")
    return seeds


def parse_list(text: str | None, option: str) -> list[str]:
    items = [x.strip() for x in (text or "").split(",") if x.strip()]
    if not items:
        raise UserError(f"{option}: expected a comma-separated list, e.g. {option} a,b")
    if len(set(items)) != len(items):
        raise UserError(f"{option}: {text!r} names an entry twice")
    return items


def parse_grid(entries: list[str] | None) -> dict[str, list[str]]:
    """["model.m=1,2,3", ...] -> {"model.m": ["1", "2", "3"]}; keys are checked when the configs resolve."""
    grid: dict[str, list[str]] = {}
    for e in entries or []:
        key, sep, values = e.partition("=")
        key = key.strip()
        if not sep or "." not in key or not values.strip():
            raise UserError(f"--grid {e!r}: expected section.key=v1,v2,... (e.g. --grid model.m=1,2,5)")
        if key in grid:
            raise UserError(f"--grid: {key} given twice")
        grid[key] = parse_list(values, f"--grid {key}")
    return grid


def command_for(cfg: Config) -> str:
    return "train-on" if cfg.train.setting == "online" else "train-off"


def plan_sweep(presets: list[str], algos: list[str], seeds: list[int], grid: dict[str, list[str]],
               sets: list[str] | None, config: str | None, dataset: str | None, device: str | None,
               out: Path, budget: str | None = None) -> tuple[list[RunSpec], list[str]]:
    """Every run of the grid, in a stable order (preset, algorithm, grid point, seed), and the preset x
    algorithm pairs left out because the algorithm belongs to the other setting (sac on an offline preset,
    mopo on an online one). Refuses, before anything runs, an algorithm no preset can take and a grid key
    or value the config does not know."""
    for a in algos:
        if a not in registry.ALGORITHMS.names():
            registry.algorithm(a, where="--algos")  # one line naming the registered algorithms
    keys = list(grid)
    runs: list[RunSpec] = []
    skipped: dict[tuple[str, str], str] = {}
    for preset, algo in itertools.product(presets, algos):
        for values in itertools.product(*(grid[k] for k in keys)):
            if (preset, algo) in skipped:
                break
            point = tuple(zip(keys, values, strict=True))
            for seed in seeds:
                cfg = resolve(preset, config, list(sets or []) + [f"{k}={v}" for k, v in point],
                              {"train.algo": algo, "run.seed": seed, "data.path": dataset, "run.device": device,
                               "run.root": str(out)}, budget=budget)
                command = command_for(cfg)
                try:
                    registry.check_command(command, algo, cfg.train.setting, preset)
                except UserError as e:
                    skipped[(preset, algo)] = str(e)
                    break
                runs.append(RunSpec(preset, algo, seed, point, command, out / run_name(cfg, tuple(keys)), cfg))
    for algo in algos:
        if not any(r.algo == algo for r in runs):
            reason = next(v for (p, a), v in skipped.items() if a == algo)
            raise UserError(f"sweep: --algos {algo} runs on none of the presets ({reason})")
    paths = [r.path for r in runs]
    if len(set(paths)) != len(paths):
        raise UserError("sweep: two runs of the grid resolve to the same settings (a grid value equal to another?)")
    return runs, [f"{p} x {a}" for p, a in skipped]

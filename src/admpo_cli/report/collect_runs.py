"""Find run directories and read what they wrote: the report never recomputes a result."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ..errors import UserError
from ..registry import variant_label
from ..rundir import RunDir


@dataclass
class RunRecord:
    path: Path
    task: str
    variant: str
    seed: int
    status: str
    summary: dict | None
    metrics: pd.DataFrame | None
    files: dict[str, Path] = field(default_factory=dict)
    label: str = ""  # the algorithm's label alone; `variant` adds the grid point of a sweep
    point: dict[str, str] = field(default_factory=dict)  # the sweep's grid point (study.yaml), if any
    dataset: dict | None = None  # dataset.json: source and fingerprint
    meta: dict = field(default_factory=dict)  # meta.json: versions, git revision

    @property
    def complete(self) -> bool:
        """Judged by the training stage alone: a failed evaluation later does not drop a trained run."""
        return self.summary is not None and self.status == "done"


def find_runs(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise UserError(f"{p}: no such run directory or folder")
        if (p / "config.yaml").exists():
            found.append(p)
        else:
            inside = sorted(c.parent for c in p.rglob("config.yaml"))
            if not inside:
                raise UserError(f"{p}: not a run directory and no run directories (folders with config.yaml) "
                                "inside it")
            found += inside
    unique = list(dict.fromkeys(found))
    if not unique:
        raise UserError(f"no run directories (folders with config.yaml) under {', '.join(map(str, paths))}")
    return unique


def variant_name(summary: dict | None, algo_cfg: str, model_cfg: str, budget_cfg: str = "",
                 modified: tuple[str, ...] = ()) -> str:
    """The label a run is reported under (registry.variant_label): the algorithm's name, with an ablation
    named as one where the model or uncertainty is not the algorithm's own, "(reduced budget: NAME)" where the
    run used a named reduced budget, and "(modified: KEYS)" for the protocol keys it changed, so that it is never
    read as (or pooled with) the paper's protocol."""
    s = summary or {}
    algo = s.get("algo") or algo_cfg
    return variant_label(algo, s.get("model") or model_cfg, s.get("uncertainty"), s.get("published_setting", True),
                         s.get("setting", "offline"), s.get("budget", budget_cfg) or "", modified)


def study_points(paths: list[Path]) -> tuple[dict[Path, dict[str, str]], dict[str, list[str]]]:
    """The grid point of every run listed in a study.yaml among `paths` (written by `admpo sweep`), and the
    studies' grids."""
    points: dict[Path, dict[str, str]] = {}
    grid: dict[str, list[str]] = {}
    for p in paths:
        f = Path(p) / "study.yaml"
        if not f.exists():
            continue
        try:
            doc = yaml.safe_load(f.read_text()) or {}
        except yaml.YAMLError:
            raise UserError(f"{f}: not valid YAML") from None
        for key, values in ((doc.get("study") or {}).get("grid") or {}).items():
            grid.setdefault(key, [])
            grid[key] += [str(v) for v in values if str(v) not in grid[key]]
        for r in doc.get("runs") or []:
            points[(Path(p) / r["path"]).resolve()] = {k: str(v) for k, v in (r.get("grid") or {}).items()}
    return points, grid


def _json(p: Path) -> dict | None:
    try:
        return json.loads(p.read_text()) if p.exists() else None
    except json.JSONDecodeError:
        return None


def read_run(path: Path, point: dict[str, str] | None = None, pool_modified: bool = False) -> RunRecord:
    rd = RunDir.open(path)
    cfg = rd.config()
    summary = json.loads(rd.file("summary.json").read_text()) if rd.file("summary.json").exists() else None
    metrics = pd.read_csv(rd.file("metrics.csv")) if rd.file("metrics.csv").exists() else None
    files = {name: rd.file(name) for name in ("compounding.csv", "compounding.png", "uncertainty.json",
                                               "uncertainty.png") if rd.file(name).exists()}
    point = point or {}
    # the keys the run changed from its protocol, less a sweep's grid keys (the variant names those itself);
    # pool_modified (report --pool-modified) reports a modified run with the protocol runs of its label
    recorded = (summary or {}).get("modified", list(cfg.modified))
    modified = () if pool_modified else tuple(k for k in recorded if k not in point)
    label = variant_name(summary, cfg.train.algo, cfg.model.kind, cfg.budget, modified)
    variant = " ".join([label, *(f"{k.split('.')[-1]}={v}" for k, v in point.items())])
    return RunRecord(path, cfg.data.task, variant, cfg.run.seed, rd.training_status() or "not started", summary,
                     metrics, files, label, point, _json(rd.file("dataset.json")), _json(rd.file("meta.json")) or {})

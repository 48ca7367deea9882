"""Find run directories and read what they wrote: the report never recomputes a result."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import UserError
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

    @property
    def complete(self) -> bool:
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
            found += sorted(c.parent for c in p.rglob("config.yaml"))
    unique = list(dict.fromkeys(found))
    if not unique:
        raise UserError(f"no run directories (folders with config.yaml) under {', '.join(map(str, paths))}")
    return unique


_DEFAULT_UNC = {"admpo": "code", "mopo": "max_aleatoric"}
_DEFAULT_MODEL = {"admpo": "adm", "mopo": "ensemble"}


def variant_name(summary: dict | None, algo_cfg: str, model_cfg: str) -> str:
    """algo, plus the model and uncertainty where they differ from the algorithm's defaults."""
    algo = (summary or {}).get("algo") or algo_cfg
    name = algo
    model = (summary or {}).get("model") or (model_cfg if algo in _DEFAULT_MODEL else None)
    if model and algo in _DEFAULT_MODEL and model != _DEFAULT_MODEL[algo]:
        name += f"[{model}]"
    unc = (summary or {}).get("uncertainty")
    if unc and algo in _DEFAULT_UNC and unc != _DEFAULT_UNC[algo]:
        name += f"[{unc}]"
    return name


def read_run(path: Path) -> RunRecord:
    rd = RunDir.open(path)
    cfg = rd.config()
    summary = json.loads(rd.file("summary.json").read_text()) if rd.file("summary.json").exists() else None
    metrics = pd.read_csv(rd.file("metrics.csv")) if rd.file("metrics.csv").exists() else None
    files = {name: rd.file(name) for name in ("compounding.csv", "compounding.png", "uncertainty.json",
                                               "uncertainty.png") if rd.file(name).exists()}
    return RunRecord(path, cfg.data.task, variant_name(summary, cfg.train.algo, cfg.model.kind), cfg.run.seed,
                     rd.status(), summary, metrics, files)

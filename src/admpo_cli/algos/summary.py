"""summary.json: the final figures of a training run, which `admpo report` reads."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from ..config import Config, fingerprint
from ..data.scores import Reference
from ..files import atomic_write_json
from ..registry import variant_label
from ..rundir import RunDir


def write_summary(run: RunDir, cfg: Config, algo: str, model_kind: str | None, rows: list[dict],
                  ref: Reference | None, extra: dict) -> dict:
    window = rows[-cfg.eval.final_window :]

    def mean_of(key: str):
        vals = [float(r[key]) for r in window if r.get(key) not in (None, "")]
        return float(np.mean(vals)) if vals else None

    scored = [r for r in rows if r.get("score_mean") not in (None, "")]
    best = max(scored, key=lambda r: float(r["score_mean"])) if scored else None
    summary = {
        "task": cfg.data.task,
        "preset": cfg.preset,
        "algo": algo,
        "label": variant_label(algo, model_kind, extra.get("uncertainty"), extra.get("published_setting", True),
                               cfg.train.setting, cfg.budget, cfg.modified),
        # the named reduced budget the run used ("" = the preset's full protocol)
        "budget": cfg.budget,
        # the protocol keys the run changed (--config, --set, flags); [] = the preset's protocol at its budget
        "modified": list(cfg.modified),
        "setting": cfg.train.setting,
        "model": model_kind,
        "fingerprint": fingerprint(cfg),
        "seed": cfg.run.seed,
        "evaluations": len(rows),
        "final_window": len(window),
        "final_score": mean_of("score_mean"),
        "final_return": mean_of("return_mean"),
        "best_score": float(best["score_mean"]) if best else None,
        "best_return": max((float(r["return_mean"]) for r in rows), default=None),
        "reference": None if ref is None else {"random": ref.random, "expert": ref.expert, "source": ref.source},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
    atomic_write_json(run.file("summary.json"), summary)
    return summary


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))

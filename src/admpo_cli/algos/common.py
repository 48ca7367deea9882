"""Pieces shared by the training loops: RNG capture, policy export, summaries."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch

from ..agents.nets import TanhGaussianActor
from ..algorithms import variant_label
from ..config import Config, fingerprint
from ..data.scores import Reference
from ..errors import UserError
from ..rundir import RunDir, atomic_torch_save, atomic_write_json, torch_load


def rng_state(gen: torch.Generator) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # numpy's MT19937 key as a tensor: checkpoints load with weights_only=True (no numpy pickles)
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": repr(random.getstate()),
        "gen": gen.get_state(),
    }


def set_rng_state(sd: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(sd["torch"])
    if torch.cuda.is_available() and sd.get("cuda"):
        torch.cuda.set_rng_state_all(sd["cuda"])
    np.random.set_state(("MT19937", sd["numpy"].numpy().astype(np.uint32), sd["numpy_pos"], 0, 0.0))
    import ast

    random.setstate(ast.literal_eval(sd["python"]))
    gen.set_state(sd["gen"])


def save_policy(run: RunDir, actor: TanhGaussianActor, obs_dim: int, act_dim: int, hidden, task: str,
                algo: str, name: str = "actor") -> Path:
    path = run.file("policy", f"{name}.pt")
    atomic_torch_save(path, {"obs_dim": obs_dim, "act_dim": act_dim, "hidden": list(hidden), "task": task,
                             "algo": algo,
                             "state_dict": {k: v.detach().cpu() for k, v in actor.state_dict().items()}})
    return path


def load_policy(path: Path, obs_dim: int | None = None) -> tuple[TanhGaussianActor, dict]:
    payload = torch_load(path)
    if not isinstance(payload, dict) or "state_dict" not in payload or "obs_dim" not in payload:
        raise UserError(f"{path}: not an admpo policy file (expected policy/actor.pt of a run)")
    if obs_dim is not None and payload["obs_dim"] != obs_dim:
        raise UserError(f"{path}: policy takes {payload['obs_dim']}-dim observations, expected {obs_dim}")
    actor = TanhGaussianActor(payload["obs_dim"], payload["act_dim"], tuple(payload["hidden"]))
    actor.load_state_dict(payload["state_dict"])
    return actor.eval(), payload


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
        "label": variant_label(algo, model_kind, extra.get("uncertainty"), extra.get("published_setting", True)),
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
    import csv

    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))

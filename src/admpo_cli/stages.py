"""Stages as functions of (config, run directory): the CLI calls them, and so do the tests."""

from __future__ import annotations

from typing import Any

import torch

from .config import Config
from .data.dataset import Transitions
from .data.load import load_dataset
from .errors import UserError
from .models.factory import build_model, load_model, model_path, save_model
from .models.fit import fit
from .rundir import RunDir, atomic_write_json
from .ui import progress


def dataset_for_run(cfg: Config, run: RunDir) -> Transitions:
    """Load the run's dataset and record (or check) its fingerprint in dataset.json."""
    with progress() as bar:
        task = bar.add_task("collecting data", total=cfg.data.collect_steps, info="")
        data, info = load_dataset(cfg, progress=lambda n: bar.advance(task, n))
    p = run.file("dataset.json")
    if p.exists():
        old = run.read_json("dataset.json")
        if old.get("fingerprint") != info["fingerprint"]:
            raise UserError(
                f"{run.path}: dataset differs from the one this run was made with "
                f"({old.get('source')}); use another --run"
            )
    info["obs_mean"] = data.observations.mean(0).tolist()
    info["obs_std"] = data.observations.std(0).tolist()
    atomic_write_json(p, info)
    return data


def fit_model_stage(cfg: Config, run: RunDir, device: torch.device, kind: str | None = None,
                    data: Transitions | None = None) -> dict[str, Any]:
    kind = kind or cfg.model.kind
    data = data if data is not None else dataset_for_run(cfg, run)
    model = build_model(kind, data.obs_dim, data.act_dim, cfg.model)
    path = model_path(run.path, kind)
    if cfg.model.warm_start and path.exists():
        old, _ = load_model(path, cfg.data.task, data.obs_dim, data.act_dim)
        model.load_state_dict(old.state_dict())
    with progress() as bar:
        task = bar.add_task(f"fit {kind}", total=cfg.model.max_epochs, info="")

        def on_epoch(row: dict) -> None:
            bar.update(task, advance=1, info=f"loss {row['train_loss']:.3f}  hold-out {row['holdout_mse']:.4f}")

        result = fit(model, data, cfg.model, device, cfg.run.seed, run.file("model", "fit.csv"), on_epoch,
                     fit_normalizer=not (cfg.model.warm_start and path.exists()))
    summary = {
        "kind": kind,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "holdout_mse_per_k": result.holdout_mse,
        "final_train_loss": result.train_loss,
        "gradient_steps": result.steps,
        "seconds": round(result.seconds, 2),
        "steps_per_second": round(result.steps / max(result.seconds, 1e-9), 2),
        "holdout_transitions": result.holdout_transitions,
        "first_holdout_mse": result.history[0]["holdout_mse"] if result.history else None,
    }
    save_model(path, model.cpu(), cfg.model, cfg.data.task, {"fit": summary})
    atomic_write_json(run.file("model", f"{kind}.json"), summary)
    return summary


def require_model(run: RunDir, kind: str, cfg: Config, obs_dim: int, act_dim: int):
    p = model_path(run.path, kind)
    if not p.exists():
        raise UserError(
            f"{run.path}: no fitted {kind} model (model/{kind}.pt); run "
            f"`admpo fit-model --run {run.path} --model {kind}` first"
        )
    return load_model(p, cfg.data.task, obs_dim, act_dim)


"""What a stage reads from a run: its dataset (collected once where the preset says so) and its fitted
dynamics models; `fit_model_stage` fits one (`admpo fit-model`, and train-off when the run has none)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from .. import registry
from ..config import Config, model_fingerprint
from ..data.dataset import Transitions
from ..data.load import default_collect_path, load_dataset
from ..errors import UserError
from ..events import SILENT, Progress, log
from ..files import atomic_write_json, torch_load
from ..models.factory import build_model, load_model, model_path, save_model
from ..models.fit import fit
from ..rundir import RunDir


def dataset_for_run(cfg: Config, run: RunDir, progress: Progress = SILENT) -> Transitions:
    """Load the run's dataset and record (or check) its fingerprint in dataset.json."""
    if cfg.data.benchmark == "collect" and not cfg.data.path and not default_collect_path(cfg.data).exists():
        with progress.task(f"collecting {default_collect_path(cfg.data)}", total=cfg.data.collect_steps) as t:
            data, info = load_dataset(cfg, progress=lambda n: t.update(advance=n))
    else:
        data, info = load_dataset(cfg)
    p = run.file("dataset.json")
    if p.exists():
        old = run.read_json("dataset.json")
        if old.get("fingerprint") != info["fingerprint"]:
            raise UserError(
                f"{run.path}: dataset differs from the one this run was made with "
                f"({old.get('source')}); use another --run"
            )
    if data.dropped_nonfinite:
        log.warning(f"{info['source']}: dropped {data.dropped_nonfinite} rows with NaN/inf (data.nonfinite=drop)")
    info["obs_mean"] = data.observations.mean(0).tolist()
    info["obs_std"] = data.observations.std(0).tolist()
    atomic_write_json(p, info)
    return data


def fit_model_stage(cfg: Config, run: RunDir, device: torch.device, kind: str | None = None,
                    data: Transitions | None = None, progress: Progress = SILENT) -> dict[str, Any]:
    """Fit a dynamics model of `kind` (default: the run's) on the run's dataset: model/<kind>.pt, .json and
    model/fit.csv."""
    kind = kind or cfg.model.kind
    with run.stage(f"fit-model-{kind}", cfg, str(device)):
        return _fit(cfg, run, device, kind, data, progress)


def _fit(cfg: Config, run: RunDir, device: torch.device, kind: str, data: Transitions | None,
         progress: Progress) -> dict[str, Any]:
    data = data if data is not None else dataset_for_run(cfg, run, progress)
    model = build_model(kind, data.obs_dim, data.act_dim, cfg.model)
    path = model_path(run.path, kind)
    if cfg.model.warm_start and path.exists():
        old, _ = load_model(path, cfg.data.task, data.obs_dim, data.act_dim)
        model.load_state_dict(old.state_dict())
    with progress.task(f"fit {kind}", total=cfg.model.max_epochs or None) as t:

        def on_epoch(row: dict) -> None:
            t.update(advance=1, info=f"loss {row['train_loss']:.3f}  hold-out {row['holdout_mse']:.4f}")

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
        # how the fit ran: k per minibatch, minibatches an epoch, how epochs were scored (model.validation)
        "k_sampling": cfg.model.k_sampling, "steps_per_epoch": result.steps // max(result.epochs, 1),
        "validation": result.validation,
    }
    save_model(path, model.cpu(), replace(cfg.model, kind=kind), cfg.data.task, {"fit": summary},
               fingerprint=model_fingerprint(cfg, kind))
    atomic_write_json(run.file("model", f"{kind}.json"), summary)
    return summary


def model_for_training(cfg: Config, run: RunDir, device: torch.device, kind: str, data: Transitions,
                       force: bool = False, progress: Progress = SILENT):
    """The run's fitted model of this kind if it was fitted with these settings, else fit it now
    (Algorithm 3, line 1). A model fitted with other settings is refused (`force`: refitted)."""
    path = model_path(run.path, kind)
    want = model_fingerprint(cfg, kind)
    have = (torch_load(path).get("fingerprint") or "none") if path.exists() else None
    if have is not None and have != want and not force:
        raise UserError(f"{path}: fitted with other settings than this run's (model fingerprint {have}, "
                        f"this run {want}); pass --force to refit it, or use another --run")
    if have != want:
        fit_model_stage(replace(cfg, model=replace(cfg.model, kind=kind)), run, device, kind, data, progress)
    return require_model(run, kind, cfg, data.obs_dim, data.act_dim)


def require_model(run: RunDir, kind: str, cfg: Config, obs_dim: int, act_dim: int):
    p = model_path(run.path, kind)
    if not p.exists():
        raise UserError(
            f"{run.path}: no fitted {kind} model (model/{kind}.pt); run "
            f"`admpo fit-model --run {run.path} --model {kind}` first"
        )
    return load_model(p, cfg.data.task, obs_dim, act_dim)


def fitted_kinds(run: RunDir) -> list[str]:
    return [k for k in registry.MODELS.names() if model_path(run.path, k).exists()]


def require_fitted(run: RunDir, kinds: list[str] | None) -> list[str]:
    have = fitted_kinds(run)
    if not have:
        raise UserError(f"{run.path}: no fitted model; run `admpo fit-model --run {run.path}` first")
    kinds = kinds or have
    for k in kinds:
        if k not in have:
            raise UserError(f"{run.path}: no fitted {k} model; run `admpo fit-model --run {run.path} --model {k}`")
    return kinds

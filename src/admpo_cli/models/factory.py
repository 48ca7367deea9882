"""Build, save and load dynamics models by kind."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from ..config import ModelConfig
from ..errors import UserError
from ..rundir import atomic_torch_save, torch_load
from .adm import ADM
from .base import DynamicsModel
from .bootrnn import BootRNN
from .ensemble import Ensemble

KINDS = ("adm", "ensemble", "bootrnn")


def build_model(kind: str, obs_dim: int, act_dim: int, cfg: ModelConfig) -> DynamicsModel:
    if kind == "adm":
        return ADM(obs_dim, act_dim, cfg.m, cfg.hidden, cfg.layers, cfg.head_blocks, cfg.dropout)
    if kind == "bootrnn":
        return BootRNN(obs_dim, act_dim, cfg.m, cfg.hidden, cfg.layers, cfg.head_blocks, cfg.dropout)
    if kind == "ensemble":
        return Ensemble(obs_dim, act_dim, cfg.ensemble_size, cfg.elites, cfg.ensemble_hidden,
                        cfg.ensemble_layers, cfg.ensemble_weight_decay)
    raise UserError(f"--model: expected one of {', '.join(KINDS)}, got {kind!r}")


def model_path(run_path: Path, kind: str) -> Path:
    return Path(run_path) / "model" / f"{kind}.pt"


def save_model(path: Path, model: DynamicsModel, cfg: ModelConfig, task: str, extra: dict | None = None,
               fingerprint: str = "") -> None:
    """fingerprint: config.model_fingerprint of the settings it was fitted with (reuse checks it)."""
    from dataclasses import asdict

    payload = {
        "kind": model.kind,
        "task": task,
        "fingerprint": fingerprint,
        "obs_dim": model.obs_dim,
        "act_dim": model.act_dim,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    atomic_torch_save(path, payload)


def load_model(path: Path, task: str | None = None, obs_dim: int | None = None,
               act_dim: int | None = None) -> tuple[DynamicsModel, dict]:
    """Load with weights_only=True; refuse a model fitted for another task or with other dimensions."""
    payload = torch_load(path)
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise UserError(f"{path}: not an admpo model file")
    if task is not None and payload["task"] != task:
        raise UserError(f"{path}: model was fitted for task '{payload['task']}', not '{task}'")
    for name, want in (("obs_dim", obs_dim), ("act_dim", act_dim)):
        if want is not None and payload[name] != want:
            raise UserError(f"{path}: model has {name}={payload[name]}, expected {want}")
    cfg_fields = dict(payload["config"])
    cfg_fields["ensemble_weight_decay"] = tuple(cfg_fields.get("ensemble_weight_decay", ()))
    if isinstance(cfg_fields.get("dropout_at_inference"), bool):  # admpo < 0.2 stored a bool
        cfg_fields["dropout_at_inference"] = "on" if cfg_fields["dropout_at_inference"] else "off"
    known = {f.name for f in fields(ModelConfig)}
    cfg = ModelConfig(**{k: v for k, v in cfg_fields.items() if k in known})
    model = build_model(payload["kind"], payload["obs_dim"], payload["act_dim"], cfg)
    model.load_state_dict(payload["state_dict"])
    return model, payload

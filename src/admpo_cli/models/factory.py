"""Build, save and load dynamics models of any registered kind (registry.py)."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

from .. import registry
from ..config import ModelConfig
from ..errors import UserError
from ..files import atomic_torch_save, torch_load
from .base import DynamicsModel


def build_model(kind: str, obs_dim: int, act_dim: int, cfg: ModelConfig) -> DynamicsModel:
    """A fresh model of `kind` with the config's shared keys (m) and the kind's own settings."""
    return registry.model(kind, "--model").build(obs_dim, act_dim, cfg.m, cfg.settings(kind))


def model_path(run_path: Path, kind: str) -> Path:
    return Path(run_path) / "model" / f"{kind}.pt"


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def save_model(path: Path, model: DynamicsModel, cfg: ModelConfig, task: str, extra: dict | None = None,
               fingerprint: str = "") -> None:
    """fingerprint: config.model_fingerprint of the settings it was fitted with (reuse checks it). The file
    keeps the shared keys and the kind's resolved settings, flat."""
    shared = {k: _plain(v) for k, v in asdict(cfg).items() if k != "options"}
    own = {k: _plain(v) for k, v in asdict(cfg.settings(model.kind)).items()}
    payload = {
        "kind": model.kind,
        "task": task,
        "fingerprint": fingerprint,
        "obs_dim": model.obs_dim,
        "act_dim": model.act_dim,
        "config": {**shared, **own, "kind": model.kind},
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
    spec = registry.model(payload["kind"], str(path))
    saved = dict(payload["config"])
    own = {}
    for f in fields(spec.settings):
        if f.name in saved:
            v = saved[f.name]
            own[f.name] = tuple(v) if isinstance(v, list) else v
    model = spec.build(payload["obs_dim"], payload["act_dim"], int(saved.get("m", ModelConfig.m)),
                       spec.settings(**own))
    model.load_state_dict(payload["state_dict"])
    return model, payload

"""A run's policy on disk (policy/actor.pt): what `collect --policy`, the evaluations and exports load."""

from __future__ import annotations

from pathlib import Path

from ..agents.nets import TanhGaussianActor
from ..errors import UserError
from ..files import atomic_torch_save, torch_load
from ..rundir import RunDir


def save_policy(run: RunDir, actor: TanhGaussianActor, obs_dim: int, act_dim: int, hidden, task: str,
                algo: str, name: str = "actor") -> Path:
    path = run.file("policy", f"{name}.pt")
    atomic_torch_save(path, {"obs_dim": obs_dim, "act_dim": act_dim, "hidden": list(hidden), "task": task,
                             "algo": algo,
                             "log_std_bound": actor.log_std_bound,
                             "state_dict": {k: v.detach().cpu() for k, v in actor.state_dict().items()}})
    return path


def policy_fn(path: Path, obs_dim: int | None = None, deterministic: bool = True, device="cpu"):
    """A policy file's actor as a function: observations (B, obs) -> actions (B, act) in [-1, 1]."""
    actor = load_policy(path, obs_dim)[0].to(device)
    return lambda o: actor(o, deterministic=deterministic, with_logp=False)[0]


def load_policy(path: Path, obs_dim: int | None = None) -> tuple[TanhGaussianActor, dict]:
    payload = torch_load(path)
    if not isinstance(payload, dict) or "state_dict" not in payload or "obs_dim" not in payload:
        raise UserError(f"{path}: not an admpo policy file (expected policy/actor.pt of a run)")
    if obs_dim is not None and payload["obs_dim"] != obs_dim:
        raise UserError(f"{path}: policy takes {payload['obs_dim']}-dim observations, expected {obs_dim}")
    actor = TanhGaussianActor(payload["obs_dim"], payload["act_dim"], tuple(payload["hidden"]),
                              payload.get("log_std_bound", "clamp"))  # files before 0.2: clamp
    actor.load_state_dict(payload["state_dict"])
    return actor.eval(), payload

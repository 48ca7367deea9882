"""Offline -> online fine-tuning (`admpo train-on --init-from RUN`): what an online run takes over from a finished
train-off or train-bc run, and how.

Carried over, each recorded in the run's summary:
- the policy (policy/actor.pt, whatever algorithm trained it), with the architecture and log-std bound it has;
- an offline SAC run's critics, target critics and temperature (checkpoints/train.pt); the optimisers start
  fresh with the online run's learning rates;
- its dynamics model (model/<kind>.pt): the online run's re-fits continue it (warm start) on D_env;
- its dataset as the start of D_env (train.init_dataset: keep), or not (drop).

Before any update, the online run evaluates the carried policy with the source run's last evaluation's seeds
and settings (a metrics row at env step 0, equal to the source's last one), and its warm-up steps act with
that policy instead of uniformly at random.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .. import registry
from ..config import Config, env_of
from ..envs.specs import EnvSpec
from ..errors import UserError
from ..evaluate.policy import evaluation_row, position_of
from ..files import torch_load
from ..models.factory import load_model
from ..rundir import RunDir
from .policy_files import load_policy
from .summary import read_rows


@dataclass(frozen=True)
class Source:
    """A finished offline run that an online run starts from."""

    path: Path
    cfg: Config
    summary: dict
    actor: dict  # policy/actor.pt's payload
    evals: list[dict]  # its metrics.csv rows with an evaluation

    @property
    def last_eval(self) -> dict:
        return self.evals[-1]

    @property
    def model_file(self) -> Path | None:
        f = self.path / "model" / f"{self.cfg.model.kind}.pt"
        return f if self.summary.get("model") and f.exists() else None

    def agent_state(self) -> dict | None:
        """An offline SAC run's agent (critics, targets, temperature) from its last checkpoint; none for BC."""
        f = self.path / "checkpoints" / "train.pt"
        if not f.exists():
            return None
        return torch_load(f)["parts"].get("agent")


def open_source(path: str | Path) -> Source:
    """A finished train-off or train-bc run, or a one-line error naming what is missing."""
    path = Path(path)
    if not (path / "config.yaml").exists():
        raise UserError(f"--init-from {path}: not a run directory (no config.yaml)")
    run = RunDir.open(path)
    cfg = run.config()
    if cfg.train.setting != "offline":
        raise UserError(f"--init-from {path}: an {cfg.train.setting} run; fine-tuning starts from a train-off or "
                        "train-bc run")
    if not run.file("summary.json").exists() or run.training_status() != "done":
        raise UserError(f"--init-from {path}: the run has not finished training (no summary.json); "
                        f"finish it with `admpo resume {path}`")
    rows = [r for r in read_rows(run.file("metrics.csv")) if r.get("return_mean") not in (None, "")]
    if not rows or not run.file("policy", "actor.pt").exists():
        raise UserError(f"--init-from {path}: no evaluated policy (policy/actor.pt, metrics.csv)")
    actor = torch_load(run.file("policy", "actor.pt"))
    return Source(path, cfg, run.read_json("summary.json"), actor, rows)


def adopted_settings(source: Source) -> dict[str, Any]:
    """The online run's settings that must be the source's for its parts to load: the policy's architecture
    and log-std bound, the model's kind, m and own keys; re-fits that continue the carried model."""
    out: dict[str, Any] = {"agent.hidden": list(source.actor["hidden"]),
                           "agent.log_std_bound": source.actor.get("log_std_bound", "clamp")}
    if source.model_file is not None:
        saved = torch_load(source.model_file)["config"]
        spec = registry.model(saved["kind"], str(source.model_file))
        out.update({"model.kind": saved["kind"], "model.m": int(saved["m"]), "train.model_refit": "warm_start"})
        out.update({f"model.{f.name}": saved[f.name] for f in fields(spec.settings) if f.name in saved})
    return out


def check_compatible(source: Source, cfg: Config, spec: EnvSpec) -> None:
    if env_of(source.cfg.data.task) != env_of(cfg.data.task):
        raise UserError(f"--init-from {source.path}: trained on {source.cfg.data.task} "
                        f"({env_of(source.cfg.data.task)}), this run is {cfg.data.task} ({env_of(cfg.data.task)})")
    if source.actor["obs_dim"] != spec.obs_dim or source.actor["act_dim"] != spec.act_dim:
        raise UserError(f"--init-from {source.path}: its policy takes {source.actor['obs_dim']}-dim observations "
                        f"and {source.actor['act_dim']}-dim actions; this env has {spec.obs_dim} and {spec.act_dim}")


def carry_agent(source: Source, agent) -> list[str]:
    """The source's actor (and an offline SAC run's critics, targets and temperature) into the fresh online
    agent; returns what was carried."""
    actor, _ = load_policy(source.path / "policy" / "actor.pt")
    carried = ["policy"]
    sd = source.agent_state()
    if sd is not None and "critic" in sd and agent.backend == "fast":
        agent.critic.load_state_dict(sd["critic"])
        agent.critic_target.load_state_dict(sd["critic_target"])
        with torch.no_grad():
            agent.log_alpha.copy_(sd["log_alpha"])
        carried += ["critics", "alpha"]
    elif sd is not None and "qf1" in sd and agent.backend == "reference":
        for name in ("qf1", "qf2", "qf1_target", "qf2_target"):
            getattr(agent, name).load_state_dict(sd[name])
        with torch.no_grad():
            agent.log_alpha.copy_(sd["log_alpha"])
        carried += ["critics", "alpha"]
    elif sd is not None:
        raise UserError(f"--init-from {source.path}: its critics were trained by the other SAC backend; "
                        "pass --set agent.backend=" + ("reference" if "qf1" in sd else "fast"))
    agent.actor.load_state_dict(actor.state_dict())
    return carried


def carry_model(source: Source, spec: EnvSpec, device: torch.device):
    """The source's fitted model, for the online run's first re-fit to continue."""
    model, _ = load_model(source.model_file, None, spec.obs_dim, spec.act_dim)
    return model.to(device).eval()


def first_evaluation(source: Source, act, spec: EnvSpec, reference, device: torch.device) -> dict:
    """The carried policy evaluated as the source's last evaluation was: its seed, position, episodes, length."""
    e = source.cfg.eval
    return evaluation_row(act, spec, e.episodes, source.cfg.run.seed, position_of(source.last_eval,
                          source.cfg.train.algo), reference, e.max_episode_steps, device)


def record(source: Source, carried: list[str], cfg: Config) -> dict[str, Any]:
    """What summary.json says of the start (the report draws the source's curve before the online one)."""
    rows = source.evals
    x = "epoch" if rows[0].get("epoch") not in (None, "") else "step"
    return {"path": str(source.path), "label": source.summary.get("label", source.cfg.train.algo),
            "algo": source.cfg.train.algo, "task": source.cfg.data.task, "carried": carried,
            "dataset": cfg.train.init_dataset, "x": x,
            "return_curve": [(int(float(r[x])), float(r["return_mean"])) for r in rows]}

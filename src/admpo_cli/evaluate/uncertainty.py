"""Uncertainty vs true model error (paper Figure 4): imagined state-action pairs from three policies,
each model's uncertainty, and the error of its prediction against the simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import registry
from ..data.dataset import Transitions, sample_start_windows
from ..envs.oracle import SimulatorOracle
from ..envs.specs import EnvSpec
from ..envs.termination import termination_fn
from ..models.base import DynamicsModel
from ..models.rollout import rollout


def quantifiers(kind: str) -> tuple[str, ...]:
    """The uncertainties a model kind's registration says its steppers support."""
    return registry.model(kind).uncertainties


@torch.no_grad()
def imagined_pairs(model: DynamicsModel, data: Transitions, policy, spec: EnvSpec, n_starts: int,
                   horizon: int, seed: int, device: torch.device, k_mode: str = "row",
                   dropout_at_inference: bool = False) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Roll the policy out in the model; one row per imagined (s, a) with every quantifier of the model
    Also returns the pairs' states, actions and the model's predicted next states (the mean of the
    candidate each row was sampled from), for the simulator to score."""
    _, w = sample_start_windows(data, model.context, n_starts, np.random.default_rng(seed), device)
    gen = torch.Generator(device=device).manual_seed(seed)
    qs = quantifiers(model.kind)
    ro = rollout(model, policy, w["hist_obs"], w["hist_act"], w["obs"], horizon, termination_fn(spec), qs[0], 0.0,
                 k_mode, 4096, gen, dropout_at_inference, quantifiers=qs)
    out = {"step": ro.steps.cpu().numpy()}
    for q in qs:
        out[f"unc_{q}"] = ro.extra_unc[q].cpu().numpy()
    return (pd.DataFrame(out), ro.obs.cpu().numpy(), ro.act.cpu().numpy(),
            ro.pred_mean[:, : model.obs_dim].cpu().numpy())


def true_errors(oracle: SimulatorOracle, obs: np.ndarray, act: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """L2 distance between the model's predicted next state and the simulator's."""
    real, _, _ = oracle.step(obs, act)
    return np.linalg.norm(pred - real, axis=1)


def correlations(df: pd.DataFrame) -> dict:
    """Pearson and Spearman per model and quantifier, pooled over policies and per policy."""
    out: dict = {}
    for model, g in df.groupby("model", sort=False):
        out[model] = {}
        for q in quantifiers(model):
            col = f"unc_{q}"
            res = {"pooled": _corr(g[col], g["true_error"])}
            for pol, gp in g.groupby("policy", sort=False):
                res[pol] = _corr(gp[col], gp["true_error"])
            out[model][q] = res
    return out


def _corr(x: pd.Series, y: pd.Series) -> dict:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return {"pearson": None, "spearman": None, "n": int(len(x))}
    return {"pearson": float(np.corrcoef(x, y)[0, 1]),
            "spearman": float(np.corrcoef(x.rank(), y.rank())[0, 1]), "n": int(len(x))}

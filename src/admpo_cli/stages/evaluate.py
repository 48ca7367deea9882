"""The model measurements: compounding error (Figure 2) and uncertainty vs true error (Figure 4)."""

from __future__ import annotations

from typing import Any

import torch

from ..config import Config
from ..events import SILENT, Progress
from ..files import atomic_write_json, atomic_write_text
from ..registry import dropout_at_inference, uncertainty_for
from ..rundir import RunDir
from .fit import dataset_for_run, require_fitted, require_model


def _dropout(cfg: Config, kind: str) -> bool:
    return dropout_at_inference(cfg.model.dropout_at_inference, kind, uncertainty_for(kind, cfg.rollout.uncertainty))


def eval_compounding_stage(cfg: Config, run: RunDir, device: torch.device, kinds: list[str] | None = None,
                           horizon: int | str = 100, n_starts: int = 256, progress: Progress = SILENT,
                           overrides: list[str] | None = None):
    """Compounding error vs horizon of each fitted model on held-out real trajectories (Figure 2); `horizon`
    the largest one, or the CLI's text ('1..100')."""
    if isinstance(horizon, str):
        from ..evaluate.compounding import parse_horizons

        horizon = parse_horizons(horizon)
    with run.stage("eval-compounding", cfg, str(device), overrides):
        return _compounding(cfg, run, device, kinds, horizon, n_starts, progress)


def _compounding(cfg: Config, run: RunDir, device: torch.device, kinds: list[str] | None, horizon: int,
                 n_starts: int, progress: Progress):
    import pandas as pd

    from ..evaluate.compounding import compounding_curves, pick_starts
    from ..evaluate.plots import plot_compounding

    kinds = require_fitted(run, kinds)
    data = dataset_for_run(cfg, run, progress)
    models = {k: require_model(run, k, cfg, data.obs_dim, data.act_dim)[0].to(device).eval() for k in kinds}
    m = max(mdl.context for mdl in models.values())
    starts = pick_starts(data, m, n_starts, cfg.run.seed, cfg.model.holdout_ratio, cfg.model.holdout_max,
                         how=cfg.model.holdout)
    variants = []
    for k, mdl in models.items():
        variants += [(f"{k}{suffix}", mdl, fixed) for suffix, fixed in mdl.compounding_variants()]
    frames = []
    with progress.task("compounding error", total=len(variants)) as bar:
        for name, mdl, fixed in variants:
            rows = compounding_curves(mdl, data, starts, horizon, device, fixed, seed=cfg.run.seed,
                                      dropout_at_inference=_dropout(cfg, mdl.kind))
            frames.append(pd.DataFrame(rows).assign(model=name))
            bar.update(advance=1, info=name)
    df = pd.concat(frames, ignore_index=True)[["model", "horizon", "mse_mean", "ci_low", "ci_high", "n",
                                               "overflow_frac"]]
    atomic_write_text(run.file("compounding.csv"), df.to_csv(index=False))
    plot_compounding(df, run.file("compounding.png"), f"compounding error, {cfg.data.task}")
    return df


def eval_uncertainty_stage(cfg: Config, run: RunDir, device: torch.device, n_starts: int = 500,
                           horizon: int | None = None, progress: Progress = SILENT,
                           overrides: list[str] | None = None) -> dict[str, Any]:
    """Uncertainty vs true model error from the simulator, for random, behaviour and learned policies
    (Figure 4)."""
    with run.stage("eval-uncertainty", cfg, str(device), overrides):
        return _uncertainty(cfg, run, device, n_starts, horizon, progress)


def _policies(cfg: Config, run: RunDir, data, device: torch.device, progress: Progress) -> dict[str, Any]:
    """The policies whose imagined steps are measured: random, the behaviour policy (BC fitted on the run's data,
    kept in policy/bc.pt for later calls) and, where the run trained one, its learned policy."""
    from ..agents.bc import BC
    from ..agents.uniform import uniform_policy
    from ..algos.bc import behaviour_cloning
    from ..algos.policy_files import load_policy, save_policy

    gen = torch.Generator(device=device).manual_seed(cfg.run.seed)
    policies: dict[str, Any] = {
        "random": uniform_policy(data.act_dim, gen)}
    bc_path = run.file("policy", "bc.pt")
    if not bc_path.exists():
        bc, steps = BC(data.obs_dim, data.act_dim, cfg.agent.hidden, 1e-3, device), cfg.train.settings("bc").bc_steps
        with progress.task("fit behaviour policy (BC)", total=steps) as bar:
            behaviour_cloning(bc, torch.as_tensor(data.observations, device=device),
                              torch.as_tensor(data.actions, device=device), steps, 256, 100, gen,
                              lambda done, n, loss: bar.update(advance=n))
        save_policy(run, bc.actor, data.obs_dim, data.act_dim, cfg.agent.hidden, cfg.data.task, "bc", name="bc")
    bc_actor = load_policy(bc_path, data.obs_dim)[0].to(device)
    policies["behaviour"] = lambda o: bc_actor(o, with_logp=False)[0]
    learned = run.file("policy", "actor.pt")
    if learned.exists():
        actor, payload = load_policy(learned, data.obs_dim)
        if payload.get("algo") != "bc":
            actor = actor.to(device)
            policies["learned"] = lambda o: actor(o, with_logp=False)[0]
    return policies


def _uncertainty(cfg: Config, run: RunDir, device: torch.device, n_starts: int, horizon: int | None,
                 progress: Progress) -> dict[str, Any]:
    import pandas as pd

    from ..envs.oracle import SimulatorOracle
    from ..envs.specs import spec_for
    from ..evaluate.plots import plot_uncertainty
    from ..evaluate.uncertainty import correlations, imagined_pairs, quantifiers, true_errors

    kinds = require_fitted(run, None)
    data = dataset_for_run(cfg, run, progress)
    spec = spec_for(cfg.data)
    oracle = SimulatorOracle(spec)
    horizon = horizon or cfg.rollout.horizon
    policies = _policies(cfg, run, data, device, progress)
    frames = []
    with progress.task("uncertainty vs error", total=len(kinds) * len(policies)) as bar:
        for kind in kinds:
            model = require_model(run, kind, cfg, data.obs_dim, data.act_dim)[0].to(device).eval()
            for name, pol in policies.items():
                df, obs, act, pred = imagined_pairs(model, data, pol, spec, n_starts, horizon, cfg.run.seed, device,
                                                    dropout_at_inference=_dropout(cfg, kind))
                df["true_error"] = true_errors(oracle, obs, act, pred)
                df.insert(0, "policy", name)
                df.insert(0, "model", kind)
                frames.append(df)
                bar.update(advance=1, info=f"{kind}/{name}")
    oracle.close()
    df = pd.concat(frames, ignore_index=True)
    atomic_write_text(run.file("uncertainty.csv"), df.to_csv(index=False))
    corr = correlations(df)
    result = {"task": cfg.data.task, "pairs": int(len(df)), "policies": list(policies), "horizon": horizon,
              "true_error": "L2 distance of the predicted next state (mean of the sampled candidate) to the "
                            "simulator's next state", "correlations": corr,
              "dropout_at_inference": {k: _dropout(cfg, k) for k in kinds}}
    atomic_write_json(run.file("uncertainty.json"), result)
    plot_uncertainty(df, run.file("uncertainty.png"), f"uncertainty vs model error, {cfg.data.task}",
                     {k: quantifiers(k)[0] for k in kinds})
    return result


def offline_value_stage(cfg: Config, run: RunDir, device: torch.device, horizon: int = 100,
                        n_starts: int = 500) -> dict[str, Any]:
    """The trained policy's return in the run's own fitted model from the dataset's start windows: a value
    estimated from data only (evaluate/model_return.py), written to offline_value.json."""
    from ..algos.policy_files import policy_fn
    from ..envs.specs import spec_for
    from ..envs.termination import termination_fn
    from ..evaluate.model_return import model_return

    data = dataset_for_run(cfg, run)
    model = require_model(run, cfg.model.kind, cfg, data.obs_dim, data.act_dim)[0].to(device).eval()
    policy = policy_fn(run.file("policy", "actor.pt"), data.obs_dim, device=device)
    value = model_return(model, policy, data, termination_fn(spec_for(cfg.data)), horizon, n_starts,
                         seed=cfg.run.seed, device=device)
    atomic_write_json(run.file("offline_value.json"), {**value, "model": cfg.model.kind})
    return value


def fqe_stage(cfg: Config, run: RunDir, device: torch.device, steps: int = 5000, gamma: float = 0.99) -> dict[str, Any]:
    """The trained policy's value by fitted Q evaluation on the run's dataset (evaluate/fqe.py), written to
    fqe.json: an offline criterion that needs no dynamics model (BC runs too)."""
    from ..algos.policy_files import policy_fn
    from ..evaluate.fqe import fqe

    data = dataset_for_run(cfg, run)
    policy = policy_fn(run.file("policy", "actor.pt"), data.obs_dim, device=device)
    value = fqe(policy, data, gamma, steps, seed=cfg.run.seed, device=device)
    atomic_write_json(run.file("fqe.json"), value)
    return value

"""Stages as functions of (config, run directory): the CLI calls them, and so do the tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from .algorithms import dropout_at_inference, uncertainty_for
from .config import Config, model_fingerprint
from .data.dataset import Transitions
from .data.load import load_dataset
from .errors import UserError
from .models.factory import build_model, load_model, model_path, save_model
from .models.fit import fit
from .rundir import RunDir, atomic_write_json, torch_load
from .ui import progress


def dataset_for_run(cfg: Config, run: RunDir) -> Transitions:
    """Load the run's dataset and record (or check) its fingerprint in dataset.json."""
    from .data.load import default_collect_path

    if cfg.data.benchmark == "collect" and not cfg.data.path and not default_collect_path(cfg).exists():
        with progress() as bar:
            task = bar.add_task(f"collecting {default_collect_path(cfg)}", total=cfg.data.collect_steps, info="")
            data, info = load_dataset(cfg, progress=lambda n: bar.advance(task, n))
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
        from .ui import err_console

        err_console.print(f"[yellow]warning:[/yellow] {info['source']}: dropped {data.dropped_nonfinite} rows "
                          "with NaN/inf (data.nonfinite=drop)")
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
    save_model(path, model.cpu(), replace(cfg.model, kind=kind), cfg.data.task, {"fit": summary},
               fingerprint=model_fingerprint(cfg, kind))
    atomic_write_json(run.file("model", f"{kind}.json"), summary)
    return summary


def model_for_training(cfg: Config, run: RunDir, device: torch.device, kind: str, data: Transitions,
                       force: bool = False):
    """The run's fitted model of this kind if it was fitted with these settings, else fit it now
    (Algorithm 3, line 1). A model fitted with other settings is refused (`force`: refitted)."""
    path = model_path(run.path, kind)
    want = model_fingerprint(cfg, kind)
    have = (torch_load(path).get("fingerprint") or "none") if path.exists() else None
    if have is not None and have != want and not force:
        raise UserError(f"{path}: fitted with other settings than this run's (model fingerprint {have}, "
                        f"this run {want}); pass --force to refit it, or use another --run")
    if have != want:
        fit_model_stage(replace(cfg, model=replace(cfg.model, kind=kind)), run, device, kind, data)
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
    from .models.factory import KINDS

    return [k for k in KINDS if model_path(run.path, k).exists()]


def _require_fitted(run: RunDir, kinds: list[str] | None) -> list[str]:
    have = fitted_kinds(run)
    if not have:
        raise UserError(f"{run.path}: no fitted model; run `admpo fit-model --run {run.path}` first")
    kinds = kinds or have
    for k in kinds:
        if k not in have:
            raise UserError(f"{run.path}: no fitted {k} model; run `admpo fit-model --run {run.path} --model {k}`")
    return kinds


def _dropout(cfg: Config, kind: str) -> bool:
    return dropout_at_inference(cfg.model.dropout_at_inference, kind, uncertainty_for(kind, cfg.rollout.uncertainty))


def eval_compounding_stage(cfg: Config, run: RunDir, device: torch.device, kinds: list[str] | None = None,
                           horizon: int = 100, n_starts: int = 256):
    import pandas as pd

    from .evaluate.compounding import compounding_curves, pick_starts
    from .evaluate.plots import plot_compounding
    from .rundir import atomic_write_text

    kinds = _require_fitted(run, kinds)
    data = dataset_for_run(cfg, run)
    models = {k: require_model(run, k, cfg, data.obs_dim, data.act_dim)[0].to(device).eval() for k in kinds}
    m = max(mdl.context for mdl in models.values())
    starts = pick_starts(data, m, n_starts, cfg.run.seed, cfg.model.holdout_ratio, cfg.model.holdout_max)
    variants = []
    for k, mdl in models.items():
        if k == "adm":
            variants += [("adm (random k)", mdl, None), (f"adm (k={mdl.m})", mdl, mdl.m - 1), ("adm (k=1)", mdl, 0)]
        else:
            variants.append((k, mdl, None))
    frames = []
    with progress() as bar:
        task = bar.add_task("compounding error", total=len(variants), info="")
        for name, mdl, fixed in variants:
            rows = compounding_curves(mdl, data, starts, horizon, device, fixed, seed=cfg.run.seed,
                                      dropout_at_inference=_dropout(cfg, mdl.kind))
            frames.append(pd.DataFrame(rows).assign(model=name))
            bar.update(task, advance=1, info=name)
    df = pd.concat(frames, ignore_index=True)[["model", "horizon", "mse_mean", "ci_low", "ci_high", "n",
                                               "overflow_frac"]]
    atomic_write_text(run.file("compounding.csv"), df.to_csv(index=False))
    plot_compounding(df, run.file("compounding.png"), f"compounding error, {cfg.data.task}")
    return df


def eval_uncertainty_stage(cfg: Config, run: RunDir, device: torch.device, n_starts: int = 500,
                           horizon: int | None = None) -> dict[str, Any]:
    import pandas as pd

    from .agents.bc import BC
    from .algos.common import load_policy, save_policy
    from .envs.oracle import SimulatorOracle
    from .envs.registry import spec_for
    from .evaluate.plots import plot_uncertainty
    from .evaluate.uncertainty import QUANTIFIERS, correlations, imagined_pairs, true_errors
    from .rundir import atomic_write_text

    kinds = _require_fitted(run, None)
    data = dataset_for_run(cfg, run)
    spec = spec_for(cfg.data)
    oracle = SimulatorOracle(spec)
    horizon = horizon or cfg.rollout.horizon
    policies: dict[str, Any] = {}
    gen = torch.Generator(device=device).manual_seed(cfg.run.seed)
    policies["random"] = lambda o: torch.rand(o.shape[0], data.act_dim, device=o.device, generator=gen) * 2 - 1
    bc_path = run.file("policy", "bc.pt")
    if not bc_path.exists():
        # The behaviour policy: BC fitted on the run's data, kept for later calls.
        bc = BC(data.obs_dim, data.act_dim, cfg.agent.hidden, 1e-3, device)
        obs_t = torch.as_tensor(data.observations, device=device)
        act_t = torch.as_tensor(data.actions, device=device)
        with progress() as bar:
            task = bar.add_task("fit behaviour policy (BC)", total=cfg.train.bc_steps, info="")
            for done in range(0, cfg.train.bc_steps, 100):
                n = min(100, cfg.train.bc_steps - done)
                bc.train_steps(obs_t, act_t, n, 256, gen)
                bar.update(task, advance=n)
        save_policy(run, bc.actor, data.obs_dim, data.act_dim, cfg.agent.hidden, cfg.data.task, "bc", name="bc")
    bc_actor, _ = load_policy(bc_path, data.obs_dim)
    bc_actor = bc_actor.to(device)
    policies["behaviour"] = lambda o: bc_actor(o, with_logp=False)[0]
    learned = run.file("policy", "actor.pt")
    if learned.exists():
        actor, payload = load_policy(learned, data.obs_dim)
        if payload.get("algo") != "bc":
            actor = actor.to(device)
            policies["learned"] = lambda o: actor(o, with_logp=False)[0]
    frames = []
    with progress() as bar:
        task = bar.add_task("uncertainty vs error", total=len(kinds) * len(policies), info="")
        for kind in kinds:
            model = require_model(run, kind, cfg, data.obs_dim, data.act_dim)[0].to(device).eval()
            for name, pol in policies.items():
                df, obs, act, pred = imagined_pairs(model, data, pol, spec, n_starts, horizon, cfg.run.seed, device,
                                                    dropout_at_inference=_dropout(cfg, kind))
                df["true_error"] = true_errors(oracle, obs, act, pred)
                df.insert(0, "policy", name)
                df.insert(0, "model", kind)
                frames.append(df)
                bar.update(task, advance=1, info=f"{kind}/{name}")
    oracle.close()
    df = pd.concat(frames, ignore_index=True)
    atomic_write_text(run.file("uncertainty.csv"), df.to_csv(index=False))
    corr = correlations(df)
    result = {"task": cfg.data.task, "pairs": int(len(df)), "policies": list(policies), "horizon": horizon,
              "true_error": "L2 distance of the predicted next state (mean of the sampled candidate) to the "
                            "simulator's next state", "correlations": corr}
    atomic_write_json(run.file("uncertainty.json"), result)
    plot_uncertainty(df, run.file("uncertainty.png"), f"uncertainty vs model error, {cfg.data.task}",
                     {k: QUANTIFIERS[k][0] for k in kinds})
    return result

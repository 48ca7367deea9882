"""`admpo study-models`: which dynamics model for which data. For every env x data quality, a dataset collected
locally (random; medium from a SAC policy trained to a third of expert; medium-replay: everything that SAC
saw), then for every model kind x seed one run through the stages a user would run by hand: fit-model (fit
time), train-off as ADMPO-OFF with that model at the same budget (the score; another kind than adm is the
ablation), eval-compounding (error at H = 1, 5, 20, 100), eval-uncertainty (uncertainty vs the simulator's
true error for random, behaviour and learned policies) and a timed roll-out. One row per run goes to
rows.csv; report/model_study.py turns the rows into the page. Finished runs and datasets are reused.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..agents.uniform import uniform_policy
from ..config import resolve
from ..data.scores import D4RL_REF, normalized_score
from ..errors import UserError
from ..events import SILENT, Progress
from ..files import atomic_write_text
from ..process import spawn_pool
from ..report.model_study import HORIZONS, uncertainty_figures, write_page
from ..rundir import RunDir
from .collect import collect_qualities, run_collect
from .evaluate import eval_compounding_stage, eval_uncertainty_stage
from .fit import dataset_for_run, fit_model_stage, require_model
from .setup import start_run
from .train import train_stage

QUALITIES = ("random", "medium", "medium-replay")

# Named budgets: the data size, SAC's steps for the medium datasets, and --set lines for fit and training.
_TINY_MODELS = ["model.hidden=16", "model.layers=1", "model.heads=2", "model.head_blocks=1", "model.ensemble_size=3",
                "model.elites=2", "model.ensemble_hidden=16", "model.max_epochs=2", "model.steps_per_epoch=10"]
BUDGETS: dict[str, dict[str, Any]] = {
    "ci": {"data_steps": 1200, "sac_steps": 600, "starts": 32, "unc_starts": 24, "rollout_rows": 256,
           "sets": [*_TINY_MODELS, "train.epochs=2", "train.steps_per_epoch=20", "train.rollout_freq=20",
                    "rollout.batch_size=128", "agent.hidden=[32, 32]", "agent.batch_size=32", "eval.episodes=2",
                    "eval.every=1", "eval.max_episode_steps=60", "train.bc_steps=200"]},
    # a preview at a tenth of an hour a run on one core: 10k transitions, SAC 10k steps for the medium data,
    # fits capped at 10 epochs, 3000 ADMPO-OFF updates
    "preview": {"data_steps": 10_000, "sac_steps": 10_000, "starts": 128, "unc_starts": 64, "rollout_rows": 2000,
                "sets": ["model.heads=4", "model.max_epochs=10", "train.epochs=6", "eval.episodes=3"]},
    # the quickstart presets' sizes (20k transitions, ADM 2x64, 6000 SAC updates); medium: SAC until a third of
    # expert (D4RL's medium level), at most 200k steps
    "small": {"data_steps": 20_000, "sac_steps": 200_000, "starts": 256, "unc_starts": 128, "rollout_rows": 5000,
              "sets": ["model.heads=4"]},
}


@dataclass
class StudySpec:
    envs: list[str]
    qualities: list[str]
    kinds: list[str]
    seeds: list[int]
    out: Path
    budget: str = "small"
    device: str = "auto"
    extra_sets: list[str] = field(default_factory=list)
    workers: int = 1  # processes; the machine's torch threads are shared out among them


def model_study_stage(spec: StudySpec, progress: Progress = SILENT) -> dict:
    """Every env x quality x kind x seed: rows.csv (one row per run), then the page (summary.csv,
    recommendations.csv, index.html) under spec.out; returns report.model_study.write_page's result."""
    if spec.budget not in BUDGETS:
        raise UserError(f"--budget {spec.budget}: expected one of {', '.join(BUDGETS)}")
    bad = [q for q in spec.qualities if q not in QUALITIES]
    if bad:
        raise UserError(f"--qualities: {bad[0]!r} is not one of {', '.join(QUALITIES)}")
    if spec.workers < 1:
        raise UserError(f"--workers {spec.workers}: expected 1 or more")
    b = BUDGETS[spec.budget]
    rows = []
    cells = [(e, q, k, s) for e in spec.envs for q in spec.qualities for k in spec.kinds for s in spec.seeds]
    if spec.workers > 1:
        _in_parallel(spec, cells, b, progress)
        frame = pd.DataFrame([json.loads((_run_path(spec, *cell) / "row.json").read_text()) for cell in cells])
        atomic_write_text(spec.out / "rows.csv", frame.to_csv(index=False))
    else:
        with progress.task("model study", total=len(cells)) as bar:
            for env, quality, kind, seed in cells:
                data = _datasets(spec, env, quality, b, progress)
                rows.append(_cell(spec, env, quality, kind, seed, data, b, progress))
                frame = pd.DataFrame(rows)
                atomic_write_text(spec.out / "rows.csv", frame.to_csv(index=False))
                bar.update(advance=1, info=f"{env} {quality} {kind} s{seed}")
    return {**write_page(frame, spec.out, spec.budget, spec.extra_sets, _data_table(spec)), "rows": frame}


def _in_parallel(spec: StudySpec, cells: list[tuple], b: dict, progress: Progress) -> None:
    """The study's work in `spec.workers` processes (spawned, each with its share of the torch threads): first
    the datasets, one task per env (its SAC run feeds two of them), then one task per run."""
    threads = max(1, torch.get_num_threads() // spec.workers)
    with spawn_pool(spec.workers, torch.set_num_threads, (threads,)) as pool:
        try:
            _submit_all(pool, spec, cells, b, threads, progress)
        except BaseException:  # the first failure (a UserError comes back whole) ends the study: drop the rest
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _submit_all(pool: ProcessPoolExecutor, spec: StudySpec, cells: list[tuple], b: dict, threads: int,
                progress: Progress) -> None:
    with progress.task("datasets", total=len(spec.envs)) as bar:
        for f in as_completed([pool.submit(_env_datasets, spec, env, b) for env in spec.envs]):
            bar.update(advance=1, info=f.result())
    with progress.task(f"model study, {spec.workers} workers x {threads} threads", total=len(cells)) as bar:
        jobs = {pool.submit(_cell_job, spec, cell, b): cell for cell in cells}
        for f in as_completed(jobs):
            f.result()
            bar.update(advance=1, info=" ".join(map(str, jobs[f])))


def _env_datasets(spec: StudySpec, env: str, b: dict) -> str:
    for quality in spec.qualities:
        _datasets(spec, env, quality, b, SILENT)
    return env


def _cell_job(spec: StudySpec, cell: tuple, b: dict) -> None:
    env, quality, kind, seed = cell
    _cell(spec, env, quality, kind, seed, _data_path(spec, env, quality), b, SILENT)


def _datasets(spec: StudySpec, env: str, quality: str, b: dict, progress: Progress) -> Path:
    """The env x quality dataset under data/, collected when missing, with a JSON of how (its return, SAC's
    curve and target). medium and medium-replay come from one SAC run (the policy it trained to a third of
    expert, and everything it saw), so asking for one collects both."""
    path = _data_path(spec, env, quality)
    if path.exists():
        return path
    if quality == "random":
        infos = {quality: run_collect(env, path, b["data_steps"], "random", "d4rl", False, None, None, 0, 0,
                                      spec.device, progress)}
    else:
        outs = {q: _data_path(spec, env, q) for q in ("medium", "medium-replay")}
        infos = collect_qualities(env, outs, b["data_steps"], "d4rl", True, None, b["sac_steps"], 0, spec.device,
                                  progress)
    for q, info in infos.items():
        atomic_write_text(spec.out / "data" / f"{env}-{q}.json", json.dumps(info, indent=1, default=str))
    return path


def data_info(out: Path, env: str, quality: str) -> dict:
    """What _datasets recorded of a dataset: transitions, mean episode return, SAC's target; {} if unknown."""
    f = out / "data" / f"{env}-{quality}.json"
    return json.loads(f.read_text()) if f.exists() else {}


def _data_path(spec: StudySpec, env: str, quality: str) -> Path:
    return spec.out / "data" / f"{env}-{quality}.hdf5"


def _run_path(spec: StudySpec, env: str, quality: str, kind: str, seed: int) -> Path:
    return spec.out / "runs" / f"{env}-{quality}" / f"{kind}-s{seed}"


def _cell(spec: StudySpec, env: str, quality: str, kind: str, seed: int, data_path: Path, b: dict,
          progress: Progress) -> dict:
    sets = [f"data.path={data_path}", "data.benchmark=d4rl", *b["sets"], *spec.extra_sets]
    cfg = resolve(f"quickstart-{env}", None, sets, {"model.kind": kind, "run.seed": seed, "run.device": spec.device})
    run, dev = start_run(cfg, _run_path(spec, env, quality, kind, seed))
    if run.file("row.json").exists():  # a finished cell: its row, as measured then
        return run.read_json("row.json")
    fit = run.read_json(f"model/{kind}.json") if run.file("model", f"{kind}.pt").exists() else \
        fit_model_stage(cfg, run, dev, kind, progress=progress)
    summary = train_stage(cfg, run, dev, progress=progress).summary
    comp = eval_compounding_stage(cfg, run, dev, [kind], max(HORIZONS), b["starts"], progress)
    unc = eval_uncertainty_stage(cfg, run, dev, b["unc_starts"], None, progress)
    row = {"env": env, "quality": quality, "model": kind, "seed": seed, "fit_s": fit["seconds"],
           "fit_steps_per_s": fit["steps_per_second"], "holdout_mse": float(np.mean(fit["holdout_mse_per_k"])),
           "rollout_tps": _rollout_rate(cfg, run, kind, dev, b["rollout_rows"]),
           "admpo_off_score": summary.get("final_score"), "admpo_off_return": summary.get("final_return")}
    own = comp[comp["model"].isin([kind, f"{kind} (random k)"])].set_index("horizon")
    for h in HORIZONS:
        row[f"compounding_h{h}"] = float(own.loc[h, "mse_mean"]) if h in own.index else np.nan
    row.update(uncertainty_figures(pd.read_csv(run.file("uncertainty.csv")), kind, unc["correlations"]))
    info = data_info(spec.out, env, quality)
    row.update(data_transitions=info.get("transitions"), data_return=info.get("return_mean"))
    atomic_write_text(run.file("row.json"), json.dumps(row, default=_plain))
    return row


def _data_table(spec: StudySpec) -> pd.DataFrame:
    """One row per dataset of the study: its size, mean episode return (raw and normalised) and, for the SAC
    datasets, the target and the steps SAC took."""
    recs = []
    for env in spec.envs:
        ref = D4RL_REF.get(env)
        for quality in spec.qualities:
            info = data_info(spec.out, env, quality)
            if not info:
                continue
            ret, curve = info.get("return_mean"), info.get("sac_curve") or []
            recs.append({"env": env, "quality": quality, "transitions": info.get("transitions"),
                         "episodes": info.get("episodes"), "mean return": ret,
                         "normalised": normalized_score(ret, ref) if ret is not None else None,
                         "SAC target": info.get("target_return"), "SAC steps": curve[-1][0] if curve else None,
                         "SAC last eval": curve[-1][1] if curve else None})
    return pd.DataFrame(recs).astype({"SAC steps": "Int64"}) if recs else pd.DataFrame()


def _plain(x: Any) -> Any:
    """numpy scalars in a row -> Python numbers for JSON."""
    return x.item() if hasattr(x, "item") else str(x)


def _rollout_rate(cfg, run: RunDir, kind: str, dev: torch.device, rows: int, horizon: int = 10) -> float:
    """Imagined transitions per second of Algorithm 1 with the model's own uncertainty, a random policy."""
    from ..data.dataset import sample_start_windows
    from ..envs.termination import never
    from ..models.rollout import rollout
    from ..registry import uncertainty_for

    data = dataset_for_run(cfg, run)
    model = require_model(run, kind, cfg, data.obs_dim, data.act_dim)[0].to(dev).eval()
    _, w = sample_start_windows(data, model.context, rows, np.random.default_rng(0), dev, replace=True)
    gen = torch.Generator(device=dev).manual_seed(0)
    policy = uniform_policy(data.act_dim, gen)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = rollout(model, policy, w["hist_obs"], w["hist_act"], w["obs"], horizon, never,
                      uncertainty_for(kind, "auto"), 0.0, "batch", 1000, gen)
    return len(out) / max(time.perf_counter() - t0, 1e-9)

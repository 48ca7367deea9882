"""`admpo report`: tables, figures and one self-contained index.html (a document: what was compared, the
aggregates, captioned figures, every run linked) from run directories or a sweep's study folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..evaluate.plots import (
    plot_diagnostics,
    plot_fine_tuning,
    plot_grid,
    plot_learning_curves,
    plot_profiles,
)
from ..files import atomic_write_bytes, atomic_write_text
from .collect_runs import RunRecord, find_runs, read_run, study_points
from .html import Figure, document
from .stats import BOOTSTRAP_REPS, interval_table, performance_profiles
from .tables import finals, score_table, to_markdown


def build_report(paths: list[Path], out: Path, paper: bool = False, pool_modified: bool = False) -> dict:
    out = Path(out)
    found = find_runs(paths)  # refuses paths without runs before writing anything
    points, grid = study_points(paths)
    records = [read_run(p, points.get(p.resolve()), pool_modified) for p in found]
    out.mkdir(parents=True, exist_ok=True)
    complete = [r for r in records if r.complete]
    incomplete = [r for r in records if not r.complete]

    final_scores = finals(records, "final_score")
    scores_num, scores_txt = score_table(final_scores, paper)
    returns_num, returns_txt = score_table(finals(records, "final_return"), decimals=1)
    atomic_write_text(out / "summary.csv", scores_num.to_csv())
    atomic_write_text(out / "returns.csv", returns_num.to_csv())
    intervals = interval_table(final_scores)
    atomic_write_text(out / "aggregates.csv", intervals.to_csv(index=False, float_format="%.4g"))
    pending = pd.DataFrame([{"run": str(r.path), "task": r.task, "variant": r.variant, "seed": r.seed,
                             "status": r.status if r.summary is None or r.status != "done" else "done"}
                            for r in incomplete], columns=["run", "task", "variant", "seed", "status"])
    md = ["# admpo report", "",
          to_markdown(scores_txt, "Normalised score, final = mean of the last evaluations; mean ± std (ddof=0) "
                                  "over seeds (n seeds)"),
          to_markdown(returns_txt, "Raw return, same layout")]
    if len(intervals):
        md.append(to_markdown(_interval_text(intervals).set_index("variant"),
                              f"Across tasks: interquartile mean with 95 % stratified-bootstrap CI ({BOOTSTRAP_REPS} "
                              "resamples, rliable), and mean ± std over all runs"))
    if len(pending):
        md += ["**Not averaged in (still running, failed or interrupted)**", "",
               to_markdown(pending.set_index("run"), "incomplete runs")]
    atomic_write_text(out / "summary.md", "\n".join(md))

    figures = _figures(records, complete, final_scores, grid, out)
    corr = _correlations(records)
    if len(corr):
        atomic_write_text(out / "uncertainty-correlations.csv", corr.to_csv(index=False))
    atomic_write_text(out / "index.html", document(
        header=_header(records, complete, paths), scores=scores_txt, returns=returns_txt,
        intervals=_interval_text(intervals), pending=pending, corr=corr, figures=figures,
        runs=_runs_table(records, out), paper=paper))
    return {"runs": len(records), "complete": len(complete), "incomplete": len(incomplete),
            "scores": scores_txt, "returns": returns_txt, "pending": pending, "intervals": intervals,
            "figures": [str(f.path) for f in figures], "out": str(out)}


def _interval_text(iv: pd.DataFrame) -> pd.DataFrame:
    """The aggregate table as people read it: one decimal, CIs in brackets."""
    if not len(iv):
        return pd.DataFrame(columns=["variant", "tasks", "runs", "IQM [95% CI]", "mean ± std", "mean [95% CI]"])
    return pd.DataFrame({
        "variant": iv["variant"], "tasks": iv["tasks"], "runs": iv["runs"],
        "IQM [95% CI]": [f"{r.iqm:.1f} [{r.iqm_lo:.1f}, {r.iqm_hi:.1f}]" for r in iv.itertuples()],
        "mean ± std": [f"{r.mean:.1f} ± {r.std:.1f}" for r in iv.itertuples()],
        "mean [95% CI]": [f"{r.mean:.1f} [{r.mean_lo:.1f}, {r.mean_hi:.1f}]" for r in iv.itertuples()]})


def _figures(records: list[RunRecord], complete: list[RunRecord], final_scores: pd.DataFrame, grid: dict,
             out: Path) -> list[Figure]:
    figures: list[Figure] = []
    by_task: dict[str, dict[str, list[pd.DataFrame]]] = {}
    for r in complete:
        if r.metrics is not None and "score_mean" in r.metrics:
            by_task.setdefault(r.task, {}).setdefault(r.variant, []).append(r.metrics)
    for key in grid:  # Figure 6: score vs the swept setting
        rows = [{"task": r.task, "variant": r.label, "value": r.point[key], "seed": r.seed,
                 "score": r.summary.get("final_score")} for r in complete if key in r.point]
        df = pd.DataFrame([x for x in rows if x["score"] is not None])
        if len(df):
            p = out / f"grid-{key}.png"
            plot_grid(df, key, p, "final normalised score")
            figures.append(Figure(f"Final score vs {key}", p,
                                  f"Final normalised score of each run against {key} (the swept setting), a panel per "
                                  "task: mean ± std over seeds, each seed a dot. Higher is better."))
    if len(final_scores) and final_scores["variant"].nunique() >= 1:
        hi = float(np.nanmax(final_scores["value"]))
        taus = np.linspace(min(0.0, float(np.nanmin(final_scores["value"]))), max(hi, 1.0) * 1.05, 101)
        prof, cis = performance_profiles(final_scores, taus)
        if prof:
            p = out / "performance-profiles.png"
            plot_profiles(taus, prof, cis, p, "normalised score")
            figures.append(Figure("Performance profiles", p,
                                  "Fraction of runs (all tasks and seeds) whose final normalised score exceeds τ, with "
                                  "95 % stratified-bootstrap CIs (rliable). A curve above another is better."))
    for task, curves in sorted(by_task.items()):
        p = out / f"curves-{task}.png"
        online = any("env_steps" in f for frames in curves.values() for f in frames)
        if online:  # Figure 3: return vs environment steps
            plot_learning_curves(curves, p, f"{task}: return vs env steps (mean ± s.e. over seeds)", x="env_steps",
                                 ycol="return_mean")
            caption = (f"Return of the deterministic policy on {task} against environment steps: mean over seeds, "
                       "band ± standard error. Higher is better; further left for the same return is more "
                       "sample-efficient.")
        else:
            plot_learning_curves(curves, p, f"{task}: normalised score (mean ± s.e. over seeds)")
            caption = (f"Normalised score on {task} (0 = random, 100 = expert) against gradient steps: mean over "
                       "seeds, band ± standard error. Higher is better.")
        figures.append(Figure(f"Learning curves, {task}", p, caption))
    figures += _diagnostics(records, out)
    figures += _fine_tuning(complete, out)
    for r in records:
        for kind in ("compounding", "uncertainty"):
            src = r.files.get(f"{kind}.png")
            if src is not None:
                dst = out / f"{kind}-{r.path.name}.png"
                atomic_write_bytes(dst, src.read_bytes())
                if kind == "compounding":
                    figures.append(Figure(f"Compounding error, {r.path.name}", dst,
                                          "Error of open-loop predictions against the horizon on held-out "
                                          "trajectories, per model. Lower is better."))
                else:
                    figures.append(Figure(f"Uncertainty vs error, {r.path.name}", dst,
                                          "Each model's uncertainty against its true one-step error on held-out "
                                          "data. A tighter monotone relation (higher correlation) is better."))
    return figures


def _diagnostics(records: list[RunRecord], out: Path) -> list[Figure]:
    """One diagnostics figure per model-based run (evaluation rows of metrics.csv)."""
    figures = []
    for r in records:
        if r.metrics is None or not any(c in r.metrics for c in ("imagined_reward_mean", "penalty_mean")):
            continue
        p = out / f"diagnostics-{r.path.parent.name}-{r.path.name}.png"
        x = "env_steps" if "env_steps" in r.metrics else "step"
        if plot_diagnostics(r.metrics, p, f"{r.variant}, seed {r.seed}", x):
            figures.append(Figure(f"Diagnostics, {r.path.parent.name}/{r.path.name}", p,
                                  "Mean Q of SAC's batches against the policy's true return (Q far above what the "
                                  "return can support is over-estimation on imagined data); the imagined reward "
                                  "against the penalty β·U; the share of imagined rows that terminated; the model's "
                                  "hold-out error (online: at each re-fit) and the model buffer."))
    return figures


def _short(label: str) -> str:
    """A label without its budget or modified keys (the runs table has them), for a figure's legend."""
    return str(label).split(" (")[0]


def _fine_tuning(records: list[RunRecord], out: Path) -> list[Figure]:
    """Runs fine-tuned from an offline run (train-on --init-from): the source's curve, then the online one."""
    by_task: dict[str, list[dict]] = {}
    for r in records:
        src = (r.summary or {}).get("init_from")
        if not src or r.metrics is None:
            continue
        online = list(zip(r.metrics["env_steps"].astype(int), r.metrics["return_mean"].astype(float), strict=True))
        by_task.setdefault(r.task, []).append({
            "label": f"{_short(src.get('label') or src.get('algo'))} → {_short(r.label)} (dataset "
                     f"{'kept' if src.get('dataset') == 'keep' else 'dropped'}), seed {r.seed}",
            "offline": [tuple(p) for p in src.get("return_curve", [])], "offline_x": src.get("x", "epoch"),
            "online": online})
    figures = []
    for task, runs in sorted(by_task.items()):
        p = out / f"fine-tuning-{task}.png"
        plot_fine_tuning(runs, p, f"{task}: offline training, then online fine-tuning")
        figures.append(Figure(f"Offline -> online, {task}", p,
                              "Return of the deterministic policy during offline training (left) and then online "
                              "fine-tuning from it (right, environment steps; step 0 repeats the offline run's last "
                              "evaluation with its seeds). Higher is better; a drop right after 0 is the usual "
                              "offline-to-online dip."))
    return figures


def _correlations(records: list[RunRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        if "uncertainty.json" in r.files:
            res = json.loads(r.files["uncertainty.json"].read_text())
            for model, qs in res["correlations"].items():
                for q, v in qs.items():
                    rows.append({"run": r.path.name, "model": model, "quantifier": q,
                                 "pearson": round(v["pooled"]["pearson"], 3),
                                 "spearman": round(v["pooled"]["spearman"], 3)})
    return pd.DataFrame(rows)


def _header(records: list[RunRecord], complete: list[RunRecord], paths: list[Path]) -> dict:
    """What was compared: the runs, the datasets with their fingerprints, versions and revisions."""
    datasets = {}
    for r in records:
        d = r.dataset or {}
        key = (r.task, d.get("source", "environment (online)"), d.get("fingerprint", ""))
        datasets.setdefault(key, {"runs": 0, "transitions": d.get("transitions", "")})
        datasets[key]["runs"] += 1
    versions: dict[str, set] = {}
    revisions = set()
    for r in records:
        for k, v in (r.meta.get("versions") or {}).items():
            versions.setdefault(k, set()).add(str(v))
        if r.meta.get("git_revision"):
            revisions.add(str(r.meta["git_revision"])[:12])
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "admpo": __version__, "sources": [str(p) for p in paths],
        "runs": len(records), "complete": len(complete),
        "variants": sorted({r.variant for r in records}), "seeds": sorted({r.seed for r in records}),
        "datasets": pd.DataFrame([{"task": t, "dataset": s, "fingerprint": f or "–", "transitions": v["transitions"],
                                   "runs": v["runs"]} for (t, s, f), v in sorted(datasets.items())]),
        "versions": {k: ", ".join(sorted(v)) for k, v in sorted(versions.items())},
        "revisions": sorted(revisions),
    }


def _runs_table(records: list[RunRecord], out: Path) -> list[dict]:
    import os

    rows = []
    for r in records:
        s = r.summary or {}
        rows.append({"run": f"{r.path.parent.name}/{r.path.name}",
                     "href": os.path.relpath(r.path.resolve(), out.resolve()), "task": r.task, "variant": r.variant,
                     "seed": r.seed, "status": r.status,
                     "score": "" if s.get("final_score") is None else f"{s['final_score']:.1f}",
                     "return": "" if s.get("final_return") is None else f"{s['final_return']:.1f}"})
    return rows


__all__ = ["build_report", "RunRecord"]

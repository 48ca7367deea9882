"""`admpo report`: summary tables, figures and one self-contained index.html from run directories."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from ..evaluate.plots import plot_learning_curves
from ..rundir import atomic_write_bytes, atomic_write_text
from .collect_runs import RunRecord, find_runs, read_run
from .tables import finals, score_table, to_markdown


def build_report(paths: list[Path], out: Path, paper: bool = False) -> dict:
    out = Path(out)
    records = [read_run(p) for p in find_runs(paths)]  # refuses paths without runs before writing anything
    out.mkdir(parents=True, exist_ok=True)
    complete = [r for r in records if r.complete]
    incomplete = [r for r in records if not r.complete]

    scores_num, scores_txt = score_table(finals(records, "final_score"), paper)
    returns_num, returns_txt = score_table(finals(records, "final_return"), decimals=1)
    atomic_write_text(out / "summary.csv", scores_num.to_csv())
    atomic_write_text(out / "returns.csv", returns_num.to_csv())
    pending = pd.DataFrame([{"run": str(r.path), "task": r.task, "variant": r.variant, "seed": r.seed,
                             "status": r.status if r.summary is None or r.status != "done" else "done"}
                            for r in incomplete], columns=["run", "task", "variant", "seed", "status"])
    md = ["# admpo report", "",
          to_markdown(scores_txt, "Normalised score, final = mean of the last evaluations; mean ± std (ddof=0) "
                                  "over seeds (n seeds)"),
          to_markdown(returns_txt, "Raw return, same layout")]
    if len(pending):
        md += ["**Not averaged in (still running, failed or interrupted)**", "",
               to_markdown(pending.set_index("run"), "incomplete runs")]
    atomic_write_text(out / "summary.md", "\n".join(md))

    figures: list[tuple[str, Path]] = []
    by_task: dict[str, dict[str, list[pd.DataFrame]]] = {}
    for r in complete:
        if r.metrics is not None and "score_mean" in r.metrics:
            by_task.setdefault(r.task, {}).setdefault(r.variant, []).append(r.metrics)
    for task, curves in sorted(by_task.items()):
        p = out / f"curves-{task}.png"
        online = any("env_steps" in f for frames in curves.values() for f in frames)
        if online:  # Figure 3: return vs environment steps
            plot_learning_curves(curves, p, f"{task}: return vs env steps (mean ± s.e. over seeds)", x="env_steps",
                                 ycol="return_mean")
        else:
            plot_learning_curves(curves, p, f"{task}: normalised score (mean ± s.e. over seeds)")
        figures.append((f"Learning curves, {task}", p))
    for r in records:
        for kind in ("compounding", "uncertainty"):
            src = r.files.get(f"{kind}.png")
            if src is not None:
                dst = out / f"{kind}-{r.path.name}.png"
                atomic_write_bytes(dst, src.read_bytes())
                figures.append((f"{'Compounding error' if kind == 'compounding' else 'Uncertainty vs error'}, "
                                f"{r.path.name}", dst))
    corr_rows = []
    for r in records:
        if "uncertainty.json" in r.files:
            res = json.loads(r.files["uncertainty.json"].read_text())
            for model, qs in res["correlations"].items():
                for q, v in qs.items():
                    corr_rows.append({"run": r.path.name, "model": model, "quantifier": q,
                                      "pearson": v["pooled"]["pearson"], "spearman": v["pooled"]["spearman"]})
    corr = pd.DataFrame(corr_rows)
    if len(corr):
        atomic_write_text(out / "uncertainty-correlations.csv", corr.to_csv(index=False))
    atomic_write_text(out / "index.html", _html(scores_txt, returns_txt, pending, corr, figures))
    return {"runs": len(records), "complete": len(complete), "incomplete": len(incomplete),
            "scores": scores_txt, "returns": returns_txt, "pending": pending, "figures": [str(p) for _, p in figures],
            "out": str(out)}


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(escape=True, na_rep="–", border=0, classes="t")


def _html(scores: pd.DataFrame, returns: pd.DataFrame, pending: pd.DataFrame, corr: pd.DataFrame,
          figures: list[tuple[str, Path]]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>admpo report</title><style>",
             "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}",
             "table.t{border-collapse:collapse;margin:1em 0}table.t td,table.t th{padding:4px 10px;",
             "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%;border:1px solid #eee}",
             "</style></head><body><h1>admpo report</h1>",
             "<h2>Normalised score</h2><p>final = mean of the last evaluations of each run; mean ± std over seeds "
             "(n seeds).</p>", _table_html(scores), "<h2>Raw return</h2>", _table_html(returns)]
    if len(pending):
        parts += ["<h2>Not averaged in</h2><p>Runs still running, failed or interrupted.</p>",
                  _table_html(pending)]
    if len(corr):
        parts += ["<h2>Uncertainty vs true model error</h2>", _table_html(corr)]
    for title, path in figures:
        b64 = base64.b64encode(path.read_bytes()).decode()
        alt = html.escape(title)
        parts += [f"<h2>{alt}</h2>", f"<img alt='{alt}' src='data:image/png;base64,{b64}'>"]
    parts.append("</body></html>")
    return "\n".join(parts)


__all__ = ["build_report", "RunRecord"]

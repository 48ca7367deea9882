"""The model study's page: per env x data quality x model, every figure as its mean over seeds with a
bootstrap 95 % interval, and a recommendation table backed by those numbers (stages/model_study.py runs it)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_write_text
from ..registry import model as model_spec
from .html import CSS, table

HORIZONS = (1, 5, 20, 100)

# (column, what it is, lower is better)
FIGURES = [
    ("compounding_h1", "compounding MSE, H=1", True), ("compounding_h5", "compounding MSE, H=5", True),
    ("compounding_h20", "compounding MSE, H=20", True), ("compounding_h100", "compounding MSE, H=100", True),
    ("pearson_pooled", "Pearson(U, error), pooled", False), ("pearson_log_pooled", "Pearson(log U, log error)", False),
    ("spearman_pooled", "Spearman(U, error), pooled", False),
    ("pearson_binned_pooled", "Pearson of the means in 20 quantile bins of U (a curve's correlation)", False),
    ("auc_random_vs_behaviour", "AUC: U higher for random than behaviour actions", False),
    ("fit_s", "fit seconds", True), ("rollout_tps", "roll-out transitions/s", False),
    ("admpo_off_score", "ADMPO-OFF normalised score", False),
]


def _auc(a: np.ndarray, b: np.ndarray) -> float:
    """P(a > b) + P(a = b) / 2 (Mann-Whitney): how well the values separate the two groups."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    ranks = pd.Series(np.concatenate([a, b])).rank().to_numpy()
    return float((ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2) / (len(a) * len(b)))


def binned_pearson(u: np.ndarray, err: np.ndarray, bins: int = 20) -> float | None:
    """Pearson between the mean uncertainty and the mean true error of `bins` quantile bins of U: the
    correlation of the curve a figure of error against uncertainty draws, not of the pairs."""
    ok = np.isfinite(u) & np.isfinite(err)
    if ok.sum() < 2 * bins:
        return None
    b = pd.qcut(u[ok], bins, labels=False, duplicates="drop")
    means = pd.DataFrame({"b": b, "u": u[ok], "e": err[ok]}).groupby("b").mean()
    return float(np.corrcoef(means["u"], means["e"])[0, 1]) if len(means) > 2 else None


def uncertainty_figures(df: pd.DataFrame, kind: str, corr: dict) -> dict:
    """From eval-uncertainty's pairs: the model's default quantifier against the true error, Pearson on raw and
    log scale and Spearman, pooled and per policy; and how U separates random from behaviour (and learned)."""
    q = model_spec(kind).uncertainties[0]
    g = df[df["model"] == kind]
    out = {"quantifier": q}
    for group, part in [("pooled", g), *g.groupby("policy", sort=False)]:
        c = corr[kind][q].get(group, {})
        out[f"pearson_{group}"] = c.get("pearson")
        out[f"spearman_{group}"] = c.get("spearman")
        x, y = part[f"unc_{q}"].to_numpy(), part["true_error"].to_numpy()
        ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
        out[f"pearson_log_{group}"] = float(np.corrcoef(np.log(x[ok]), np.log(y[ok]))[0, 1]) if ok.sum() > 2 else None
    out["pearson_binned_pooled"] = binned_pearson(g[f"unc_{q}"].to_numpy(), g["true_error"].to_numpy())
    by = {p: part[f"unc_{q}"].to_numpy() for p, part in g.groupby("policy")}
    out["auc_random_vs_behaviour"] = _auc(by.get("random", np.array([])), by.get("behaviour", np.array([])))
    out["auc_learned_vs_behaviour"] = _auc(by.get("learned", np.array([])), by.get("behaviour", np.array([])))
    return out


def bootstrap_ci(values: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and the 2.5 / 97.5 percentiles of the mean over `reps` resamples of the seeds."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    means = v[np.random.default_rng(seed).integers(len(v), size=(reps, len(v)))].mean(1)
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per env x quality x model: each figure's mean and bootstrap 95 % interval over seeds."""
    out = []
    for (env, quality, kind), g in rows.groupby(["env", "quality", "model"], sort=False):
        rec = {"env": env, "quality": quality, "model": kind, "seeds": len(g)}
        for col, _, _ in FIGURES:
            if col in g:
                rec[col], rec[f"{col}_lo"], rec[f"{col}_hi"] = bootstrap_ci(g[col].to_numpy(float))
        out.append(rec)
    return pd.DataFrame(out)


def recommend(summary: pd.DataFrame, key: str = "compounding_h20") -> pd.DataFrame:
    """For each env x quality: the model with the lowest mean `key` (compounding error at H = 20), and why."""
    recs = []
    for (env, quality), g in summary.groupby(["env", "quality"], sort=False):
        g = g.dropna(subset=[key]).sort_values(key)
        if g.empty:
            continue
        best, rest = g.iloc[0], g.iloc[1:]
        why = f"{key.replace('_', ' ')} {best[key]:.3g} [{best[key + '_lo']:.3g}, {best[key + '_hi']:.3g}]"
        if len(rest):
            nxt = rest.iloc[0]
            overlap = best[key + "_hi"] >= nxt[key + "_lo"]
            why += f" vs {nxt['model']} {nxt[key]:.3g}" + (" (intervals overlap: not separated)" if overlap else "")
        if pd.notna(best.get("spearman_pooled")):
            why += f"; Spearman(U, error) {best['spearman_pooled']:.2f}"
        if pd.notna(best.get("admpo_off_score")):
            top = summary[(summary.env == env) & (summary.quality == quality)].sort_values(
                "admpo_off_score", ascending=False).iloc[0]
            why += f"; best ADMPO-OFF score here: {top['model']} ({top['admpo_off_score']:.1f})"
        recs.append({"data": f"{env} {quality}", "use": best["model"], "because": why})
    return pd.DataFrame(recs)


def write_page(rows: pd.DataFrame, out: Path, budget: str, sets: list[str] | None = None,
               data: pd.DataFrame | None = None) -> dict:
    """summary.csv, recommendations.csv, study.png and index.html under `out`. `sets`: the --set lines the
    study added to its budget (shown with it); `data`: one row per dataset (how it was made)."""
    from ..evaluate.plots import plot_study

    summary = summarise(rows)
    recs = recommend(summary)
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    atomic_write_text(out / "recommendations.csv", recs.to_csv(index=False))
    plot_study(summary, out / "study.png", HORIZONS)
    shown = []
    for col, label, _ in FIGURES:
        if col in summary:
            t = summary[["env", "quality", "model"]].copy()
            t[label] = [f"{m:.3g} [{lo:.3g}, {hi:.3g}]" if np.isfinite(m) else "-"
                        for m, lo, hi in zip(summary[col], summary[f"{col}_lo"], summary[f"{col}_hi"], strict=True)]
            shown.append(table(t, f"{label}: mean over seeds [bootstrap 95 % interval]"))
    seeds = sorted(rows["seed"].unique().tolist())
    budget_text = budget + (f" with --set {' '.join(sets)}" if sets else "")
    b64 = base64.b64encode((out / "study.png").read_bytes()).decode()
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>admpo model study</title><style>{CSS}"
            f"</style></head><body><h1>Which dynamics model for which data</h1><p class='meta'>budget "
            f"{html.escape(budget_text)}; seeds {seeds}; {len(rows)} runs. Uncertainty: each model's own quantifier "
            "(ADM: the authors' formula; ensemble and bootstrapping RNN: max aleatoric) against the simulator's "
            "true error of the predicted next state.</p>"
            + (table(data, "The datasets, collected locally (normalised: 0 = random, 100 = D4RL expert)")
               if data is not None and len(data) else "")
            + "<h2>Recommendations</h2>"
            + table(recs, "the lowest compounding error at H = 20, with the figures that back it")
            + f"<figure><img alt='the study at a glance' src='data:image/png;base64,{b64}'><figcaption><strong>"
              "At a glance.</strong> Top: compounding MSE against the horizon (log-log); bottom: Spearman "
              "correlation of the model's uncertainty with its true error. Mean over seeds, bootstrap 95 % "
              "interval.</figcaption></figure>"
            + "<h2>Figures</h2>" + "".join(shown) + "</body></html>")
    atomic_write_text(out / "index.html", page)
    return {"summary": summary, "recommendations": recs, "page": out / "index.html"}

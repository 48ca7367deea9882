"""Figures (matplotlib, Agg): compounding error, uncertainty scatter, learning curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..files import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_compounding(df: pd.DataFrame, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, g in df.groupby("model", sort=False):
        # horizons reached by few held-out starts are noise, not a curve
        g = g[g["n"] >= min(10, g["n"].max())].sort_values("horizon")
        over = g["overflow_frac"] > 0.5
        line = ax.plot(g["horizon"], g["mse_mean"].clip(lower=1e-8), label=name)[0]
        # on a log axis a band reaching zero is unreadable: floor it at a tenth of the mean
        low = np.maximum(g["ci_low"], g["mse_mean"] * 0.1).clip(lower=1e-8)
        ax.fill_between(g["horizon"], low, g["ci_high"].clip(lower=1e-8), color=line.get_color(), alpha=0.15)
        if over.any():
            first = g[over].iloc[0]
            ax.scatter([first["horizon"]], [first["mse_mean"]], marker="x", color=line.get_color(), zorder=5)
            ax.annotate("diverged", (first["horizon"], first["mse_mean"]), fontsize=8, color=line.get_color())
    ax.set_yscale("log")
    ax.set_xlabel("horizon (imagined steps)")
    ax.set_ylabel("MSE to the real state")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_uncertainty(df: pd.DataFrame, path: Path, title: str, quantifier_of: dict[str, str]) -> None:
    models = list(dict.fromkeys(df["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 4.0), squeeze=False)
    colors = {"random": "tab:red", "behaviour": "tab:blue", "learned": "tab:green"}
    for ax, model in zip(axes[0], models, strict=True):
        g = df[df["model"] == model]
        q = quantifier_of[model]
        for pol, gp in g.groupby("policy", sort=False):
            ax.scatter(gp[f"unc_{q}"], gp["true_error"], s=4, alpha=0.4, label=pol, color=colors.get(pol))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"uncertainty ({q})")
        ax.set_ylabel("true model error (simulator)")
        ax.set_title(model)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, markerscale=3)
    fig.suptitle(title)
    _save(fig, path)


def plot_learning_curves(curves: dict[str, list[pd.DataFrame]], path: Path, title: str, x: str = "step",
                         ycol: str = "score_mean") -> None:
    """curves: label -> one metrics frame per seed; mean ± standard error over seeds (the band)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, frames in curves.items():
        frames = [f for f in frames if ycol in f and f[ycol].notna().any()]
        if not frames:
            continue
        steps = sorted(set().union(*[set(f[x]) for f in frames]))
        ys = np.array([[np.interp(s, f[x], f[ycol]) for s in steps] for f in frames])
        mean = ys.mean(0)
        se = ys.std(0, ddof=1) / np.sqrt(len(frames)) if len(frames) > 1 else np.zeros_like(mean)
        line = ax.plot(steps, mean, label=f"{label} (n={len(frames)})")[0]
        ax.fill_between(steps, mean - se, mean + se, color=line.get_color(), alpha=0.2)
    ax.set_xlabel({"step": "gradient steps", "env_steps": "environment steps"}.get(x, x))
    ax.set_ylabel({"score_mean": "normalised score", "return_mean": "return"}.get(ycol, ycol))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_fine_tuning(runs: list[dict], path: Path, title: str) -> None:
    """Offline -> online as one curve per run: the source run's evaluations (left panel, its epochs or steps),
    then the fine-tuned run's (right panel, env steps; its step 0 is the source's last evaluation repeated).
    runs: {"label", "offline": [(x, return)], "offline_x": "epoch" | "step", "online": [(env_steps, return)]}."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 4.0), sharey=True, gridspec_kw={"wspace": 0.04})
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        ox, oy = zip(*run["offline"], strict=True) if run["offline"] else ((), ())
        nx, ny = zip(*run["online"], strict=True) if run["online"] else ((), ())
        left.plot(ox, oy, color=color, marker="o", ms=3)
        right.plot(nx, ny, color=color, marker="o", ms=3, label=run["label"])
    left.set_xlabel(f"offline ({runs[0]['offline_x']}s)" if runs else "offline")
    left.set_ylabel("return")
    right.set_xlabel("online (environment steps)")
    right.axvline(0, color="k", lw=0.8, ls=":")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(title)
    _save(fig, path)


def plot_tune_history(trials: pd.DataFrame, path: Path, objective: str) -> None:
    """A search's objective per trial (pruned ones hollow, at their last reported value) and the best so far."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    t = trials.sort_values("number")
    done, pruned = t[t["state"] == "COMPLETE"], t[t["state"] == "PRUNED"]
    ax.scatter(done["number"], done["value"], color="C0", label="finished", zorder=3)
    if len(pruned):
        ax.scatter(pruned["number"], pruned["value"], facecolors="none", edgecolors="C1", label="pruned", zorder=3)
    best = done["value"].cummax()
    ax.step(done["number"], best, where="post", color="C2", label="best so far")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_importances(importances: dict[str, float], path: Path) -> None:
    """Horizontal bars: each parameter's share of the objective's variance."""
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(names)))
    ax.barh(names, [importances[n] for n in names], color="C0")
    ax.set_xlabel("importance (share of variance)")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3, axis="x")
    _save(fig, path)


def plot_grid(df: pd.DataFrame, key: str, path: Path, ylabel: str) -> None:
    """Final score vs one swept setting (the paper's Figure 6: score vs m), a panel per task, a line per
    variant: mean ± std over seeds, each seed a dot. df: task, variant, value (of the key), seed, score."""
    tasks = sorted(df["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 3.8), squeeze=False)
    numeric = pd.to_numeric(df["value"], errors="coerce").notna().all()
    for ax, task in zip(axes[0], tasks, strict=True):
        d = df[df["task"] == task]
        for variant, g in d.groupby("variant", sort=False):
            xs = pd.to_numeric(g["value"]) if numeric else g["value"].astype(str)
            g = g.assign(x=xs)
            agg = g.groupby("x")["score"].agg(["mean", lambda s: s.std(ddof=0)]).sort_index()
            agg.columns = ["mean", "std"]
            line = ax.errorbar(agg.index, agg["mean"], yerr=agg["std"], marker="o", capsize=3, label=variant)
            ax.scatter(g["x"], g["score"], s=10, alpha=0.5, color=line[0].get_color())
        ax.set_xlabel(key)
        ax.set_ylabel(ylabel)
        ax.set_title(task)
        ax.grid(alpha=0.3)
        if numeric:
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0][-1].legend(fontsize=8)
    _save(fig, path)


def plot_profiles(taus: np.ndarray, profiles: dict, cis: dict, path: Path, xlabel: str) -> None:
    """Performance profiles: fraction of runs with a final score above tau, 95 % CI band."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for variant, prof in profiles.items():
        line = ax.plot(taus, prof, label=variant)[0]
        lo, hi = cis[variant]
        ax.fill_between(taus, lo, hi, color=line.get_color(), alpha=0.2)
    ax.set_xlabel(f"{xlabel} τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_study(summary: pd.DataFrame, path: Path, horizons: tuple[int, ...]) -> None:
    """The model study at a glance, a column per env x data quality: compounding MSE against the horizon
    (top, log scale) and Spearman(U, error) (bottom); each model's mean over seeds with its bootstrap 95 %
    interval. summary: report.model_study.summarise's frame."""
    cells = list(summary.groupby(["env", "quality"], sort=False))
    models = list(dict.fromkeys(summary["model"]))
    colors = {m: f"C{i}" for i, m in enumerate(models)}
    fig, axes = plt.subplots(2, len(cells), figsize=(3.4 * len(cells), 6.2), squeeze=False)
    for j, ((env, quality), g) in enumerate(cells):
        top, bottom = axes[0][j], axes[1][j]
        for i, r in enumerate(g.itertuples(index=False)):
            row = r._asdict()
            hs = [h for h in horizons if np.isfinite(row.get(f"compounding_h{h}", np.nan))]
            if hs:
                mean = np.array([row[f"compounding_h{h}"] for h in hs]).clip(1e-8)
                err = np.array([[max(row[f"compounding_h{h}"] - row[f"compounding_h{h}_lo"], 0),
                                 max(row[f"compounding_h{h}_hi"] - row[f"compounding_h{h}"], 0)] for h in hs]).T
                top.errorbar(hs, mean, yerr=err, marker="o", ms=3, capsize=2, color=colors[r.model], label=r.model)
            s = row.get("spearman_pooled", np.nan)
            if np.isfinite(s):
                bottom.bar(i, s, color=colors[r.model],
                           yerr=[[max(s - row["spearman_pooled_lo"], 0)], [max(row["spearman_pooled_hi"] - s, 0)]],
                           capsize=3)
        top.set_xscale("log")
        top.set_yscale("log")
        top.set_xticks(list(horizons), [str(h) for h in horizons])
        top.set_title(f"{env} {quality}", fontsize=10)
        top.set_xlabel("horizon H")
        top.grid(alpha=0.3)
        bottom.set_xticks(range(len(g)), list(g["model"]), rotation=30, fontsize=8)
        bottom.set_ylim(min(0.0, float(np.nanmin(g["spearman_pooled"].to_numpy(float), initial=0.0))) - 0.05, 1)
        bottom.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("compounding MSE")
    axes[1][0].set_ylabel("Spearman(U, true error)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


# The diagnostics figure's panels: (title, [(metrics column, legend)]); a panel is drawn where a column exists.
DIAGNOSTIC_PANELS = (
    ("value vs return", [("q_mean", "mean Q of the SAC batch"), ("return_mean", "true return (evaluation)")]),
    ("imagined reward per step", [("imagined_reward_mean", "model reward r"), ("penalty_mean", "penalty β·U"),
                                  ("uncertainty_mean", "uncertainty U")]),
    ("imagined rows that terminated", [("imagined_done_frac", "share of roll-out rows")]),
    ("model", [("model_holdout_mse", "hold-out MSE of the last fit"), ("model_buffer", "model buffer rows")]),
)


def plot_diagnostics(metrics: pd.DataFrame, path: Path, title: str, x: str) -> bool:
    """Why a model-based run collapses, from its metrics.csv: Q against the true return (over-estimation), the
    imagined reward against the penalty (exploitation), how often imagined rows terminate, and the model's
    hold-out error and buffer. One panel per group with data; False (nothing written) when none has."""
    def has(col: str) -> bool:
        return col in metrics and bool(pd.to_numeric(metrics[col], errors="coerce").notna().any())

    panels = [(t, [(c, n) for c, n in cols if has(c)]) for t, cols in DIAGNOSTIC_PANELS]
    panels = [(t, cols) for t, cols in panels if cols]
    if not panels or x not in metrics:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, (name, cols) in zip(axes[0], panels, strict=True):
        for i, (col, legend) in enumerate(cols):
            y = pd.to_numeric(metrics[col], errors="coerce")
            target = ax.twinx() if (name == "model" and i == 1) else ax  # rows and MSE: two scales
            target.plot(metrics[x], y, label=legend, color=f"C{i}")
            if target is not ax:
                target.set_ylabel(legend, color=f"C{i}", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel({"step": "gradient steps", "env_steps": "environment steps"}.get(x, x), fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
    return True

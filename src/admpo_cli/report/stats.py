"""Aggregates over seeds and tasks as the field reports them (Agarwal et al. 2021, rliable): the
interquartile mean with stratified-bootstrap 95 % confidence intervals, next to the plain mean ± std."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

BOOTSTRAP_REPS = 2000  # rliable's default for profiles; 50 000 for tables changes the CIs' third digit only
SEED = 0  # the bootstrap's random state: a report is reproducible


def score_matrices(df: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Final scores (task, variant, seed, value) -> per variant a (runs x tasks) matrix, as rliable wants it.
    A variant's tasks are those it ran; each task keeps the same number of runs (the smallest count over
    its tasks, lowest seeds first), so the matrix is rectangular."""
    mats, tasks_of = {}, {}
    for variant, g in df.groupby("variant", sort=False):
        tasks = sorted(g["task"].unique())
        cols = [g[g["task"] == t].sort_values("seed")["value"].to_numpy(float) for t in tasks]
        n = min(len(c) for c in cols)
        mats[variant] = np.stack([c[:n] for c in cols], axis=1)
        tasks_of[variant] = tasks
    return mats, tasks_of


def interval_table(df: pd.DataFrame, reps: int = BOOTSTRAP_REPS) -> pd.DataFrame:
    """One row per variant: tasks, runs, mean ± std (over all runs), IQM and its 95 % CI, the mean's CI."""
    from rliable import library as rly
    from rliable import metrics

    mats, tasks_of = score_matrices(df)
    if not mats:
        return pd.DataFrame(columns=["variant", "tasks", "runs", "mean", "std", "iqm", "iqm_lo", "iqm_hi",
                                     "mean_lo", "mean_hi"])
    def funcs(x):
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])
    with warnings.catch_warnings():  # arch's note that rliable's random_state keyword will change
        warnings.simplefilter("ignore", FutureWarning)
        points, cis = rly.get_interval_estimates(mats, funcs, reps=reps, random_state=np.random.RandomState(SEED))
    rows = []
    for v, m in mats.items():
        rows.append({"variant": v, "tasks": len(tasks_of[v]), "runs": int(m.size), "mean": float(m.mean()),
                     "std": float(m.std(ddof=0)), "iqm": float(points[v][0]), "iqm_lo": float(cis[v][0, 0]),
                     "iqm_hi": float(cis[v][1, 0]), "mean_lo": float(cis[v][0, 1]), "mean_hi": float(cis[v][1, 1])})
    return pd.DataFrame(rows)


def performance_profiles(df: pd.DataFrame, taus: np.ndarray, reps: int = BOOTSTRAP_REPS):
    """Fraction of runs (all tasks and seeds) with a final score above each tau, with 95 % CIs."""
    from rliable import library as rly

    mats, _ = score_matrices(df)
    if not mats:
        return {}, {}
    np.random.seed(SEED)  # rliable's profile bootstrap draws from numpy's global state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return rly.create_performance_profile(mats, taus, reps=reps)

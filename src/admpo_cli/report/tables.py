"""Tables in the layout of the paper's Tables 1 and 2: tasks x variants, mean ± std over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .collect_runs import RunRecord
from .paper import PAPER_ADMPO_OFF


def finals(records: list[RunRecord], key: str) -> pd.DataFrame:
    """One row per complete run: task, variant, seed, value (summary[key])."""
    rows = [{"task": r.task, "variant": r.variant, "seed": r.seed, "value": r.summary.get(key)}
            for r in records if r.complete and r.summary.get(key) is not None]
    return pd.DataFrame(rows, columns=["task", "variant", "seed", "value"])


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """task x variant -> mean, std (population, ddof=0, over seeds), n."""
    g = df.groupby(["task", "variant"])["value"]
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=0), "n": g.count()}).reset_index()


def score_table(df: pd.DataFrame, paper: bool = False, decimals: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns (numeric, text): rows are tasks plus "average", columns are variants.

    The average row averages the per-task means of a variant over the tasks where it ran; it is left
    blank where a variant misses a task that another variant has (no silent partial averages).
    """
    agg = aggregate(df)
    tasks = sorted(agg["task"].unique())
    variants = list(dict.fromkeys(agg.sort_values("variant")["variant"]))
    mean = agg.pivot(index="task", columns="variant", values="mean").reindex(index=tasks, columns=variants)
    std = agg.pivot(index="task", columns="variant", values="std").reindex(index=tasks, columns=variants)
    n = agg.pivot(index="task", columns="variant", values="n").reindex(index=tasks, columns=variants)
    text = pd.DataFrame(index=tasks + ["average"], columns=variants, dtype=object)
    for t in tasks:
        for v in variants:
            if pd.notna(mean.loc[t, v]):
                k = int(n.loc[t, v])
                text.loc[t, v] = (f"{mean.loc[t, v]:.{decimals}f} ± {std.loc[t, v]:.{decimals}f} (n={k})" if k > 1
                                  else f"{mean.loc[t, v]:.{decimals}f} (n=1)")
            else:
                text.loc[t, v] = "–"
    numeric = mean.copy()
    avg = {}
    for v in variants:
        col = mean[v]
        avg[v] = float(col.mean()) if col.notna().all() else np.nan
        text.loc["average", v] = f"{avg[v]:.{decimals}f}" if col.notna().all() else "–"
    numeric.loc["average"] = pd.Series(avg)
    if paper:
        pv = [PAPER_ADMPO_OFF.get(t) for t in tasks]
        numeric["paper: ADMPO-OFF"] = pv + [np.mean(pv) if all(p is not None for p in pv) else np.nan]
        text["paper: ADMPO-OFF"] = [("–" if p is None else f"{p:.1f}") for p in pv] + [
            f"{np.mean(pv):.1f}" if all(p is not None for p in pv) else "–"]
    text.index.name = "task"
    numeric.index.name = "task"
    return numeric, text


def to_markdown(text: pd.DataFrame, caption: str) -> str:
    cols = [text.index.name or ""] + list(text.columns)
    lines = [f"**{caption}**", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in text.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [str(v) for v in row.tolist()]) + " |")
    return "\n".join(lines) + "\n"

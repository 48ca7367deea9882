"""A hyper-parameter search's page (`admpo tune`): what was searched and how it was selected, the best
configuration, the optimisation history, the parameters' importances, every trial, and how well the offline
criterion ranks the trials' policies against the simulator's true returns."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from ..files import atomic_write_text
from .html import CSS, table


def spearman(a: pd.Series, b: pd.Series) -> float | None:
    """Spearman's rank correlation over the pairs where both are known (none below 3 pairs or without spread)."""
    ok = a.notna() & b.notna()
    if ok.sum() < 3:
        return None
    rho = a[ok].astype(float).corr(b[ok].astype(float), method="spearman")
    return None if pd.isna(rho) else float(rho)


# the offline criteria a search records for every trial: column -> what it is
CRITERIA = {"model_return": "each policy's return in its own learned model from the dataset's start windows",
            "fqe_value": "each policy's value by fitted Q evaluation on the dataset"}


def criterion_agreement(trials: pd.DataFrame) -> dict[str, dict]:
    """For each offline criterion the trials recorded, over the finished (not pruned) trials: its Spearman
    correlation with the simulator's final return, and whether both pick the same best trial."""
    return {col: _agreement(trials, col) for col in CRITERIA if col in trials and trials[col].notna().any()}


def _agreement(trials: pd.DataFrame, col: str) -> dict:
    done = trials[trials["state"] == "COMPLETE"]
    both = done.dropna(subset=[col, "final_return"])
    if len(both) < 3:
        return {"spearman": None, "n": int(len(both))}
    return {"spearman": spearman(both[col], both["final_return"]), "n": int(len(both)),
            "best_by_criterion": int(both.loc[both[col].idxmax(), "number"]),
            "best_by_simulator": int(both.loc[both["final_return"].idxmax(), "number"])}


def _img(path: Path, alt: str, caption: str) -> str:
    b64 = base64.b64encode(path.read_bytes()).decode()
    return (f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{caption}</figcaption></figure>")


def write_tune_page(out: Path, trials: pd.DataFrame, importances: dict[str, float], header: dict) -> dict:
    """history.png, importances.png and index.html under `out`; returns the criterion's agreement."""
    from ..evaluate.plots import plot_importances, plot_tune_history

    agree = criterion_agreement(trials)
    plot_tune_history(trials, out / "history.png", header["objective"])
    parts = [f"<h1>Hyper-parameter search: {html.escape(header['preset'])}, {html.escape(header['algo'])}</h1>",
             f"<p class='meta'>{len(trials)} trials of {header['trials']}; TPE sampler (seed {header['sampler_seed']})"
             f"{', median pruner on the evaluation curve' if header['prune'] else ', no pruning'}; selected on "
             f"<strong>{html.escape(header['objective'])}</strong>. Space: "
             f"{html.escape('; '.join(header['space']))}. Storage: study.db (SQLite).</p>"]
    if header.get("best"):
        b = header["best"]
        command = header.get("command", "train-off")  # train-off, or train-on for an online preset
        parts.append(f"<h2>Best configuration</h2><p>trial {b['number']}, {html.escape(header['objective'])} "
                     f"{b['value']:.4g}: <code>{html.escape(', '.join(f'{k}={v}' for k, v in b['params'].items()))}"
                     f"</code> — written to <code>best.yaml</code> (<code>admpo {command} --preset "
                     f"{html.escape(header['preset'])} --config best.yaml</code>).</p>")
    parts.append(_img(out / "history.png", "optimisation history",
                      "<strong>Optimisation history.</strong> Each trial's objective (pruned trials at their last "
                      "reported value, hollow) and the best so far. Higher is better."))
    if importances:
        plot_importances(importances, out / "importances.png")
        parts.append(_img(out / "importances.png", "parameter importances",
                          "<strong>Parameter importances</strong> (Optuna's fANOVA over the finished trials): the "
                          "share of the objective's variance each parameter explains."))
    parts.append("<h2>Do the offline criteria rank the trials as the simulator does?</h2>"
                 + "".join(_agreement_text(col, a) for col, a in agree.items())
                 + ("" if agree else "<p>No offline criterion was recorded (an online preset).</p>"))
    shown = trials.drop(columns=[c for c in ("run",) if c in trials]).astype(object)
    shown = shown.map(lambda v: f"{v:.4g}" if isinstance(v, float) and v == v else v)  # 4 digits, not 1 decimal
    parts.append(table(shown, "every trial: its parameters, state, objective and both criteria"))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>admpo tune</title><style>{CSS}</style>"
            f"</head><body>{''.join(parts)}</body></html>")
    atomic_write_text(out / "index.html", page)
    return agree


def _agreement_text(col: str, agree: dict) -> str:
    what = CRITERIA[col]
    if agree.get("spearman") is None:
        return (f"<p><code>{col}</code> ({what}): not enough finished trials with both figures "
                f"({agree.get('n', 0)}; 3 needed) to rank it against the simulator.</p>")
    same = ("the same trial" if agree["best_by_criterion"] == agree["best_by_simulator"] else
            f"trial {agree['best_by_criterion']} where the simulator's best is trial {agree['best_by_simulator']}")
    return (f"<p><code>{col}</code> — {what}, no simulator — ranks the {agree['n']} finished trials with a "
            f"Spearman correlation of <strong>{agree['spearman']:.2f}</strong> against their true final returns in "
            f"the simulator (1: the same order); it picks {same}.</p>")

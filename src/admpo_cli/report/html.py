"""The report page: a self-contained HTML document (figures inlined), readable on its own: a header of
what was compared, tables without index columns at one decimal, figures with captions, every run linked."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222;
line-height:1.45;padding:0 1em}
h1{margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#555;font-size:.92em}
table{border-collapse:collapse;margin:.6em 0 1.2em}
td,th{padding:4px 10px;border-bottom:1px solid #e4e4e4;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;color:#555;font-size:.92em;padding-bottom:.3em}
figure{margin:1.4em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#444;font-size:.92em;margin-top:.3em}
a{color:#1a5fb4}
"""


@dataclass
class Figure:
    title: str
    path: Path
    caption: str


def table(df: pd.DataFrame, caption: str = "", index: str | None = None) -> str:
    """A table without pandas' index column; `index` names the column the index becomes (if kept)."""
    if index is not None:
        df = df.reset_index().rename(columns={"index": index})
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.1f}"
    return html.escape(str(v))


def document(header: dict, scores: pd.DataFrame, returns: pd.DataFrame, intervals: pd.DataFrame,
             pending: pd.DataFrame, corr: pd.DataFrame, figures: list[Figure], runs: list[dict],
             paper: bool) -> str:
    h = header
    e = html.escape
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>admpo report</title>",
             f"<style>{CSS}</style></head><body>", "<h1>admpo report</h1>",
             f"<p class='meta'>Generated {e(h['date'])} by admpo {e(h['admpo'])} from {e(', '.join(h['sources']))}. "
             f"{h['complete']} of {h['runs']} runs finished; seeds {e(_ranges(h['seeds']))}.</p>",
             "<h2>What was compared</h2>",
             f"<p>Variants: {e('; '.join(h['variants']))}.</p>",
             table(h["datasets"], "Datasets: the fingerprint of the data each run trained on (online tasks collect "
                                  "their own)"),
             "<p class='meta'>Versions: " + _versions(h) + ".</p>"]
    if len(intervals):
        parts += ["<h2>Across tasks</h2>",
                  "<p>Final normalised scores pooled over tasks and seeds. The interquartile mean (IQM) and the "
                  "95 % confidence intervals come from a stratified bootstrap over runs (rliable); IQM is robust to "
                  "the outlier runs that move a mean. Higher is better.</p>",
                  table(intervals, "Final normalised score over all tasks of each variant")]
    parts += ["<h2>Per task</h2>",
              "<p>Final = mean of each run's last evaluations; mean ± std (population) over seeds, n runs. "
              "The average row averages a variant's task means only where it ran every task."
              + (" <em>paper:</em> the published ADMPO-OFF score, not a run of ours." if paper else "") + "</p>",
              table(scores, "Normalised score (0 = random policy, 100 = expert)", index="task"),
              table(returns, "Raw return", index="task")]
    if len(pending):
        parts += ["<h2>Not averaged in</h2><p>Runs still running, failed or interrupted.</p>", table(pending)]
    for f in figures:
        b64 = base64.b64encode(f.path.read_bytes()).decode()
        parts += [f"<figure><img alt='{e(f.title)}' src='data:image/png;base64,{b64}'>",
                  f"<figcaption><strong>{e(f.title)}.</strong> {e(f.caption)}</figcaption></figure>"]
    if len(corr):
        parts += ["<h2>Uncertainty vs true model error</h2>", table(corr, "Correlation over held-out transitions")]
    parts += ["<h2>Runs</h2>", "<table><caption>Every run read; the name links to its run directory "
              "(config.yaml, metrics.csv, summary.json)</caption><thead><tr>"
              + "".join(f"<th>{c}</th>" for c in ("run", "task", "variant", "seed", "status", "score", "return"))
              + "</tr></thead><tbody>"]
    for r in runs:
        parts.append(f"<tr><td><a href='{e(r['href'])}/'>{e(r['run'])}</a></td><td>{e(r['task'])}</td>"
                     f"<td>{e(r['variant'])}</td><td>{r['seed']}</td><td>{e(r['status'])}</td>"
                     f"<td>{e(r['score']) or '–'}</td><td>{e(r['return']) or '–'}</td></tr>")
    parts += ["</tbody></table>", "</body></html>"]
    return "\n".join(parts)


def _versions(h: dict) -> str:
    text = "; ".join(f"{k} {v}" for k, v in h["versions"].items()) or "–"
    if h["revisions"]:
        text += f"; git revision {', '.join(h['revisions'])}"
    return html.escape(text)


def _ranges(xs: list[int]) -> str:
    if not xs:
        return "–"
    out, start, prev = [], xs[0], xs[0]
    for x in xs[1:] + [None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(f"{start}" if start == prev else f"{start}–{prev}")
        if x is not None:
            start = prev = x
    return ", ".join(out)

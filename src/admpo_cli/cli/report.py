"""`admpo report`: tables and figures over runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .app import app
from .options import (
    user_errors,
)
from .ui import console


@app.command()
@user_errors
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories, or folders searched for them.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("report"),
    paper: Annotated[bool, typer.Option(help="Add the paper's published ADMPO-OFF scores, marked as such.")] = False,
    pool_modified: Annotated[bool, typer.Option(
        help="Pool runs that changed protocol keys (--set, --config, --steps) with the protocol runs of their "
             "algorithm; by default each is its own '(modified: KEYS)' variant.")] = False,
) -> None:
    """A report document over run directories or a sweep's study folder: IQM with bootstrap CIs, per-task
    tables (Tables 1/2 layout), captioned figures (Figure 6 for a grid), one self-contained index.html."""
    from ..stages.report import report_stage

    res = report_stage(runs, out, paper, pool_modified)
    for title, df in (("normalised score: mean ± std (n seeds)", res["scores"]), ("raw return", res["returns"])):
        table = Table(title=title)
        table.add_column("task")
        for c in df.columns:
            table.add_column(str(c), justify="right")
        for idx, row in df.iterrows():
            table.add_row(str(idx), *[str(v) for v in row.tolist()])
        console.print(table)
    if len(res["pending"]):
        console.print(f"[yellow]{len(res['pending'])} run(s) not finished, listed apart:[/yellow] "
                      + ", ".join(res["pending"]["run"]))
    console.print(f"{res['runs']} runs -> {res['out']}/index.html, summary.csv, summary.md, "
                  f"{len(res['figures'])} figures")



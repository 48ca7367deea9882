"""`admpo conformance` (the checks every registered model, algorithm, penalty and format must pass) and
`admpo new-plugin` (a plugin package with one of each, from the template shipped with admpo)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .app import app
from .options import RichProgress, user_errors
from .ui import console, err_console

NamesOpt = list[str] | None


@app.command()
@user_errors
def conformance(
    model: Annotated[NamesOpt, typer.Option("--model", help="A registered dynamics model (repeat for more).")] = None,
    algo: Annotated[NamesOpt, typer.Option("--algo", help="A registered algorithm (a tiny run each).")] = None,
    penalty: Annotated[NamesOpt, typer.Option("--penalty", help="A registered uncertainty penalty.")] = None,
    fmt: Annotated[NamesOpt, typer.Option("--format", help="A registered dataset format.")] = None,
) -> None:
    """Check registered extensions against what admpo expects of them (none named: every registered one):
    fits lower the hold-out loss, files round-trip, steppers have the right shapes, ModelEnv passes check_env,
    roll-outs and tiny training runs work, datasets round-trip. Exit status 1 if any check fails."""
    from ..stages.conformance import conformance as run

    named = {k: v for k, v in (("model", model), ("algorithm", algo), ("penalty", penalty), ("format", fmt)) if v}
    rows = run(named or None, RichProgress())
    table = Table(title="admpo conformance")
    for col in ("kind", "name", "check", "result"):
        table.add_column(col, overflow="fold")
    for r in rows:
        mark = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
        table.add_row(r.kind, r.name, r.check, f"{mark} {escape(r.detail)}")
    console.print(table)
    failed = [r for r in rows if not r.passed]
    console.print(f"{len(rows) - len(failed)}/{len(rows)} checks passed")
    if failed:
        for r in failed:
            err_console.print(f"[red]failed[/red] {r.kind} {r.name}: {r.check}: {escape(r.detail)}", highlight=False)
        raise typer.Exit(1)


@app.command("new-plugin")
@user_errors
def new_plugin(
    folder: Annotated[Path, typer.Argument(help="Where to write the package (must not exist yet).")],
    name: Annotated[str, typer.Option(help="The Python package's name (a valid identifier, e.g. my_admpo_ext).")],
) -> None:
    """Write a plugin package with a dynamics model, an algorithm, an uncertainty penalty and a dataset format,
    each one file with its registration and its own config keys, and its entry points in pyproject.toml;
    `pip install -e FOLDER` then `admpo conformance` checks it."""
    from ..stages.plugin_template import write_template

    written = write_template(folder, name)
    for path in written:
        console.print(f"wrote {path}")
    console.print(f"next: pip install -e {folder} && admpo conformance --model {name}-model --algo {name}-algo "
                  f"--penalty {name}-penalty --format {name}-format")

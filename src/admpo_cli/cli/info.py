"""`admpo presets list|show` and `admpo doctor`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..config import dump_yaml, preset_budgets, preset_columns, preset_description, preset_paths
from .app import app, presets_app
from .options import (
    user_errors,
)
from .ui import console


@presets_app.command("list")
@user_errors
def presets_list() -> None:
    """All shipped presets with their task, data source and key settings."""
    table = Table(title="admpo presets")
    table.add_column("preset", no_wrap=True)
    for col in ("benchmark", "m", "H", "beta", "budgets", "description"):
        table.add_column(col, overflow="fold")
    for name in preset_paths():
        benchmark, m, horizon, beta = preset_columns(name)
        table.add_row(name, benchmark, str(m), str(horizon), f"{beta:g}", ", ".join(preset_budgets(name)) or "-",
                      preset_description(name))
    console.print(table)


@presets_app.command("show")
@user_errors
def presets_show(
    name: Annotated[str, typer.Argument(help="Preset name.")],
    algo: Annotated[str | None, typer.Option(
        "--algo", help="Show the settings this algorithm runs with on the preset (a baseline's published ones).",
    )] = None,
    budget: Annotated[str | None, typer.Option("--budget", help="Show the preset at one of its named budgets.")] = None,
) -> None:
    """The preset resolved over the defaults, as YAML (the full protocol unless --budget), then the named
    reduced budgets it offers and what each changes."""
    import yaml

    from ..config import resolve

    cfg = resolve(name, flags={"train.algo": algo}, budget=budget)
    console.print(dump_yaml(cfg), highlight=False, markup=False, soft_wrap=True)
    budgets = preset_budgets(name)
    if budgets:
        note = "# named reduced budgets (--budget NAME): what each changes over the protocol above\n"
        console.print(note + yaml.safe_dump({"budgets": budgets}, sort_keys=False, width=1000), highlight=False,
                      markup=False, soft_wrap=True)


# ---------------------------------------------------------------- doctor


@app.command()
@user_errors
def doctor() -> None:
    """Versions, MuJoCo environments, torch threads, CUDA, the registered models, algorithms, penalties and
    dataset formats (plugins with their package), optional packages: paste it into a bug report."""
    from ..stages.doctor import doctor_stage

    table = Table(title="admpo doctor")
    table.add_column("check")
    table.add_column("result", overflow="fold")
    colour = {"ok": "{}", "warn": "[yellow]{}[/yellow]", "fail": "[red]{}[/red]"}
    for check, result, status in doctor_stage():
        table.add_row(check, colour[status].format(escape(result)))
    console.print(table)


# ---------------------------------------------------------------- data



"""The Typer application and its sub-apps; the command modules register on them."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="admpo",
    help="Any-step Dynamics Model (ADM), ADMPO-ON and ADMPO-OFF: fit, measure, train, report.\n\n"
         "Shell completion: admpo --install-completion (bash, zsh or fish).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,  # switched on in cli.main() when the shell asks (it costs ~80 ms a start)
)
presets_app = typer.Typer(help="List and show the shipped presets.", no_args_is_help=True)
data_app = typer.Typer(help="Inspect and download datasets.", no_args_is_help=True)
app.add_typer(presets_app, name="presets")
app.add_typer(data_app, name="data")

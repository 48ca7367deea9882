"""The `admpo` command line: parse options, resolve the config, call one stage, render its progress and
print a summary. The only package that prints. One module per command group:

- info.py     presets list|show, doctor          - data.py    collect, data info
- models.py   fit-model, eval-compounding/-uncertainty
- train.py    train-off, train-on, train-bc, resume  - report.py  report
- sweep.py    sweep (local pool or Ray)           - policy.py  eval-policy, export
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import __version__
from ..errors import UserError
from . import data, info, models, policy, report, sweep, train  # noqa: F401  (the commands register on the app)
from .app import app
from .ui import console, err_console


def _version(value: bool) -> None:
    if value:
        console.print(f"admpo {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    pass


def main() -> None:
    try:
        app()
    except UserError as exc:  # raised outside a command (e.g. during option parsing)
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)


__all__ = ["app", "main"]

"""The `admpo` command line: parse options, resolve the config, call one stage, render its progress and
print a summary. The only package that prints. One module per command group:

- info.py     presets list|show, doctor          - data.py    collect, data info
- models.py   fit-model, eval-compounding/-uncertainty
- train.py    train-off, train-on, train-bc, resume  - report.py  report
- sweep.py    sweep (local pool or Ray)           - policy.py  eval-policy, export
- plugins.py  conformance, new-plugin          - tune.py    tune (Optuna over the sweep's executors)
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from .. import __version__
from ..errors import UserError
from . import data, info, models, plugins, policy, report, study, sweep, train, tune  # noqa: F401  (the commands register on the app)
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


COMPLETION_FLAGS = ("--install-completion", "--show-completion")


def main() -> None:
    # Shell completion (`admpo --install-completion [bash|zsh|fish]`, and the shell's own calls, which set
    # _ADMPO_COMPLETE) is wired in only when asked for: Typer's completion options add ~80 ms to every start.
    if os.environ.get("_ADMPO_COMPLETE") or any(a.split("=")[0] in COMPLETION_FLAGS for a in sys.argv[1:]):
        app._add_completion = True
    try:
        app()
    except UserError as exc:  # raised outside a command (e.g. during option parsing)
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)


__all__ = ["app", "main"]

"""Terminal output for the CLI: the consoles and progress bars with ETA."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=False)
err_console = Console(stderr=True)


def quiet() -> bool:
    return os.environ.get("ADMPO_QUIET", "") not in ("", "0")


def progress_bar() -> Progress:
    """A bar with count, elapsed time and ETA; plain (no animation) when output is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=quiet(),
        transient=not sys.stdout.isatty(),
    )

"""`admpo report`: the report document over run directories or a study folder (report/build.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def report_stage(runs: list[Path], out: Path, paper: bool = False, pool_modified: bool = False) -> dict[str, Any]:
    """Read the runs, write index.html, summary.csv/.md and the figures to `out`; returns the tables.
    pool_modified: report runs that changed protocol keys with the protocol runs of their algorithm."""
    from ..report.build import build_report

    return build_report(runs, out, paper, pool_modified)

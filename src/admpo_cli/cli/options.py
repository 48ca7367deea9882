"""What every command shares: the common options, one-line user errors, config and run set-up, the
Rich rendering of the stages' progress and messages. Nothing here imports torch at import time, so
`admpo --help` and `admpo presets` answer at once."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..config import resolve
from ..errors import DivergenceError, UserError
from ..events import Progress, Task
from ..rundir import RunDir
from .ui import err_console, progress_bar


def user_errors(fn):
    """User mistakes print one red line and exit 2; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        show_messages()
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except DivergenceError as exc:
            err_console.print(f"[red]diverged:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(3) from None
        except KeyboardInterrupt as exc:
            from ..process import StopNow

            how = "stopped at once (the unfinished step not saved)" if isinstance(exc, StopNow) else "interrupted"
            err_console.print(f"[yellow]{how}[/yellow]: the last checkpoint is kept; `admpo resume RUN` continues")
            raise typer.Exit(130) from None

    return wrapper


PresetOpt = Annotated[str | None, typer.Option("--preset", "-p", help="Preset name (see `admpo presets list`).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML file of overrides (as in config.yaml).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override one field: section.key=value (repeatable).")]
RunOpt = Annotated[Path | None, typer.Option(
    "--run", help="Run directory (default: runs/<preset>/<algo>[-<model>]-s<seed>[-<hash of other overrides>]).")]
BudgetOpt = Annotated[str | None, typer.Option(
    "--budget", help="A named reduced budget of the preset (e.g. cpu; see `admpo presets show PRESET`): recorded in "
    "config.yaml and summary.json, named in the run's directory and label; the report marks such runs "
    "'(reduced budget)'. Without it a paper preset runs its published protocol at full cost.")]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="Dataset file or id; overrides the preset's.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed for python, numpy and torch.")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]


def emit_json(obj) -> None:
    """The summary as one JSON object on stdout (progress and messages are off or on stderr)."""
    import json
    import sys

    from ..files import json_default

    sys.stdout.write(json.dumps(obj, default=json_default, sort_keys=True) + "\n")
    sys.stdout.flush()


def json_mode(on: bool) -> None:
    """--json: no progress bars and no Rich output on stdout."""
    import os

    if on:
        os.environ["ADMPO_QUIET"] = "1"


def typer_table(title: str, columns, rows) -> Table:
    table = Table(title=title)
    for c in columns:
        table.add_column(str(c))
    for r in rows:
        table.add_row(*[str(v) for v in r])
    return table


def kv_table(title: str, rows) -> Table:
    table = Table(title=title)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for k, v in rows:
        table.add_row(str(k), str(v))
    return table


def setup(preset, config, sets, run, dataset, seed, device, extra_flags=None, *, read_only: bool = False,
          force: bool = False, command: str | None = None, budget: str | None = None):
    """Resolve the config (defaults < preset < published settings < --config < --set < flags), open the
    run, seed, pick the device.

    The default run directory is named by what makes a run different (config.run_name). A command that
    makes results (fit, train) creates the run or opens one made with the same settings; a command that
    only reads a run (`read_only`) needs an existing run and applies its --set on top of the run's config
    without changing config.yaml. `command`: refuse settings that belong to another command before any
    directory is made."""
    from ..config import run_name
    from ..device import pick_device
    from ..process import seed_everything
    from ..registry import check_command
    from ..stages.setup import start_run

    flags = {"data.path": dataset, "run.seed": seed, "run.device": device, **(extra_flags or {})}
    base = None
    if run is not None and (Path(run) / "config.yaml").exists() and preset is None and config is None:
        # An existing run supplies its own resolved config; --set and flags still apply on top.
        base = RunDir.open(run).config()
    cfg = resolve(preset, config, sets, flags, base=base, budget=budget)
    if command:
        check_command(command, cfg.train.algo, cfg.train.setting, cfg.preset)
    if not read_only:
        rd, dev = start_run(cfg, run, force)
        return cfg, rd, dev
    rd = RunDir.open(Path(run) if run is not None else Path(cfg.run.root) / run_name(cfg))
    if base is None:
        cfg = resolve(None, None, sets, flags, base=rd.config())
    seed_everything(cfg.run.seed)
    return cfg, rd, pick_device(cfg.run.device)


# ---------------------------------------------------------------- presets



class _RichTask(Task):
    def __init__(self, bar, key):
        self.bar, self.key = bar, key

    def update(self, completed=None, advance=0, total=None, info=""):
        kw = {"info": info} if info else {}
        if total is not None:
            kw["total"] = total
        if completed is not None:
            kw["completed"] = completed
        self.bar.update(self.key, advance=advance, **kw)


class RichProgress(Progress):
    """The stages' progress as Rich bars with count, elapsed time and ETA, one bar per task."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        with progress_bar() as bar:
            yield _RichTask(bar, bar.add_task(description, total=total, info=""))


class _RichLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        style = "yellow" if record.levelno >= logging.WARNING else "dim"
        err_console.print(f"[{style}]admpo:[/{style}] {record.getMessage()}", highlight=False, soft_wrap=True)


def show_messages() -> None:
    """The "admpo" logger's records (kernel builds, dropped rows, resumed runs) on stderr."""
    log = logging.getLogger("admpo")
    if not any(isinstance(h, _RichLog) for h in log.handlers):
        log.addHandler(_RichLog())
        log.setLevel(logging.INFO)
        log.propagate = False

"""`admpo sweep`: tasks x seeds x variants (x a grid), each a run directory, on a local pool or Ray."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..registry import ALGORITHMS
from .app import app
from .options import BudgetOpt, ConfigOpt, DatasetOpt, DeviceOpt, RichProgress, SetOpt, user_errors
from .ui import console, err_console, quiet

_STYLE = {"done": "green", "failed": "red", "running": "cyan", "queued": "dim", "busy": "yellow",
          "interrupted": "yellow"}


def _fmt_s(s: float | None) -> str:
    if s is None:
        return ""
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _table(rows, out: Path, title: str) -> Table:
    t = Table(title=title)
    for c, j in (("run", "left"), ("state", "left"), ("step", "right"), ("score", "right"), ("wall", "right"),
                 ("eta", "right"), ("note", "left")):
        t.add_column(c, justify=j, overflow="fold")
    for r in rows:
        st = r.st
        name = r.spec.name_in(out)
        score = "" if st.score is None else f"{st.score:.1f}" + (" (ret)" if st.score_kind == "return" else "")
        step = f"{st.step}/{st.total}" if st.total else str(st.step)
        note = st.error if st.state == "failed" else r.note
        style = _STYLE.get(st.state, "")
        t.add_row(name, f"[{style}]{st.state}[/{style}]" if style else st.state, step, score, _fmt_s(st.wall_s or None),
                  _fmt_s(r.eta_s), note)
    return t


@app.command()
@user_errors
def sweep(
    presets: Annotated[str | None, typer.Option(
        "--presets", "--preset", "-p", help="Comma-separated presets, e.g. hopper-medium,walker2d-medium.")] = None,
    algos: Annotated[str, typer.Option("--algos", "--algo",
                                       help=f"Comma-separated registered algorithms ({', '.join(ALGORITHMS.names())})"
                                            ": admpo, mopo, bc on offline presets; admpo, mbpo, sac on online "
                                            "ones.")] = "admpo",
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds: a range 0-4 or a list 0,1,5.")] = "0",
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", help="A swept setting: section.key=v1,v2,... (repeatable; the runs are the product).")] = None,
    set_: SetOpt = None, config: ConfigOpt = None, dataset: DatasetOpt = None, device: DeviceOpt = None,
    budget: BudgetOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Study folder: run directories, study.yaml, study.csv.")] = Path(
        "runs/study"),
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Local runs at once (each gets cores/jobs threads).")] = 1,
    ray: Annotated[str | None, typer.Option("--ray", help="'local': start a Ray cluster on this machine for the "
                                                          "sweep (pip install 'admpo\\[ray]').")] = None,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="Run on an existing Ray cluster: auto | HOST:PORT.")] = None,
    cpus_per_run: Annotated[float, typer.Option(help="Ray: CPUs a run asks for (its torch threads).")] = 1.0,
    gpus_per_run: Annotated[float, typer.Option(help="Ray: GPUs a run asks for (0 on CPU-only clusters).")] = 0.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the runs and what each would do; run none.")] = False,
) -> None:
    """Run a study: every preset x algorithm x grid point x seed as its own run directory under --out.

    Finished runs are skipped, interrupted ones resumed from their checkpoints, the rest started; running
    the same command again after a crash or Ctrl-C finishes only what is missing. Exit code 0 when every
    run finished, 1 otherwise. `admpo report OUT` aggregates the study."""
    from ..sweep.plan import parse_grid, parse_list, parse_seeds, plan_sweep

    if ray and ray != "local":
        raise _bad("--ray", f"expected 'local' (or --ray-address HOST:PORT for an existing cluster); got {ray!r}")
    if ray and ray_address:
        raise _bad("--ray", "give --ray local or --ray-address, not both")
    if not presets:
        raise _bad("--presets", "name at least one preset (admpo presets list)")
    grid_map = parse_grid(grid)
    out = out.resolve()
    runs, skipped = plan_sweep(parse_list(presets, "--presets"), parse_list(algos, "--algos"), parse_seeds(seeds),
                               grid_map, set_, str(config) if config else None, dataset, device, out, budget)
    if skipped:
        console.print(f"left out (the algorithm belongs to the other setting): {', '.join(skipped)}")
    if dry_run:
        console.print(_dry_run_table(runs, out))
        return
    executor = _executor(ray, ray_address, cpus_per_run, gpus_per_run, jobs)
    _prepare(executor, out, grid_map, runs, {"executor": executor.name, "jobs": jobs, "set": list(set_ or []),
                                             "config": str(config) if config else None, "dataset": dataset,
                                             "device": device, "budget": budget})
    _run_and_report(runs, executor, out)


def _dry_run_table(runs, out: Path) -> Table:
    """What each run would do now: start, resume, skip."""
    from ..sweep.state import lock_path, read_state

    t = Table(title=f"{len(runs)} runs -> {out} (dry run: nothing runs)")
    for c in ("run", "command", "grid", "now"):
        t.add_column(c, overflow="fold")
    for r in runs:
        st = read_state(r.path, r.config, lock_path(out, r.path))
        now = {"done": "skip (done)", "interrupted": "resume", "busy": "skip (another process trains it)",
               "pending": "start", "failed": "start again"}.get(st.state, st.state)
        t.add_row(r.name_in(out), r.command, " ".join(f"{k}={v}" for k, v in r.point) or "-", now)
    return t


def _executor(ray: str | None, ray_address: str | None, cpus_per_run: float, gpus_per_run: float, jobs: int):
    if ray or ray_address:
        from ..sweep.executors import RayExecutor

        return RayExecutor(ray_address, cpus_per_run, gpus_per_run)
    from ..sweep.executors import LocalExecutor

    return LocalExecutor(jobs)


def _prepare(executor, out: Path, grid_map: dict, runs, settings: dict) -> None:
    """The study folder, study.yaml and the datasets runs collect, before any run starts (the executor closed if
    any of it fails)."""
    from ..sweep.study import prepare_datasets, write_study_yaml

    try:
        out.mkdir(parents=True, exist_ok=True)
        executor.check_writable(out)
        write_study_yaml(out, grid_map, runs, settings)
        prepare_datasets(runs, RichProgress())
    except BaseException:
        executor.close(cancel=True)
        raise


def _run_and_report(runs, executor, out: Path) -> None:
    """The runs with a live table of their states; the summary line; exit 1 (naming them) if any did not finish,
    130 on Ctrl-C (the runs saved their checkpoints)."""
    from rich.live import Live

    from ..sweep.study import run_sweep

    console.print(f"sweep: {len(runs)} runs -> {out} ({executor.describe()})")
    title = f"sweep {out.name}: {len(runs)} runs"
    live = Live(_table([], out, title), console=console, refresh_per_second=2, transient=False,
                auto_refresh=sys.stdout.isatty() and not quiet())
    try:
        with live:
            res = run_sweep(runs, executor, out, on_update=lambda rows: live.update(_table(rows, out, title)))
            live.update(_table(res.rows, out, title))
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]: the runs saved their checkpoints; run the same command "
                          "again to finish what is missing")
        raise typer.Exit(130) from None
    if not sys.stdout.isatty():
        console.print()  # the table's last line ends without one off a terminal
    done = sum(r.st.state == "done" for r in res.rows)
    console.print(f"{done}/{len(runs)} runs done ({res.skipped} already done, {res.ran} run now); "
                  f"study.csv and study.yaml in {out}")
    if not res.all_done:
        for r in res.rows:
            if r.st.state != "done":
                err_console.print(f"[red]{r.st.state}[/red] {r.spec.name_in(out)}: {r.st.error}",
                                  highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _bad(option: str, msg: str):
    from ..errors import UserError

    return UserError(f"{option}: {msg}")

"""`admpo tune`: an Optuna search over a preset's settings, each trial a run on the sweep's executors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..registry import ALGORITHMS
from .app import app
from .options import BudgetOpt, ConfigOpt, DatasetOpt, DeviceOpt, RichProgress, SetOpt, user_errors
from .sweep import _bad, _executor
from .ui import console, err_console, quiet

_STYLE = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red", "RUNNING": "cyan"}


def _table(trials, title: str) -> Table:
    t = Table(title=title)
    if trials is None or not len(trials):
        return t
    trials = trials.drop(columns=[c for c in ("run", "final_score") if c in trials])  # value is the score
    for c in trials.columns:
        t.add_column(str(c).split(".")[-1], justify="left" if c == "state" else "right", no_wrap=True)
    for row in trials.itertuples(index=False):
        cells = []
        for c, v in zip(trials.columns, row, strict=True):
            text = "" if v is None or v != v else (f"{v:.4g}" if isinstance(v, float) else str(v))
            style = _STYLE.get(text, "") if c == "state" else ""
            cells.append(f"[{style}]{text}[/{style}]" if style else text)
        t.add_row(*cells)
    return t


@app.command()
@user_errors
def tune(
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="The preset to tune.")] = None,
    algo: Annotated[str, typer.Option("--algo", help=f"A registered algorithm ({', '.join(ALGORITHMS.names())}).")
                    ] = "admpo",
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="A searched setting (repeatable): section.key=LOW:HIGH[:log|:int|:int-log] or "
                        "section.key=v1,v2,...")] = None,
    space: Annotated[Path | None, typer.Option(
        "--space", help="YAML search space: {section.key: {low, high, log, int} or [v1, v2, ...]}.")] = None,
    trials: Annotated[int, typer.Option("--trials", help="Trials in the study (asked so far included).")] = 20,
    select: Annotated[str, typer.Option(
        "--select", help="sim: the final normalised score in the simulator | model-return: the policy's return in "
                         "its learned model from the dataset | fqe: fitted Q evaluation on the dataset (both without "
                         "the simulator: honest offline selection).")] = "sim",
    seed: Annotated[int, typer.Option("--seed", help="Every trial's run seed.")] = 0,
    sampler_seed: Annotated[int, typer.Option("--sampler-seed", help="The TPE sampler's seed.")] = 0,
    prune: Annotated[bool, typer.Option(help="Median pruning on the evaluation curve (--select sim only).")] = True,
    set_: SetOpt = None, config: ConfigOpt = None, dataset: DatasetOpt = None, device: DeviceOpt = None,
    budget: BudgetOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Study folder: study.db, trials/, best.yaml, index.html.")] = Path(
        "runs/tune"),
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Local trials at once (each gets cores/jobs threads).")
                    ] = 1,
    ray: Annotated[str | None, typer.Option("--ray", help="'local': start a Ray cluster on this machine.")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="An existing Ray cluster: auto | HOST:PORT.")
                           ] = None,
    parallel: Annotated[int | None, typer.Option(
        "--parallel", help="Trials in flight at once (default: --jobs; on Ray 2).")] = None,
    cpus_per_run: Annotated[float, typer.Option(help="Ray: CPUs a trial asks for.")] = 1.0,
    gpus_per_run: Annotated[float, typer.Option(help="Ray: GPUs a trial asks for.")] = 0.0,
    ope_horizon: Annotated[int, typer.Option(help="model-return: imagined steps per start.")] = 100,
    ope_starts: Annotated[int, typer.Option(help="model-return: dataset start windows.")] = 500,
    fqe_steps: Annotated[int, typer.Option(help="fqe: Adam steps of fitted Q evaluation.")] = 5000,
) -> None:
    """Search a preset's settings with Optuna (TPE, median pruning), each trial a run under OUT/trials.

    The study is stored in OUT/study.db: the same command after a crash or kill -9 continues it without running
    a finished trial again. At the end OUT/best.yaml holds the best configuration (train-off --config reads it)
    and OUT/index.html the optimisation history, the parameters' importances and how well the offline criterion
    ranks the trials against the simulator."""
    from ..sweep.search_space import search_space
    from ..sweep.tune import TuneSettings, check_settings

    if not preset:
        raise _bad("--preset", "name the preset to tune (admpo presets list)")
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise _bad("tune", "Optuna is not installed: pip install 'admpo[tune]'") from None
    s = TuneSettings(preset, algo, search_space(param, space), trials, select, seed, sampler_seed, prune,
                     list(set_ or []), str(config) if config else None, dataset, device, budget, ope_horizon,
                     ope_starts, fqe_steps)
    check_settings(s)
    out = out.resolve()
    executor = _executor(ray, ray_address, cpus_per_run, gpus_per_run, jobs)
    _run(s, executor, out, parallel or (jobs if not (ray or ray_address) else 2))


def _run(s, executor, out: Path, in_flight: int) -> None:
    from rich.live import Live

    from ..sweep.study import prepare_datasets
    from ..sweep.tune import run_tune, trial_spec_preview

    try:
        out.mkdir(parents=True, exist_ok=True)
        executor.check_writable(out)
        prepare_datasets([trial_spec_preview(s, out)], RichProgress())
    except BaseException:
        executor.close(cancel=True)
        raise
    console.print(f"tune: {s.trials} trials of {s.preset} ({s.algo}) -> {out} ({executor.describe()}, "
                  f"{in_flight} at once)")
    title = f"tune {out.name}"
    live = Live(_table(None, title), console=console, refresh_per_second=2, transient=False,
                auto_refresh=sys.stdout.isatty() and not quiet())
    try:
        with live:
            res = run_tune(s, executor, out, in_flight, on_update=lambda df: live.update(_table(df, title)))
            live.update(_table(res.trials, title))
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]: run the same command again to continue the search")
        raise typer.Exit(130) from None
    states = res.trials["state"].value_counts().to_dict() if len(res.trials) else {}
    console.print(f"{len(res.trials)} trials ({', '.join(f'{v} {k.lower()}' for k, v in states.items())}; "
                  f"{res.ran} trained now, {res.resumed} resumed)")
    if res.best:
        console.print(f"best: trial {res.best['number']}, {res.best['value']:.4g}: "
                      + ", ".join(f"{k}={v}" for k, v in res.best["params"].items()) + f" -> {out / 'best.yaml'}")
    for col, a in res.agreement.items():
        if a.get("spearman") is not None:
            console.print(f"offline criterion {col} vs simulator: Spearman {a['spearman']:.2f} over {a['n']} trials")
    console.print(f"page: {out / 'index.html'}")
    if "FAIL" in states:
        for number, error in res.errors.items():
            err_console.print(f"[red]failed[/red] trial {number}: {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)

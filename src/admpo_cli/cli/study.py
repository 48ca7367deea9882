"""`admpo study-models`: the model study (stages/model_study.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..registry import MODELS
from .app import app
from .options import DeviceOpt, RichProgress, SetOpt, user_errors
from .ui import console


@app.command("study-models")
@user_errors
def study_models(
    envs: Annotated[str, typer.Option(help="Comma-separated envs.")] = "hopper,walker2d",
    qualities: Annotated[str, typer.Option(help="Comma-separated: random, medium, medium-replay.")] =
        "random,medium,medium-replay",
    models: Annotated[str, typer.Option(help=f"Comma-separated registered models ({', '.join(MODELS.names())}).")] =
        "adm,adm-transformer,ensemble,bootrnn",
    seeds: Annotated[str, typer.Option(help="Seeds: a range 0-2 or a list 0,1.")] = "0-2",
    budget: Annotated[str, typer.Option(help="ci (seconds a run: a smoke test), preview (10k transitions, SAC 10k "
                                             "steps, 3000 updates) or small (the quickstart sizes; the medium data "
                                             "from SAC trained to a third of expert, at most 200k steps).")] = "small",
    out: Annotated[Path, typer.Option(help="Study folder: data/, runs/, rows.csv, index.html.")] = Path("model-study"),
    workers: Annotated[int, typer.Option(help="Processes: the runs spread over them (datasets one env each), "
                                              "the torch threads shared out.")] = 1,
    set_: SetOpt = None, device: DeviceOpt = None,
) -> None:
    """Which dynamics model for which data: locally collected datasets of three qualities, each model kind
    fitted, used by ADMPO-OFF at the same budget and measured (compounding error, uncertainty vs true error,
    separation of policies, fit time, roll-out throughput); a page with bootstrap intervals over seeds and a
    recommendation table."""
    from ..stages.model_study import StudySpec, model_study_stage
    from ..sweep.plan import parse_seeds

    spec = StudySpec([e.strip() for e in envs.split(",")], [q.strip() for q in qualities.split(",")],
                     [m.strip() for m in models.split(",")], parse_seeds(seeds), out, budget, device or "auto",
                     list(set_ or []), workers)
    res = model_study_stage(spec, RichProgress())
    for r in res["recommendations"].itertuples(index=False):
        console.print(f"[bold]{r.data}[/bold]: {r.use} — {r.because}")
    console.print(f"{len(res['rows'])} runs -> {res['page']}")

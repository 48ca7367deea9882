"""`admpo fit-model`, `eval-compounding` (Figure 2) and `eval-uncertainty` (Figure 4)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .. import registry
from ..errors import UserError
from ..registry import MODELS
from .app import app
from .options import (
    BudgetOpt,
    ConfigOpt,
    DatasetOpt,
    DeviceOpt,
    PresetOpt,
    RichProgress,
    RunOpt,
    SeedOpt,
    SetOpt,
    kv_table,
    setup,
    user_errors,
)
from .ui import console


@app.command("fit-model")
@user_errors
def fit_model(
    preset: PresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None, run: RunOpt = None,
    dataset: DatasetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None,
    model: Annotated[str | None, typer.Option(
        "--model", help=f"A registered model: {' | '.join(MODELS.names())} (default: the run's).")] = None,
    budget: BudgetOpt = None,
) -> None:
    """Fit a dynamics model on the run's dataset; writes model/<kind>.pt and model/fit.csv.

    --model fits another kind into the same run (for the comparisons of eval-compounding and
    eval-uncertainty) with the run's settings; the run's own model stays the one its config names."""
    from ..stages.fit import fit_model_stage

    if model is not None:  # unknown: one line naming the registered models; a plugin that cannot load: one line
        registry.model(model, "--model")
    cfg, rd, dev = setup(preset, config, set_, run, dataset, seed, device, budget=budget)
    kind = model or cfg.model.kind
    summary = fit_model_stage(cfg, rd, dev, kind, progress=RichProgress())
    rows = [(k, ", ".join(f"{x:.4g}" for x in v) if isinstance(v, list) else v) for k, v in summary.items()]
    console.print(kv_table(f"fit-model {summary['kind']} -> {rd.path / 'model' / (summary['kind'] + '.pt')}", rows))


@app.command("eval-compounding")
@user_errors
def eval_compounding(
    run: RunOpt = None, preset: PresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
    dataset: DatasetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None,
    models: Annotated[str | None, typer.Option(help="Comma list of fitted models (default: all in the run).")] = None,
    horizons: Annotated[str, typer.Option(help="Horizons, e.g. 1..100 (every step up to the last).")] = "1..100",
    starts: Annotated[int, typer.Option(help="Held-out start points.")] = 256,
) -> None:
    """Compounding error vs horizon of each fitted model on held-out real trajectories (Figure 2)."""
    from ..stages.evaluate import eval_compounding_stage

    if run is None and preset is None:
        raise UserError("--run: give the run directory that holds the fitted models")
    cfg, rd, dev = setup(preset, config, set_, run, dataset, seed, device, read_only=True)
    kinds = [k.strip() for k in models.split(",")] if models else None
    df = eval_compounding_stage(cfg, rd, dev, kinds, horizons, starts, RichProgress(), set_)
    table = Table(title=f"compounding error (MSE) -> {rd.path / 'compounding.csv'}")
    table.add_column("model")
    hs = [h for h in (1, 5, 10, 20, 50, 100) if h in set(df["horizon"])]
    for h in hs:
        table.add_column(f"H={h}", justify="right")
    for name, g in df.groupby("model", sort=False):
        by_h = g.set_index("horizon")
        table.add_row(name, *[("diverged" if by_h.loc[h, "overflow_frac"] > 0.5 else f"{by_h.loc[h, 'mse_mean']:.3g}")
                              for h in hs])
    console.print(table)


@app.command("eval-uncertainty")
@user_errors
def eval_uncertainty(
    run: RunOpt = None, preset: PresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
    dataset: DatasetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None,
    starts: Annotated[int, typer.Option(help="Start windows per policy and model.")] = 500,
    horizon: Annotated[int | None, typer.Option(help="Imagined steps (default: rollout.horizon).")] = None,
) -> None:
    """Uncertainty vs true model error (simulator) for random, behaviour and learned policies (Figure 4)."""
    from ..stages.evaluate import eval_uncertainty_stage

    if run is None and preset is None:
        raise UserError("--run: give the run directory that holds the fitted models")
    cfg, rd, dev = setup(preset, config, set_, run, dataset, seed, device, read_only=True)
    res = eval_uncertainty_stage(cfg, rd, dev, starts, horizon, RichProgress(), set_)
    table = Table(title=f"uncertainty vs true error ({res['pairs']} pairs) -> {rd.path / 'uncertainty.json'}")
    for col in ("model", "quantifier", "pearson", "spearman"):
        table.add_column(col)
    for model, qs in res["correlations"].items():
        for q, r in qs.items():
            p, s = r["pooled"]["pearson"], r["pooled"]["spearman"]
            table.add_row(model, q, "-" if p is None else f"{p:.3f}", "-" if s is None else f"{s:.3f}")
    console.print(table)

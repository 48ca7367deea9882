"""`admpo train-off`, `train-on`, `train-bc` and `resume`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..registry import ALGORITHMS, MODELS
from ..rundir import RunDir
from .app import app
from .options import (
    BudgetOpt,
    ConfigOpt,
    DatasetOpt,
    DeviceOpt,
    JsonOpt,
    PresetOpt,
    RichProgress,
    RunOpt,
    SeedOpt,
    SetOpt,
    emit_json,
    json_mode,
    kv_table,
    setup,
    user_errors,
)
from .ui import console

LoggerOpt = Annotated[str, typer.Option(
    "--logger", help="csv (metrics.csv, always) plus tensorboard and/or wandb, comma-separated.")]


def _train(cfg, rd: RunDir, dev, force: bool = False, logger: str = "csv", json_out: bool = False) -> None:
    from ..stages.loggers import parse_loggers
    from ..stages.train import train_stage

    json_mode(json_out)
    result = train_stage(cfg, rd, dev, force, RichProgress(), parse_loggers(logger))
    if json_out:
        emit_json({"run": str(rd.path), "already_finished": result.already_finished, **result.summary})
        return
    if result.already_finished:
        console.print(f"{rd.path}: already finished (summary.json); pass --force to train again")
    _print_summary(result.summary, rd)


def _print_summary(summary: dict, rd: RunDir) -> None:
    keys = ("label", "algo", "model", "budget", "uncertainty", "dropout_at_inference", "published_setting", "seed",
            "entropy_space", "target_entropy", "evaluations", "env_steps", "warmup_steps",
            "final_score", "final_return", "best_score", "best_return", "gradient_steps")
    rows = [(k, f"{summary[k]:.2f}" if isinstance(summary[k], float) else summary[k]) for k in keys
            if summary.get(k) not in (None, "")]
    ref = summary.get("reference")
    if ref:
        rows.append(("reference", f"{ref['random']:g} / {ref['expert']:g} ({ref['source']})"))
    console.print(kv_table(f"{summary.get('algo')} on {summary.get('task')} -> {rd.path}", rows))


@app.command("train-off")
@user_errors
def train_off(
    preset: PresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None, run: RunOpt = None,
    dataset: DatasetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None,
    model: Annotated[str | None, typer.Option(
        "--model", help=f"Dynamics model ({' | '.join(MODELS.names())}): under ADMPO's settings, adm is ADMPO-OFF and "
                        "another model an ablation.")] = None,
    algo: Annotated[str | None, typer.Option(
        "--algo", help=f"A registered algorithm ({' | '.join(ALGORITHMS.names())}): admpo, mopo (MOPO with its "
                       "published settings) and bc train offline; `admpo doctor` lists plugins' too.")] = None,
    budget: BudgetOpt = None,
    epochs: Annotated[int | None, typer.Option(help="Override train.epochs.")] = None,
    force: Annotated[bool, typer.Option(
        help="Start over: even if the run finished, has a checkpoint or was made with other settings.")] = False,
    logger: LoggerOpt = "csv", json_out: JsonOpt = False,
) -> None:
    """ADMPO-OFF (Algorithm 3): fit or reuse the model, then SAC on real + penalised imagined data.

    The paper presets fit ADM and train as the authors' code (a GPU's work); --budget cpu is the named reduced
    budget (the all-k fit, capped), said wherever the run is shown. --algo mopo runs MOPO as OfflineRL-Kit
    publishes it (per-task h and lambda, auto-alpha, its model fitting); --model ensemble keeps ADMPO's
    settings and swaps the model: an ablation, labelled so."""
    cfg, rd, dev = setup(preset, config, set_, run, dataset, seed, device,
                         {"model.kind": model, "train.algo": algo, "train.epochs": epochs},
                         force=force, command="train-off", budget=budget)
    _train(cfg, rd, dev, force, logger, json_out)


@app.command("train-on")
@user_errors
def train_on(
    preset: PresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None, run: RunOpt = None,
    seed: SeedOpt = None, device: DeviceOpt = None,
    algo: Annotated[str | None, typer.Option(
        "--algo", help=f"A registered algorithm ({' | '.join(ALGORITHMS.names())}): admpo (ADMPO-ON), mbpo (MBPO as "
                       "its authors ran it) and sac (CleanRL's SAC) train online.")] = None,
    budget: BudgetOpt = None,
    steps: Annotated[int | None, typer.Option(
        help="Override train.total_steps (learning env steps, after the warm-up).")] = None,
    force: Annotated[bool, typer.Option(
        help="Start over: even if the run finished, has a checkpoint or was made with other settings.")] = False,
    init_from: Annotated[Path | None, typer.Option(
        "--init-from", help="Fine-tune: start from a finished train-off or train-bc run (its policy; a SAC run's "
                            "critics and temperature; its dynamics model, re-fitted from there; its dataset).")] = None,
    keep_dataset: Annotated[bool, typer.Option(
        "--keep-dataset/--drop-dataset", help="With --init-from: the source run's dataset starts D_env, or not.")
    ] = True,
    logger: LoggerOpt = "csv", json_out: JsonOpt = False,
) -> None:
    """ADMPO-ON (Algorithm 2): act, re-fit ADM, roll out from real histories, SAC on real + imagined data.

    The paper presets run the published protocol at full cost (a GPU's work); --budget cpu is the named
    reduced budget that makes them affordable on a CPU, and says so wherever the run is shown. --algo mbpo
    runs MBPO as its authors' code does (jannerm/mbpo); --algo sac is CleanRL's SAC at UTD 1. The warm-up
    comes first and is not counted: evaluations every eval.every learning env steps go to metrics.csv.
    --init-from RUN fine-tunes an offline run: its first metrics row (env step 0) evaluates the carried policy as
    the source's last evaluation did, and its warm-up acts with that policy."""
    from ..stages.train import fine_tune_settings

    cfg, rd, dev = setup(preset, config, set_, run, None, seed, device,
                         {"train.algo": algo, "train.total_steps": steps,
                          **fine_tune_settings(str(init_from) if init_from else None, keep_dataset)},
                         force=force, command="train-on", budget=budget)
    _train(cfg, rd, dev, force, logger, json_out)


@app.command("train-bc")
@user_errors
def train_bc_cmd(
    preset: PresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None, run: RunOpt = None,
    dataset: DatasetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None,
    budget: BudgetOpt = None,
    steps: Annotated[int | None, typer.Option(help="Override train.bc_steps.")] = None,
    force: Annotated[bool, typer.Option(help="Train again even if the run finished.")] = False,
    logger: LoggerOpt = "csv", json_out: JsonOpt = False,
) -> None:
    """Behaviour cloning baseline through the same data and evaluation path."""
    cfg, rd, dev = setup(preset, config, set_, run, dataset, seed, device,
                         {"train.algo": "bc", "train.bc_steps": steps}, force=force, command="train-off",
                         budget=budget)
    _train(cfg, rd, dev, force, logger, json_out)


@app.command()
@user_errors
def resume(
    run: Annotated[Path, typer.Argument(help="Run directory with checkpoints/train.pt.")],
    device: DeviceOpt = None, logger: LoggerOpt = "csv", json_out: JsonOpt = False,
) -> None:
    """Continue an interrupted training run from its last checkpoint, with its own config."""
    rd = RunDir.open(run)
    if not rd.file("checkpoints", "train.pt").exists():
        raise UserError(f"{run}: no checkpoint to resume (checkpoints/train.pt); start it with "
                        "`admpo train-off` or `admpo train-on`")
    cfg, rd, dev = setup(None, None, None, run, None, None, device)
    _train(cfg, rd, dev, logger=logger, json_out=json_out)


# ---------------------------------------------------------------- model measurements



"""`admpo collect`, `admpo data info` and `admpo data download`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import ENVS
from .app import app, data_app
from .options import (
    DeviceOpt,
    JsonOpt,
    RichProgress,
    emit_json,
    json_mode,
    kv_table,
    typer_table,
    user_errors,
)
from .ui import console


@app.command()
@user_errors
def collect(
    env: Annotated[str, typer.Option(help=" | ".join(ENVS) + ".")] = "hopper",
    out: Annotated[Path, typer.Option(help="Output file (.hdf5 for d4rl, .npz for neorl).")] = Path(
        "data/hopper-random.hdf5"),
    steps: Annotated[int, typer.Option(help="Transitions to collect.")] = 100_000,
    policy: Annotated[str, typer.Option(help="random, or a policy checkpoint (an admpo SAC actor).")] = "random",
    fmt: Annotated[str, typer.Option("--format", help="A format that can write: d4rl (HDF5) | neorl (npz, x "
                                                      "position kept) | a plugin's.")] = "d4rl",
    noise: Annotated[bool, typer.Option(help="NeoRL-style actions: the policy mean 80 %, a sample 20 %.")] = False,
    quality: Annotated[str | None, typer.Option(
        help="Train SAC online first: medium | medium-replay | expert (target return below).")] = None,
    target_return: Annotated[float | None, typer.Option(help="Return at which --quality stops training.")] = None,
    train_steps: Annotated[int, typer.Option(help="Max env steps of SAC training for --quality.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    device: DeviceOpt = None,
) -> None:
    """Collect a D4RL- or NeoRL-style dataset in a gymnasium MuJoCo environment."""
    from ..stages.collect import run_collect

    info = run_collect(env, out, steps, policy, fmt, noise, quality, target_return, train_steps, seed,
                       device or "auto", RichProgress())
    console.print(kv_table(f"collected {out}", info.items()))


@data_app.command("info")
@user_errors
def data_info(
    path: Annotated[str, typer.Argument(help="Dataset file or id (D4RL .hdf5, NeoRL .npz, a Minari id, or a "
                                             "plugin format's).")],
    task: Annotated[str | None, typer.Option(help="Task (e.g. hopper-medium-v2, neorl-hopper-low) for scores.")] = None,
    env: Annotated[str | None, typer.Option(help="Environment family, when --task does not say.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="A registered dataset format (`admpo doctor` lists "
                                                             "them); default: the one the path names.")] = None,
) -> None:
    """Format, size, episodes, return statistics and normalised score of the behaviour data."""
    from ..stages.data import data_info_stage

    rows = data_info_stage(path, task, env, fmt)
    console.print(kv_table(path, rows))


@data_app.command("download")
@user_errors
def download_cmd(
    ids: Annotated[list[str] | None, typer.Argument(
        help="D4RL ids (hopper-medium-v2), NeoRL names (Hopper-v3-low), all-d4rl or all-neorl.")] = None,
    folder: Annotated[Path | None, typer.Option(
        "--dir", help="Target folder (default: $D4RL_DATASET_DIR or ~/.d4rl/datasets: where loaders look).")] = None,
    base_url: Annotated[str | None, typer.Option(
        help="Another base address serving the same paths (a mirror); default: each benchmark's own.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the downloadable datasets and exit.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Fetch D4RL v2 / NeoRL dataset files: resumes partial downloads, checks size and layout, renames
    into place only when whole."""
    from ..stages.data import download_stage, downloadable

    json_mode(json_out)
    if list_:
        rows = downloadable()
        if json_out:
            emit_json({"datasets": rows})
            return
        t = typer_table("downloadable datasets", ("id", "benchmark", "file"), [list(r.values()) for r in rows])
        console.print(t)
        return
    done = download_stage(ids or [], folder, base_url, lambda name: RichProgress().task(name, total=None))
    if json_out:
        emit_json({"downloaded": done})
        return
    for d in done:
        console.print(f"{d['id']}: {d['path']} ({d['bytes'] / 1e6:.1f} MB)")

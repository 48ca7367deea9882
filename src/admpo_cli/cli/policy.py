"""`admpo eval-policy` and `admpo export`: watch a run's policy, ship it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .options import JsonOpt, RichProgress, emit_json, json_mode, kv_table, user_errors
from .ui import console


@app.command("eval-policy")
@user_errors
def eval_policy_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory with policy/actor.pt.")],
    episodes: Annotated[int, typer.Option(help="Episodes to run.")] = 10,
    deterministic: Annotated[bool, typer.Option(
        "--deterministic/--stochastic", help="The policy's mean action (as training evaluates) or samples.")] = True,
    video: Annotated[Path | None, typer.Option(
        help="Record every frame to this MP4 (headless: EGL or OSMesa; `admpo doctor` says which works).")] = None,
    seed: Annotated[int, typer.Option(help="Episode i is reset with seed + i.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Run a trained policy in its task's simulator: returns and normalised scores to eval_policy.json,
    optionally a video."""
    from ..process import keep_heap_memory
    from ..rundir import RunDir
    from ..stages.policy import eval_policy

    json_mode(json_out)
    keep_heap_memory()
    res = eval_policy(RunDir.open(run), episodes, deterministic, seed, video, progress=RichProgress())
    if json_out:
        emit_json(res)
        return
    rows = [("episodes", res["episodes"]), ("policy", "deterministic" if deterministic else "stochastic"),
            ("return", f"{res['return_mean']:.1f} ± {res['return_std']:.1f}"),
            ("returns", ", ".join(f"{x:.1f}" for x in res["returns"]))]
    if res["score_mean"] is not None:
        rows.append(("normalised score", f"{res['score_mean']:.1f} ± {res['score_std']:.1f}"))
    if video:
        rows.append(("video", f"{res['video']} ({res['frames']} frames at {res['fps']} fps)"))
    rows.append(("written", str(Path(run) / "eval_policy.json")))
    console.print(kv_table(f"{res['task']}: {run}", rows))


@app.command()
@user_errors
def export(
    run: Annotated[Path, typer.Argument(help="Run directory with policy/actor.pt.")],
    fmt: Annotated[str, typer.Option("--format", help="torchscript | onnx (pip install 'admpo\\[export]').")] = (
        "torchscript"),
    out: Annotated[Path | None, typer.Option(help="Output file (default: RUN/export/policy.pt|.onnx).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Ship the deterministic actor (observation -> action in the env's range). Checked at export on 1 000
    observations the policy meets: the file is written only if no action differs by more than 1e-5."""
    from ..rundir import RunDir
    from ..stages.policy import export_policy

    json_mode(json_out)
    res = export_policy(RunDir.open(run), fmt, out)
    if json_out:
        emit_json(res)
        return
    console.print(kv_table(f"exported {fmt}: {res['path']}", [
        ("input", f"obs ({res['obs_dim']},) float32, batch dimension free"),
        ("output", f"action ({res['act_dim']},) in ±{max(res['action_scale']):g}"),
        ("parity", f"max |difference| {res['max_abs_diff']:.2e} over {res['observations']} recorded observations "
                   f"({res['checked_with']})")]))

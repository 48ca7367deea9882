"""`admpo presets list|show` and `admpo doctor`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..config import dump_yaml, load_preset, preset_budgets, preset_description, preset_paths
from .app import app, presets_app
from .options import (
    user_errors,
)
from .ui import console


@presets_app.command("list")
@user_errors
def presets_list() -> None:
    """All shipped presets with their task, data source and key settings."""
    table = Table(title="admpo presets")
    table.add_column("preset", no_wrap=True)
    for col in ("benchmark", "m", "H", "beta", "budgets", "description"):
        table.add_column(col, overflow="fold")
    for name in preset_paths():
        cfg = load_preset(name)
        table.add_row(name, cfg.data.benchmark, str(cfg.model.m), str(cfg.rollout.horizon),
                      f"{cfg.rollout.beta:g}", ", ".join(preset_budgets(name)) or "-", preset_description(name))
    console.print(table)


@presets_app.command("show")
@user_errors
def presets_show(
    name: Annotated[str, typer.Argument(help="Preset name.")],
    algo: Annotated[str | None, typer.Option(
        "--algo", help="Show the settings this algorithm runs with on the preset (a baseline's published ones).",
    )] = None,
    budget: Annotated[str | None, typer.Option("--budget", help="Show the preset at one of its named budgets.")] = None,
) -> None:
    """The preset resolved over the defaults, as YAML (the full protocol unless --budget), then the named
    reduced budgets it offers and what each changes."""
    import yaml

    from ..config import resolve

    cfg = resolve(name, flags={"train.algo": algo}, budget=budget)
    console.print(dump_yaml(cfg), highlight=False, markup=False, soft_wrap=True)
    budgets = preset_budgets(name)
    if budgets:
        note = "# named reduced budgets (--budget NAME): what each changes over the protocol above\n"
        console.print(note + yaml.safe_dump({"budgets": budgets}, sort_keys=False, width=1000), highlight=False,
                      markup=False, soft_wrap=True)


# ---------------------------------------------------------------- doctor


@app.command()
@user_errors
def doctor() -> None:
    """Versions, MuJoCo environments, torch threads, CUDA, optional packages: paste it into a bug report."""
    import platform

    import torch

    from ..envs.registry import get_spec, make_env
    from ..rundir import git_revision, versions

    table = Table(title="admpo doctor")
    table.add_column("check")
    table.add_column("result", overflow="fold")
    for k, v in versions().items():
        table.add_row(k, v)
    table.add_row("platform", platform.platform())
    table.add_row("git revision", git_revision() or "-")
    table.add_row("torch threads", str(torch.get_num_threads()))
    table.add_row("CUDA", f"{torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} devices)"
                  if torch.cuda.is_available() else "not available")
    for env, layout in (("hopper", "d4rl"), ("halfcheetah", "d4rl"), ("walker2d", "d4rl"),
                        ("hopper", "neorl"), ("ant", "online"), ("humanoid", "online")):
        spec = get_spec(env, layout)
        try:
            e = make_env(spec)
            o, _ = e.reset(seed=0)
            e.step(e.action_space.sample())
            e.close()
            table.add_row(f"env {spec.gym_id} ({layout})", f"ok, obs {o.shape[0]}")
        except Exception as exc:  # report, don't crash: this is a diagnosis
            table.add_row(f"env {spec.gym_id} ({layout})", f"[red]failed[/red]: {exc}")
    from ..runtime import GL_HINTS, probe_gl

    for backend in ("egl", "osmesa"):  # offscreen rendering for eval-policy --video
        err = probe_gl(backend)
        table.add_row(f"render MUJOCO_GL={backend}", "ok" if err is None else
                      f"[yellow]unavailable[/yellow]: {err}; install: {GL_HINTS[backend]}")
    for opt in ("minari", "h5py", "matplotlib", "d4rl", "imageio_ffmpeg", "onnxruntime", "tensorboard", "wandb",
                "ray"):
        try:
            mod = __import__(opt)
            table.add_row(f"optional {opt}", getattr(mod, "__version__", "installed"))
        except Exception as exc:
            why = "not installed" if isinstance(exc, ImportError) else f"import fails ({type(exc).__name__})"
            if opt == "d4rl":
                why += "; not needed: admpo reads D4RL files directly"
            table.add_row(f"optional {opt}", why)
    console.print(table)


# ---------------------------------------------------------------- data



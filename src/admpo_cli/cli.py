"""The `admpo` command line: parse options, resolve the config, call one stage, print a summary."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from . import __version__
from .config import Config, dump_yaml, load_preset, preset_description, preset_paths, resolve
from .errors import DivergenceError, UserError
from .rundir import RunDir
from .ui import console, err_console

app = typer.Typer(
    name="admpo",
    help="Any-step Dynamics Model (ADM), ADMPO-ON and ADMPO-OFF: fit, measure, train, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
presets_app = typer.Typer(help="List and show the shipped presets.", no_args_is_help=True)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(presets_app, name="presets")
app.add_typer(data_app, name="data")


def user_errors(fn):
    """User mistakes print one red line and exit 2; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except DivergenceError as exc:
            err_console.print(f"[red]diverged:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(3) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]: the last checkpoint is kept; `admpo resume RUN` continues")
            raise typer.Exit(130) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        console.print(f"admpo {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    from .runtime import keep_heap_memory

    keep_heap_memory()


# ---------------------------------------------------------------- common options

PresetOpt = Annotated[str | None, typer.Option("--preset", "-p", help="Preset name (see `admpo presets list`).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML file of overrides (as in config.yaml).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override one field: section.key=value (repeatable).")]
RunOpt = Annotated[Path | None, typer.Option(
    "--run", help="Run directory (default: runs/<preset>/<algo>[-<model>]-s<seed>[-<hash of other overrides>]).")]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="Dataset file or id; overrides the preset's.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed for python, numpy and torch.")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N.")]


def _kv_table(title: str, rows) -> Table:
    table = Table(title=title)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for k, v in rows:
        table.add_row(str(k), str(v))
    return table


def setup(preset, config, sets, run, dataset, seed, device, extra_flags=None, *, read_only: bool = False,
          force: bool = False, command: str | None = None):
    """Resolve the config (defaults < preset < published settings < --config < --set < flags), open the
    run, seed, pick the device.

    The default run directory is named by what makes a run different (config.run_name). A command that
    makes results (fit, train) creates the run or opens one made with the same settings; a command that
    only reads a run (`read_only`) needs an existing run and applies its --set on top of the run's config
    without changing config.yaml. `command`: refuse settings that belong to another command before any
    directory is made."""
    from .algorithms import check_command
    from .config import run_name
    from .runtime import pick_device, seed_everything

    flags = {"data.path": dataset, "run.seed": seed, "run.device": device, **(extra_flags or {})}
    base = None
    if run is not None and (Path(run) / "config.yaml").exists() and preset is None and config is None:
        # An existing run supplies its own resolved config; --set and flags still apply on top.
        base = RunDir.open(run).config()
    cfg = resolve(preset, config, sets, flags, base=base)
    if command:
        check_command(command, cfg.train.algo, cfg.train.setting, cfg.preset)
    dev = pick_device(cfg.run.device)
    run_path = Path(run) if run is not None else Path(cfg.run.root) / run_name(cfg)
    if read_only:
        rd = RunDir.open(run_path)
        if base is None:
            cfg = resolve(None, None, sets, flags, base=rd.config())
    else:
        rd = RunDir.create_or_open(run_path, cfg, force)
    seed_everything(cfg.run.seed)
    return cfg, rd, dev


# ---------------------------------------------------------------- presets


@presets_app.command("list")
@user_errors
def presets_list() -> None:
    """All shipped presets with their task, data source and key settings."""
    table = Table(title="admpo presets")
    table.add_column("preset", no_wrap=True)
    for col in ("benchmark", "m", "H", "beta", "description"):
        table.add_column(col, overflow="fold")
    for name in preset_paths():
        cfg = load_preset(name)
        table.add_row(name, cfg.data.benchmark, str(cfg.model.m), str(cfg.rollout.horizon),
                      f"{cfg.rollout.beta:g}", preset_description(name))
    console.print(table)


@presets_app.command("show")
@user_errors
def presets_show(name: Annotated[str, typer.Argument(help="Preset name.")]) -> None:
    """The preset resolved over the defaults, as YAML."""
    console.print(dump_yaml(load_preset(name)), highlight=False, markup=False)


# ---------------------------------------------------------------- doctor


@app.command()
@user_errors
def doctor() -> None:
    """Versions, MuJoCo environments, torch threads, CUDA, optional packages: paste it into a bug report."""
    import platform

    import torch

    from .envs.registry import get_spec, make_env
    from .rundir import git_revision, versions

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
    for opt in ("minari", "h5py", "matplotlib", "d4rl"):
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


@app.command()
@user_errors
def collect(
    env: Annotated[str, typer.Option(help="hopper | halfcheetah | walker2d | ant | humanoid.")] = "hopper",
    out: Annotated[Path, typer.Option(help="Output file (.hdf5 for d4rl, .npz for neorl).")] = Path(
        "data/hopper-random.hdf5"),
    steps: Annotated[int, typer.Option(help="Transitions to collect.")] = 100_000,
    policy: Annotated[str, typer.Option(help="random, or a policy checkpoint (an admpo SAC actor).")] = "random",
    fmt: Annotated[str, typer.Option("--format", help="d4rl (HDF5) | neorl (npz, x position kept).")] = "d4rl",
    noise: Annotated[bool, typer.Option(help="NeoRL-style actions: the policy mean 80 %, a sample 20 %.")] = False,
    quality: Annotated[str | None, typer.Option(
        help="Train SAC online first: medium | medium-replay | expert (target return below).")] = None,
    target_return: Annotated[float | None, typer.Option(help="Return at which --quality stops training.")] = None,
    train_steps: Annotated[int, typer.Option(help="Max env steps of SAC training for --quality.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    device: DeviceOpt = None,
) -> None:
    """Collect a D4RL- or NeoRL-style dataset in a gymnasium MuJoCo environment."""
    from .data.collector import run_collect

    if fmt not in ("d4rl", "neorl"):
        raise UserError(f"--format: expected d4rl or neorl, got {fmt!r}")
    info = run_collect(env, out, steps, policy, fmt, noise, quality, target_return, train_steps, seed,
                       device or "auto")
    console.print(_kv_table(f"collected {out}", info.items()))


@data_app.command("info")
@user_errors
def data_info(
    path: Annotated[str, typer.Argument(help="Dataset file (D4RL .hdf5 or NeoRL .npz).")],
    task: Annotated[str | None, typer.Option(help="Task (e.g. hopper-medium-v2, neorl-hopper-low) for scores.")] = None,
    env: Annotated[str | None, typer.Option(help="Environment family, when --task does not say.")] = None,
) -> None:
    """Size, episodes, return statistics and normalised score of the behaviour data."""
    import numpy as np

    from .data import d4rl, neorl
    from .data.dataset import validate
    from .data.scores import normalized_score, reference_for

    p = Path(path)
    data = neorl.load_neorl(neorl.find_file(path, 10**9)) if p.suffix == ".npz" else d4rl.load_d4rl(
        d4rl.find_file(path))
    data = validate(data, path)
    task = task or ""
    env = env or next((e for e in ("halfcheetah", "hopper", "walker2d", "ant", "humanoid")
                       if e in (task or p.name).lower()), None)
    if env is not None:
        from .envs.registry import get_spec, layout_for_task

        layout = "neorl" if p.suffix == ".npz" or task.startswith("neorl-") else layout_for_task(task, env)
        spec = get_spec(env, layout)
        for what, have, want in (("observations", data.obs_dim, spec.obs_dim), ("actions", data.act_dim, spec.act_dim)):
            if have != want:
                raise UserError(f"{path}: {what} have {have} dims, {env} ({layout} layout) expects {want}; "
                                "is --task/--env the dataset's task?")
    rets = data.episode_returns()
    rows = [("transitions", len(data)), ("obs_dim", data.obs_dim), ("act_dim", data.act_dim),
            ("episodes (complete)", len(rets)), ("terminals", int(data.terminals.sum())),
            ("timeouts", int(data.timeouts.sum()))]
    if len(rets):
        rows += [("return mean ± std", f"{rets.mean():.1f} ± {rets.std():.1f}"),
                 ("return min / max", f"{rets.min():.1f} / {rets.max():.1f}")]
        ref = reference_for(task, env) if env else None
        if ref is not None:
            rows.append(("normalised score", f"{normalized_score(float(np.mean(rets)), ref):.1f} ({ref.source})"))
    console.print(_kv_table(path, rows))


# ---------------------------------------------------------------- models


@app.command("fit-model")
@user_errors
def fit_model(
    preset: PresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None, run: RunOpt = None,
    dataset: DatasetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None,
    model: Annotated[str | None, typer.Option("--model", help="adm | ensemble | bootrnn (default: the run's).")] = None,
) -> None:
    """Fit a dynamics model on the run's dataset; writes model/<kind>.pt and model/fit.csv.

    --model fits another kind into the same run (for the comparisons of eval-compounding and
    eval-uncertainty) with the run's settings; the run's own model stays the one its config names."""
    from .config import choices
    from .stages import fit_model_stage

    if model is not None and model not in choices("model", "kind"):
        raise UserError(f"--model: expected one of {', '.join(choices('model', 'kind'))}, got {model!r}")
    cfg, rd, dev = setup(preset, config, set_, run, dataset, seed, device)
    kind = model or cfg.model.kind
    with rd.stage(f"fit-model-{kind}", cfg, str(dev)):
        summary = fit_model_stage(cfg, rd, dev, kind)
    rows = [(k, ", ".join(f"{x:.4g}" for x in v) if isinstance(v, list) else v) for k, v in summary.items()]
    console.print(_kv_table(f"fit-model {summary['kind']} -> {rd.path / 'model' / (summary['kind'] + '.pt')}", rows))


# ---------------------------------------------------------------- offline training


def _run_training(cfg: Config, rd: RunDir, dev, force: bool = False) -> dict:
    from .algos.offline import Hooks, train_bc, train_offline
    from .ui import progress

    if rd.file("summary.json").exists() and rd.training_status() == "done" and not force:
        console.print(f"{rd.path}: already finished (summary.json); pass --force to train again")
        return rd.read_json("summary.json")
    if force:
        rd.clear_training()
    algo = cfg.train.algo
    with progress() as bar, rd.stage(f"train-{algo}", cfg, str(dev)):
        task = bar.add_task(f"{algo} {cfg.data.task}", total=None, info="")

        def on_start(step: int, total: int) -> None:
            if step:
                console.print(f"resuming {rd.path} from update {step}")
            bar.update(task, total=total, completed=step)

        def on_progress(step: int, row: dict) -> None:
            info = f"epoch {row.get('epoch', '?')}  {row.get('updates_per_s', 0):.0f} upd/s"
            if row.get("score_mean") not in (None, ""):
                info += f"  score {float(row['score_mean']):.1f}"
            elif row.get("return_mean") not in (None, ""):
                info += f"  return {float(row['return_mean']):.1f}"
            bar.update(task, completed=step, info=info)

        hooks = Hooks(on_start, on_progress)
        if algo == "bc":
            summary = train_bc(cfg, rd, dev, hooks)
        else:
            summary = train_offline(cfg, rd, dev, hooks, force=force)
    return summary


def _print_summary(summary: dict, rd: RunDir) -> None:
    keys = ("label", "algo", "model", "uncertainty", "dropout_at_inference", "published_setting", "seed",
            "evaluations", "final_score", "final_return", "best_score", "best_return", "gradient_steps")
    rows = [(k, f"{summary[k]:.2f}" if isinstance(summary[k], float) else summary[k]) for k in keys if k in summary]
    ref = summary.get("reference")
    if ref:
        rows.append(("reference", f"{ref['random']:g} / {ref['expert']:g} ({ref['source']})"))
    console.print(_kv_table(f"{summary.get('algo')} on {summary.get('task')} -> {rd.path}", rows))


@app.command("train-off")
@user_errors
def train_off(
    preset: PresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None, run: RunOpt = None,
    dataset: DatasetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="Dynamics model under ADMPO's settings: adm (ADMPO-OFF) | ensemble (an ablation).")] = None,
    algo: Annotated[str | None, typer.Option(
        "--algo", help="admpo | mopo (MOPO with its published settings) | bc.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override train.epochs.")] = None,
    force: Annotated[bool, typer.Option(
        help="Start over: even if the run finished, has a checkpoint or was made with other settings.")] = False,
) -> None:
    """ADMPO-OFF (Algorithm 3): fit or reuse the model, then SAC on real + penalised imagined data.

    --algo mopo runs MOPO as OfflineRL-Kit publishes it (per-task h and lambda, auto-alpha, its model
    fitting); --model ensemble keeps ADMPO's settings and swaps the model: an ablation, labelled so."""
    cfg, rd, dev = setup(preset, config, set_, run, dataset, seed, device,
                         {"model.kind": model, "train.algo": algo, "train.epochs": epochs},
                         force=force, command="train-off")
    _print_summary(_run_training(cfg, rd, dev, force), rd)


@app.command("train-bc")
@user_errors
def train_bc_cmd(
    preset: PresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None, run: RunOpt = None,
    dataset: DatasetOpt = None, seed: SeedOpt = None, device: DeviceOpt = None,
    steps: Annotated[int | None, typer.Option(help="Override train.bc_steps.")] = None,
    force: Annotated[bool, typer.Option(help="Train again even if the run finished.")] = False,
) -> None:
    """Behaviour cloning baseline through the same data and evaluation path."""
    cfg, rd, dev = setup(preset, config, set_, run, dataset, seed, device,
                         {"train.algo": "bc", "train.bc_steps": steps}, force=force, command="train-off")
    _print_summary(_run_training(cfg, rd, dev, force), rd)


@app.command()
@user_errors
def resume(
    run: Annotated[Path, typer.Argument(help="Run directory with checkpoints/offline.pt.")],
    device: DeviceOpt = None,
) -> None:
    """Continue an interrupted training run from its last checkpoint, with its own config."""
    rd = RunDir.open(run)
    if not rd.file("checkpoints", "offline.pt").exists() and rd.config().train.algo != "bc":
        raise UserError(f"{run}: no checkpoint to resume (checkpoints/offline.pt); start it with `admpo train-off`")
    cfg, rd, dev = setup(None, None, None, run, None, None, device)
    _print_summary(_run_training(cfg, rd, dev), rd)


# ---------------------------------------------------------------- model measurements


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
    from .evaluate.compounding import parse_horizons
    from .stages import eval_compounding_stage

    if run is None and preset is None:
        raise UserError("--run: give the run directory that holds the fitted models")
    cfg, rd, dev = setup(preset, config, set_, run, dataset, seed, device, read_only=True)
    kinds = [k.strip() for k in models.split(",")] if models else None
    with rd.stage("eval-compounding", cfg, str(dev), overrides=set_):
        df = eval_compounding_stage(cfg, rd, dev, kinds, parse_horizons(horizons), starts)
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
    from .stages import eval_uncertainty_stage

    if run is None and preset is None:
        raise UserError("--run: give the run directory that holds the fitted models")
    cfg, rd, dev = setup(preset, config, set_, run, dataset, seed, device, read_only=True)
    with rd.stage("eval-uncertainty", cfg, str(dev), overrides=set_):
        res = eval_uncertainty_stage(cfg, rd, dev, starts, horizon)
    table = Table(title=f"uncertainty vs true error ({res['pairs']} pairs) -> {rd.path / 'uncertainty.json'}")
    for col in ("model", "quantifier", "pearson", "spearman"):
        table.add_column(col)
    for model, qs in res["correlations"].items():
        for q, r in qs.items():
            p, s = r["pooled"]["pearson"], r["pooled"]["spearman"]
            table.add_row(model, q, "-" if p is None else f"{p:.3f}", "-" if s is None else f"{s:.3f}")
    console.print(table)


# ---------------------------------------------------------------- report


@app.command()
@user_errors
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories, or folders searched for them.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("report"),
    paper: Annotated[bool, typer.Option(help="Add the paper's published ADMPO-OFF scores, marked as such.")] = False,
) -> None:
    """Tables (Tables 1/2 layout) and figures over run directories, and one self-contained index.html."""
    from .report.build import build_report

    res = build_report(runs, out, paper)
    for title, df in (("normalised score: mean ± std (n seeds)", res["scores"]), ("raw return", res["returns"])):
        table = Table(title=title)
        table.add_column("task")
        for c in df.columns:
            table.add_column(str(c), justify="right")
        for idx, row in df.iterrows():
            table.add_row(str(idx), *[str(v) for v in row.tolist()])
        console.print(table)
    if len(res["pending"]):
        console.print(f"[yellow]{len(res['pending'])} run(s) not finished, listed apart:[/yellow] "
                      + ", ".join(res["pending"]["run"]))
    console.print(f"{res['runs']} runs -> {res['out']}/index.html, summary.csv, summary.md, "
                  f"{len(res['figures'])} figures")


def main() -> None:
    try:
        app()
    except UserError as exc:  # raised outside a command (e.g. during option parsing)
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)


__all__ = ["app", "main", "Config"]

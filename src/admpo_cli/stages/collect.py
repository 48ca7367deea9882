"""`admpo collect`: random, checkpoint or freshly trained (--quality) policies -> D4RL/NeoRL files.

A stage, because --quality first trains SAC online: the `sac` algorithm's run (algos/online.py, CleanRL's
settings) in a scratch run directory, stopped at the target return."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from ..algos.policy_files import load_policy
from ..algos.training_run import StopTraining
from ..config import Config, resolve
from ..data.dataset import Transitions
from ..data.scores import D4RL_REF
from ..data.simulate import collect, write_dataset
from ..device import pick_device
from ..envs.specs import get_spec
from ..errors import UserError
from ..events import SILENT, Progress
from ..files import torch_load
from ..process import seed_everything
from ..rundir import RunDir

# Target returns of --quality, as fractions of the D4RL expert reference (NeoRL's documented levels
# are ~25/50/75 % of SAC's best; D4RL's "medium" policies score about a third of expert).
QUALITY_FRACTION = {"medium": 0.33, "medium-replay": 0.33, "expert": 0.9}


def _actor_policy(actor, device, noise: bool, rng: np.random.Generator):
    def act(obs: np.ndarray) -> np.ndarray:
        o = torch.as_tensor(obs, dtype=torch.float32, device=device)[None]
        with torch.no_grad():
            # NeoRL-style: the mean action 80 % of the time, a sample 20 %.
            stochastic = noise and rng.random() < 0.2
            a = actor(o, deterministic=not stochastic, with_logp=False)[0]
        return a[0].cpu().numpy()

    return act


def _train_sac(env: str, layout: str, steps: int, seed: int, target_return: float, device: str, tmp: Path,
               progress: Progress) -> tuple:
    """The `sac` algorithm online (train_stage, as `admpo train-on --algo sac` runs it) until an evaluation
    reaches `target_return` or `steps` learning steps; a quarter of the steps (at most 5000) random first.
    Returns its actor, everything it saw (D_env from the checkpoint) and its evaluation curve."""
    from .train import train_stage

    warmup = min(5000, steps // 4)
    cfg = resolve(base=Config(), flags={
        "train.algo": "sac", "train.setting": "online", "data.env": env,
        "data.task": f"neorl-{env}-collect" if layout == "neorl" else f"{env}-collect",
        "data.benchmark": "neorl" if layout == "neorl" else "collect",
        "train.total_steps": steps - warmup, "train.warmup_steps": warmup, "eval.every": max(warmup, 1),
        "eval.episodes": 5, "run.seed": seed, "run.device": device})
    run = RunDir.create_or_open(tmp / "sac", cfg)
    curve: list[tuple[int, float]] = []
    with progress.task(f"SAC to return {target_return:.0f}", total=steps) as bar:

        def watch(step: int, row: dict) -> None:
            if "return_mean" in row:
                curve.append((step + warmup, float(row["return_mean"])))
                bar.update(completed=step + warmup, info=f"return {float(row['return_mean']):.0f}")
                if float(row["return_mean"]) >= target_return:
                    raise StopTraining

        train_stage(cfg, run, pick_device(device), watch=watch)
    real = torch_load(run.file("checkpoints", "train.pt"))["parts"]["real"]
    actor, _ = load_policy(run.file("policy", "actor.pt"))
    return actor, real, curve


def _layout(fmt: str) -> str:
    """The observation layout a dataset in format `fmt` is collected in (one that can be written)."""
    from .. import registry

    spec = registry.dataset_format(fmt, "--format")
    if spec.write is None:
        raise UserError(f"--format {fmt}: this format cannot be written (d4rl and neorl can)")
    return spec.layout


def run_collect(env: str, out: Path, steps: int, policy: str, fmt: str, noise: bool, quality: str | None,
                target_return: float | None, train_steps: int, seed: int, device: str,
                progress: Progress = SILENT) -> dict:
    if quality is not None:
        return collect_qualities(env, {quality: out}, steps, fmt, noise, target_return, train_steps, seed, device,
                                 progress)[quality]
    layout = "neorl" if fmt == "neorl" else "d4rl"
    spec = get_spec(env, layout)
    dev = pick_device(device)
    seed_everything(seed)
    _check_steps(steps)
    pol = None
    info: dict = {"env": spec.gym_id, "layout": spec.layout, "format": fmt}
    if policy != "random":
        actor, payload = load_policy(Path(policy), spec.obs_dim)
        pol = _actor_policy(actor.to(dev), dev, noise, np.random.default_rng(seed))
        info["policy_from"] = f"{policy} ({payload.get('algo')}, {payload.get('task')})"
    return {**info, **_roll(spec, out, steps, pol, seed, fmt, policy, progress)}


def _check_steps(steps: int) -> None:
    if steps <= 0:
        raise UserError("--steps: expected a positive number of transitions")


def _roll(spec, out: Path, steps: int, pol, seed: int, fmt: str, label: str, progress: Progress) -> dict:
    """`steps` transitions of `pol` (random when None) written to `out`; returns their counts and mean return."""
    with progress.task(f"collect {spec.gym_id}", total=steps) as t:
        data, qpos, qvel = collect(spec, steps, pol, seed, progress=lambda n: t.update(advance=n))
    write_dataset(out, data, fmt, qpos, qvel, {"policy": label, "env": spec.gym_id})
    return _written(data, out)


def _written(data: Transitions, out: Path) -> dict:
    """What a collect reports of the file it wrote: counts and the mean episode return."""
    rets = data.episode_returns()
    return {"transitions": len(data), "episodes": int(data.ends.sum()),
            "return_mean": round(float(rets.mean()), 2) if len(rets) else None, "out": str(out)}


def collect_qualities(env: str, outs: dict[str, Path], steps: int, fmt: str, noise: bool,
                      target_return: float | None, train_steps: int, seed: int, device: str,
                      progress: Progress = SILENT) -> dict[str, dict]:
    """One SAC training to the qualities' target return feeds every file in `outs` (quality -> path): `medium`
    and `expert` roll the trained policy out for `steps` transitions, `medium-replay` keeps everything SAC saw
    up to the target (D4RL's medium-replay). The qualities must share one target (medium with medium-replay).
    Returns each quality's info, with SAC's evaluation curve and the target."""
    layout = "neorl" if fmt == "neorl" else "d4rl"
    spec = get_spec(env, layout)
    dev = pick_device(device)
    seed_everything(seed)
    _check_steps(steps)
    for q in outs:
        if q not in QUALITY_FRACTION:
            raise UserError(f"--quality: expected one of {', '.join(QUALITY_FRACTION)}, got {q!r}")
    if len({QUALITY_FRACTION[q] for q in outs}) > 1:
        raise UserError(f"qualities {', '.join(outs)}: one SAC run serves only qualities of one target return")
    if target_return is None:
        ref = D4RL_REF.get(env)
        if ref is None:
            raise UserError(f"--quality for {env}: give --target-return (no reference return known)")
        target_return = ref.random + QUALITY_FRACTION[next(iter(outs))] * (ref.expert - ref.random)
    with tempfile.TemporaryDirectory(prefix="admpo-collect-") as tmp:
        actor, real, curve = _train_sac(env, layout, train_steps, seed, target_return, device, Path(tmp), progress)
    base = {"env": spec.gym_id, "layout": spec.layout, "format": fmt, "sac_curve": curve,
            "target_return": round(target_return, 1)}
    infos = {}
    for quality, out in outs.items():
        if quality == "medium-replay":
            infos[quality] = {**base, **_write_replay(real, out, fmt, spec.gym_id)}
        else:
            pol = _actor_policy(actor.to(dev), dev, noise, np.random.default_rng(seed))
            infos[quality] = {**base, **_roll(spec, out, steps, pol, seed, fmt, f"sac-{quality}", progress)}
    return infos


def _write_replay(real: dict, out: Path, fmt: str, gym_id: str) -> dict:
    """Everything SAC saw up to the target, its episode ends as they happened; the last episode is closed as
    a timeout."""
    timeouts = real["timeout"].numpy().copy()
    timeouts[-1] = timeouts[-1] or not bool(real["terminal"][-1])
    data = Transitions(*(real[k].numpy() for k in ("obs", "act", "rew", "next_obs", "terminal")), timeouts,
                       source="collected:replay")
    write_dataset(out, data, fmt, metadata={"policy": "sac-replay", "env": gym_id})
    return _written(data, out)

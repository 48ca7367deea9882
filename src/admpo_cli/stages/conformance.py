"""The conformance suite: what every registered model, algorithm, penalty and dataset format must do, checked
on small made-up data (a 3-dimensional linear system) or, for algorithms, a tiny run on the quick-start task.
admpo's tests run it over every registered kind; `admpo conformance` runs it on a plugin's.

A check returns (kind, name, check, passed, detail) rows; a check that raises fails with the exception's line.
"""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import registry
from ..events import SILENT, Progress

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Result:
    kind: str
    name: str
    check: str
    passed: bool
    detail: str = ""


def toy_transitions(n: int = 600, obs_dim: int = 3, act_dim: int = 2, seed: int = 0):
    """Episodes of 50 steps of s' = 0.9 s + 0.3 B a + noise, r = -|s|^2 (a learnable system)."""
    from ..data.dataset import Transitions

    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(act_dim, obs_dim)).astype(np.float32)
    obs, nxt, act = [], [], []
    s = np.zeros(obs_dim, np.float32)
    for t in range(n):
        if t % 50 == 0:
            s = rng.normal(size=obs_dim).astype(np.float32)
        a = rng.uniform(-1, 1, act_dim).astype(np.float32)
        s2 = 0.9 * s + 0.3 * a @ mix + 0.01 * rng.normal(size=obs_dim).astype(np.float32)
        obs.append(s), act.append(a), nxt.append(s2)
        s = s2
    obs, nxt = np.array(obs), np.array(nxt)
    timeouts = (np.arange(n) % 50) == 49
    return Transitions(obs, np.array(act), -(obs ** 2).sum(1), nxt, np.zeros(n, bool), timeouts, source="toy")


def _run(kind: str, name: str, check: str, fn: Callable[[], str | None]) -> Result:
    try:
        return Result(kind, name, check, True, fn() or "")
    except AssertionError as exc:
        return Result(kind, name, check, False, str(exc) or "assertion failed")
    except Exception as exc:  # noqa: BLE001 - a conformance failure is a row, not a crash
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return Result(kind, name, check, False, last)


# ---- models

def model_checks(kind: str) -> Iterator[Result]:
    from ..config import ModelConfig
    from ..models.factory import build_model
    from ..models.fit import fit

    data = toy_transitions()
    cfg = ModelConfig(kind=kind, m=3, max_epochs=3, steps_per_epoch=10, patience=10, holdout_max=100,
                      validation="all")
    torch.manual_seed(0)
    model = build_model(kind, data.obs_dim, data.act_dim, cfg)
    state: dict = {}

    def fits() -> str:
        res = fit(model, data, cfg, CPU, seed=0)
        first, best = float(np.mean(res.history[0]["holdout_mse"])), float(np.mean(res.holdout_mse))
        assert best < first, f"hold-out MSE did not fall: first epoch {first:.4g}, kept {best:.4g}"
        state["fitted"] = True
        return f"hold-out MSE {first:.4g} -> {best:.4g}"

    yield _run("model", kind, "fitting lowers the hold-out loss", fits)
    yield _run("model", kind, "save and load round-trip", lambda: _round_trip(model, cfg, data))
    yield _run("model", kind, "stepper shapes and candidates", lambda: _stepper_shapes(model, data))
    yield _run("model", kind, "ModelEnv passes gymnasium's check_env", lambda: _check_env(model, data))
    yield _run("model", kind, "a tiny roll-out", lambda: _tiny_rollout(model, data))


def _windows(model, data, n: int = 8):
    from ..data.dataset import sample_start_windows

    return sample_start_windows(data, model.context, n, np.random.default_rng(0), CPU)[1]


def _round_trip(model, cfg, data) -> str:
    from ..models.factory import load_model, save_model

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        save_model(path, model, cfg, "toy")
        loaded, _ = load_model(path)
    w = _windows(model, data)
    outs = []
    for m in (model.eval(), loaded.eval()):
        st = m.stepper(False)
        st.start(w["hist_obs"], w["hist_act"])
        outs.append(st.step(w["obs"], torch.zeros(len(w["obs"]), data.act_dim)))
    assert all(torch.equal(a, b) for a, b in zip(outs[0], outs[1], strict=True)), "a loaded model predicts otherwise"
    return "same predictions after loading"


def _stepper_shapes(model, data) -> str:
    w = _windows(model, data)
    st = model.eval().stepper(False)
    st.start(w["hist_obs"], w["hist_act"])
    mean, var = st.step(w["obs"], torch.zeros(len(w["obs"]), data.act_dim))
    b, d = len(w["obs"]), data.obs_dim + 1
    assert mean.ndim == 3 and mean.shape[0] == b and mean.shape[2] == d, f"mean {tuple(mean.shape)}: want (B, K, {d})"
    assert var.shape == mean.shape and bool((var > 0).all()), "variances must be positive, shaped as the means"
    cand = st.candidates
    assert len(cand) >= 1 and int(cand.min()) >= 0 and int(cand.max()) < mean.shape[1], "candidates out of range"
    st.keep(torch.tensor([0, 2]))
    mean2, _ = st.step(w["obs"][[0, 2]], torch.zeros(2, data.act_dim))
    assert mean2.shape[0] == 2, "keep() must shrink the batch"
    return f"K={mean.shape[1]}, candidates {cand.tolist()}"


def _check_env(model, data) -> str:
    from gymnasium.utils.env_checker import check_env

    from ..envs.termination import never
    from ..models.model_env import ModelEnv

    env = ModelEnv(model, data, termination=never, max_episode_steps=20)
    check_env(env, skip_render_check=True)
    return "ok"


def _tiny_rollout(model, data) -> str:
    from ..envs.termination import never
    from ..models.rollout import rollout

    w = _windows(model, data)
    kind = model.kind or "adm"
    unc = registry.uncertainty_for(kind, "auto") if kind in registry.MODELS.names() else "none"
    out = rollout(model, lambda o: torch.zeros(len(o), data.act_dim), w["hist_obs"], w["hist_act"], w["obs"], 3,
                  never, unc, 1.0, "batch", 4, torch.Generator().manual_seed(0))
    assert len(out) == 3 * len(w["obs"]) and bool(torch.isfinite(out.rew).all()), "roll-out rows or rewards wrong"
    return f"{len(out)} imagined transitions ({unc})"


# ---- penalties

def penalty_checks(name: str) -> Iterator[Result]:
    spec = registry.penalty(name)
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(6, 4, 4, generator=gen)
    var = torch.rand(6, 4, 4, generator=gen) + 0.05

    def values() -> str:
        u = spec.compute(mean, var, 3, spec.settings())
        assert isinstance(u, torch.Tensor) and u.shape == (6,), f"U must be a (B,) tensor, got {getattr(u, 'shape', u)}"
        assert bool(torch.isfinite(u).all()) and bool((u >= 0).all()), "U must be finite and >= 0"
        again = spec.compute(mean.clone(), var.clone(), 3, spec.settings())
        assert torch.equal(u, again), "the same predictions must give the same U"
        alone = torch.stack([spec.compute(mean[i:i + 1], var[i:i + 1], 3, spec.settings())[0] for i in range(6)])
        assert torch.allclose(u, alone), "a row's U must not depend on the other rows (rows leave a roll-out)"
        return f"U = {', '.join(f'{x:.3g}' for x in u[:3].tolist())}, ..."

    yield _run("penalty", name, "settings construct from defaults", lambda: repr(spec.settings()))
    yield _run("penalty", name, "U of K predictions: (B,), finite, >= 0, row-wise", values)
    yield _run("penalty", name, "a roll-out with it", lambda: _penalised_rollout(name))


def _penalised_rollout(name: str) -> str:
    from ..config import ModelConfig
    from ..envs.termination import never
    from ..models.factory import build_model
    from ..models.rollout import rollout

    data = toy_transitions(200)
    torch.manual_seed(0)
    model = build_model("adm", data.obs_dim, data.act_dim, ModelConfig.of(m=3, hidden=16, layers=1, head_blocks=1))
    w = _windows(model.eval(), data)
    out = rollout(model, lambda o: torch.zeros(len(o), data.act_dim), w["hist_obs"], w["hist_act"], w["obs"], 3, never,
                  name, 0.5, "batch", 8, torch.Generator().manual_seed(0))
    assert torch.allclose(out.rew, out.raw_rew - 0.5 * out.unc), "rewards must be r - beta * U"
    return f"mean U {float(out.unc.mean()):.3g} over {len(out)} imagined steps"


# ---- dataset formats

def format_checks(name: str) -> Iterator[Result]:
    spec = registry.dataset_format(name)
    yield _run("format", name, "settings construct from defaults", lambda: repr(spec.settings()))
    yield _run("format", name, "reference returns for an env", lambda: repr(spec.reference("hopper")))
    yield _run("format", name, "its suffixes name it", lambda: _suffixes(name, spec))
    if spec.write is not None:
        yield _run("format", name, "a dataset round-trips", lambda: _format_round_trip(name, spec))
    elif name == "collect":
        yield _run("format", name, "collects a dataset and reads it back", _collect_round_trip)
    else:
        yield Result("format", name, "a dataset round-trips", True, "skipped: the format cannot write")


def _suffixes(name: str, spec) -> str:
    for suffix in spec.suffixes:
        got = registry.format_of(f"some/file{suffix}", explicit=False)
        assert got == name, f"a {suffix} file is read as {got}"
    return ", ".join(spec.suffixes) or "none (an id or a made dataset)"


def _format_round_trip(name: str, spec) -> str:
    from ..config import DataConfig
    from ..data.formats import LoadContext

    data = toy_transitions(150)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"toy{spec.suffixes[0] if spec.suffixes else '.data'}"
        spec.write(path, data, None, None, {})
        back, _, _ = spec.load(str(path), DataConfig(benchmark=name, path=str(path)), spec.settings(), LoadContext())
    for field in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts"):
        a, b = getattr(data, field), getattr(back, field)
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-6), f"{field} differs after the round trip"
    assert np.array_equal(data.ends, back.ends), "episode ends differ after the round trip"
    return f"{len(back)} transitions, {int(back.ends.sum())} episodes"


def _collect_round_trip() -> str:
    from ..config import DataConfig
    from ..data.formats import LoadContext
    from ..envs.specs import get_spec

    spec = registry.dataset_format("collect")
    with tempfile.TemporaryDirectory() as tmp:
        data = DataConfig(task="conformance-hopper", data_dir=tmp, collect_steps=200)
        made, _, where = spec.load("", data, spec.settings(), LoadContext(get_spec("hopper"), 0))
        again, _, _ = spec.load("", data, spec.settings(), LoadContext(get_spec("hopper"), 0))
    assert len(made) == 200 and np.array_equal(made.observations, again.observations), "collected data not reread"
    return f"{len(made)} transitions in {Path(where).name}"


# ---- algorithms

TINY = ["model.max_epochs=2", "model.steps_per_epoch=5", "model.m=2", "model.hidden=16", "model.layers=1",
        "model.head_blocks=1", "model.ensemble_size=2", "model.elites=1", "model.ensemble_hidden=16",
        "rollout.batch_size=32", "rollout.horizon=2", "agent.hidden=[16, 16]", "agent.batch_size=16",
        "train.epochs=2", "train.steps_per_epoch=5", "train.rollout_freq=5", "train.bc_steps=10",
        "eval.episodes=1", "eval.max_episode_steps=10", "train.total_steps=20", "train.warmup_steps=20",
        "train.model_update_interval=10", "train.utd=1", "train.rollout_schedule=[1, 2, 0, 20]",
        "data.collect_steps=300"]


def algorithm_checks(name: str, folder: Path) -> Iterator[Result]:
    spec = registry.algorithm(name)
    for setting in spec.trains_in:
        yield _run("algorithm", name, f"a tiny {setting} run", lambda s=setting: _tiny_run(name, s, folder))


def _tiny_run(name: str, setting: str, folder: Path) -> str:
    from ..config import resolve
    from .setup import start_run
    from .train import train_stage

    preset = "quickstart-hopper-online" if setting == "online" else "quickstart-hopper"
    cfg = resolve(preset, sets=[f"data.data_dir={folder / 'data'}", *TINY], flags={"train.algo": name,
                                                                                   "run.device": "cpu"})
    run, device = start_run(cfg, folder / f"{name}-{setting}")
    res = train_stage(cfg, run, device)
    s = res.summary
    assert s.get("label") and "final_return" in s, "summary.json lacks its label or final return"
    assert run.file("metrics.csv").exists() and any(run.path.glob("policy/*.pt")), "no metrics rows or policy"
    again = train_stage(cfg, run, device)
    assert again.already_finished, "a finished run trained again"
    return f"{s['label']}: final return {s['final_return']:.3g}"


# ---- all of them

KINDS = {"model": registry.MODELS, "algorithm": registry.ALGORITHMS, "penalty": registry.PENALTIES,
         "format": registry.FORMATS}


def conformance(names: dict[str, list[str]] | None = None, progress: Progress = SILENT) -> list[Result]:
    """Run the checks of the named kinds ({"penalty": ["mypenalty"], ...}); None: every registered one."""
    names = names or {kind: list(reg.names()) for kind, reg in KINDS.items()}
    out: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp, progress.task("conformance", total=sum(map(len, names.values()))) as bar:
        for kind, listed in names.items():
            for name in listed:
                bar.update(info=f"{kind} {name}")
                out += _checks(kind, name, Path(tmp))
                bar.update(advance=1)
    return out


def _checks(kind: str, name: str, folder: Path) -> list[Result]:
    try:
        KINDS[kind].get(name)
    except Exception as exc:  # noqa: BLE001 - unknown or broken: one failed row
        return [Result(kind, name, "is registered and loads", False, str(exc))]
    torch.manual_seed(0)
    if kind == "model":
        return list(model_checks(name))
    if kind == "penalty":
        return list(penalty_checks(name))
    if kind == "format":
        return list(format_checks(name))
    return list(algorithm_checks(name, folder))

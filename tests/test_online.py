"""ADMPO-ON, MBPO and SAC through `admpo train-on` (Algorithm 2): the loop, its resume, the presets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from admpo_cli.algos.online import rollout_length, train_online
from admpo_cli.algos.training_run import Hooks
from admpo_cli.cli import app
from admpo_cli.config import preset_paths, resolve
from admpo_cli.process import seed_everything
from admpo_cli.rundir import RunDir

CPU = torch.device("cpu")
TINY = ["model.hidden=16", "model.layers=1", "model.head_blocks=1", "model.max_epochs=2", "model.steps_per_epoch=5",
        "model.ensemble_size=3", "model.elites=2", "model.ensemble_hidden=16", "model.ensemble_layers=2",
        "rollout.batch_size=32", "agent.hidden=[32, 32]", "agent.batch_size=32", "train.total_steps=120",
        "train.warmup_steps=40", "train.utd=2", "train.model_update_interval=40",
        "train.rollout_schedule=[1, 3, 40, 120]",
        "eval.episodes=2", "eval.every=40", "eval.max_episode_steps=50"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_rollout_length_schedule_is_table_4s_formula():
    # min(max(x + (t - a) / (b - a) (y - x), x), y), as an integer
    assert [rollout_length((1, 15, 0, 50_000), t) for t in (0, 25_000, 50_000, 90_000)] == [1, 8, 15, 15]
    assert [rollout_length((1, 5, 10_000, 100_000), t) for t in (0, 10_000, 55_000, 100_000)] == [1, 1, 3, 5]
    assert rollout_length((1, 1, 20_000, 150_000), 140_000) == 1


@pytest.mark.parametrize("algo,label", [("admpo", "ADMPO-ON"), ("mbpo", "MBPO (published)"), ("sac", "SAC")])
def test_three_algorithms_through_one_command(tmp_path, algo, label):
    r = invoke("train-on", "--preset", "quickstart-hopper-online", "--algo", algo,
               *[x for s in TINY for x in ("--set", s)])
    assert r.exit_code == 0, r.output
    (run,) = (tmp_path / "runs" / "quickstart-hopper-online").iterdir()
    assert run.name.startswith(f"{algo}-s0")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["label"].startswith(f"{label} (modified: ") and "train.total_steps" in summary["modified"]
    assert summary["env_steps"] == 120 and summary["setting"] == "online"
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("env_steps,updates,return_mean") and len(rows) == 1 + 3
    assert summary["gradient_steps"] == 120 * 2  # UTD 2 (the --set wins over SAC's 1) on the 120 learning steps
    if algo == "sac":
        assert summary["model"] is None and "model_holdout_mse" in rows[0]
        assert not (run / "diagnostics" / "refits.csv").exists()
    else:
        assert float(rows[-1].split(",")[rows[0].split(",").index("model_buffer")]) > 0
        # a diagnostics row per re-fit (learning steps 0, 40, 80), the last roll-out's transitions
        refits = pd.read_csv(run / "diagnostics" / "refits.csv")
        assert list(refits["env_steps"]) == [0, 40, 80] and refits["model_holdout_mse"].notna().all()
        last = np.load(run / "diagnostics" / "last_rollout.npz")
        assert refits["imagined_reward_mean"].iloc[-1] == pytest.approx(float(last["reward"].mean()), rel=1e-5)
        assert refits["imagined_done_frac"].iloc[-1] == pytest.approx(float(last["done"].mean()))


def test_published_online_settings():
    mbpo = resolve("hopper-online", flags={"train.algo": "mbpo"})
    assert mbpo.model.kind == "ensemble" and mbpo.train.total_steps == 50_000 and mbpo.model.lr == 1e-3
    assert mbpo.train.rollout_schedule == (1, 15, 20_000, 150_000) and mbpo.agent.target_update_every == 1
    assert mbpo.agent.actor_lr == 3e-4 and mbpo.rollout.batch_size == 100_000
    sac = resolve("hopper-online", flags={"train.algo": "sac"})
    assert sac.train.utd == 1 and sac.agent.actor_lr == 3e-4 and sac.agent.auto_alpha and sac.agent.target_entropy == 0
    admpo = resolve("hopper-online")
    assert admpo.train.utd == 20 and admpo.model.m == 5 and admpo.rollout.batch_size == 100_000
    quick = resolve("quickstart-hopper-online", flags={"train.algo": "mbpo"})
    assert quick.train.total_steps == 3000 and quick.model.kind == "ensemble"  # its own budget, MBPO's method


@pytest.mark.parametrize("args,needle", [
    (["--preset", "hopper-medium"], "`admpo train-off --preset hopper-medium`"),
    (["--preset", "hopper-online", "--algo", "mopo"], "`admpo train-off`"),
])
def test_train_on_refuses_offline_work(tmp_path, args, needle):
    r = invoke("train-on", *args)
    assert r.exit_code == 2 and needle in r.output, r.output
    assert not (tmp_path / "runs").exists()


def _train(cfg, rd, stop_at=None):
    def ctrl_c(step, row):
        if stop_at is not None and step >= stop_at:
            raise KeyboardInterrupt

    return train_online(cfg, rd, CPU, hooks=Hooks(on_progress=ctrl_c))


@pytest.mark.parametrize("algo", ["admpo", "sac"])
def test_resume_equals_uninterrupted(tmp_path, algo):
    """Interrupted mid-episode at an evaluation, resumed in a fresh process state: the same run."""
    cfg = resolve("quickstart-hopper-online", None, [*TINY, f"train.algo={algo}"])
    full = RunDir.create_or_open(tmp_path / "full", cfg)
    seed_everything(0)
    a = _train(cfg, full)
    split = RunDir.create_or_open(tmp_path / "split", cfg)
    seed_everything(0)
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, split, stop_at=80)
    ck = torch.load(split.file("checkpoints", "train.pt"), weights_only=True)
    # mid-episode, after 40 warm-up steps
    assert ck["loop"]["env_steps"] == 40 + 80 and ck["parts"]["env"]["elapsed"] > 0
    seed_everything(123)  # the checkpoint's random streams must win
    b = _train(cfg, split)
    strip = lambda p: [",".join(x.split(",")[:12]) for x in p.read_text().splitlines()]  # noqa: E731
    assert strip(full.file("metrics.csv")) == strip(split.file("metrics.csv"))
    if algo == "admpo":  # the re-fit after the checkpoint is redone, not written twice
        drop_clock = lambda p: pd.read_csv(p).drop(columns="model_fit_s")  # noqa: E731
        pd.testing.assert_frame_equal(drop_clock(full.file("diagnostics", "refits.csv")),
                                      drop_clock(split.file("diagnostics", "refits.csv")))
    pa = torch.load(full.file("policy", "actor.pt"), weights_only=True)["state_dict"]
    pb = torch.load(split.file("policy", "actor.pt"), weights_only=True)["state_dict"]
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert a["final_return"] == b["final_return"]


ONLINE = sorted(p for p in preset_paths() if p.endswith("online"))


@pytest.mark.parametrize("name", ONLINE)
def test_every_online_preset_resolves_and_starts(tmp_path, name):
    cfg = resolve(name, None, [*TINY, "train.total_steps=60", "train.rollout_schedule=[1, 2, 40, 60]",
                               "eval.every=60", "model.hidden=16"])
    rd = RunDir.create_or_open(tmp_path / "r", cfg)
    out = _train(cfg, rd)
    assert out["env_steps"] == 60 and out["label"].startswith("ADMPO-ON (modified: ")
    assert torch.load(rd.file("checkpoints", "train.pt"), weights_only=True)["parts"]["dynamics"]["model"] is not None


def test_sigterm_in_the_middle_of_a_refit_stops_it_at_once_and_resumes_to_the_same_run(tmp_path, monkeypatch):
    """A scheduler's SIGTERM arrives during the second re-fit: the fit ends at its next minibatch, the
    checkpoint holds the state before that learning step, and the resumed run redoes the fit: the same run."""
    import os
    import signal

    from admpo_cli.models.factory import build_model

    cfg = resolve("quickstart-hopper-online", None, [*TINY, "train.algo=admpo"])
    full = RunDir.create_or_open(tmp_path / "full", cfg)
    seed_everything(0)
    _train(cfg, full)
    adm = type(build_model("adm", 11, 3, cfg.model))
    original, calls = adm.train_step, []

    def train_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 13:  # the second fit (10 minibatches each: 2 epochs x 5), third minibatch
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(adm, "train_step", train_step)
    split = RunDir.create_or_open(tmp_path / "split", cfg)
    seed_everything(0)
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, split)
    assert len(calls) == 13  # not one minibatch more: the fit stopped at its next check
    ck = torch.load(split.file("checkpoints", "train.pt"), weights_only=True)
    assert ck["loop"]["env_steps"] == 40 + 40  # before learning step 40, whose re-fit was cut short
    monkeypatch.setattr(adm, "train_step", original)
    seed_everything(7)
    _train(cfg, split)
    strip = lambda p: [",".join(x.split(",")[:12]) for x in p.read_text().splitlines()]  # noqa: E731
    assert strip(full.file("metrics.csv")) == strip(split.file("metrics.csv"))
    pa = torch.load(full.file("policy", "actor.pt"), weights_only=True)["state_dict"]
    pb = torch.load(split.file("policy", "actor.pt"), weights_only=True)["state_dict"]
    assert all(torch.equal(pa[k], pb[k]) for k in pa)

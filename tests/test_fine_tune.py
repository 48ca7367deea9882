"""Offline -> online fine-tuning (`admpo train-on --init-from RUN`): what carries over, the first evaluation, resume,
the report's one curve, and the refusals."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from admpo_cli.agents import make_agent
from admpo_cli.algos import fine_tune
from admpo_cli.algos.online import train_online
from admpo_cli.algos.training_run import Hooks
from admpo_cli.cli import app
from admpo_cli.config import resolve
from admpo_cli.data.load import load_dataset
from admpo_cli.process import seed_everything
from admpo_cli.report.build import build_report
from admpo_cli.rundir import RunDir
from admpo_cli.stages.train import fine_tune_settings

CPU = torch.device("cpu")
OFFLINE = ["--set", "data.collect_steps=1200", "--set", "model.hidden=16", "--set", "model.layers=1",
           "--set", "model.head_blocks=1", "--set", "model.max_epochs=2", "--set", "model.steps_per_epoch=5",
           "--set", "rollout.batch_size=32", "--set", "rollout.horizon=2", "--set", "agent.hidden=[32, 32]",
           "--set", "agent.batch_size=32", "--set", "train.epochs=2", "--set", "train.steps_per_epoch=10",
           "--set", "train.rollout_freq=10", "--set", "train.bc_steps=20", "--set", "eval.episodes=2",
           "--set", "eval.max_episode_steps=40"]
ONLINE = ["rollout.batch_size=32", "agent.batch_size=32", "train.total_steps=80", "train.warmup_steps=20",
          "train.utd=2", "train.model_update_interval=40", "train.rollout_schedule=[1, 2, 0, 80]",
          "model.max_epochs=1", "model.steps_per_epoch=5", "eval.episodes=2", "eval.every=40",
          "eval.max_episode_steps=40"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    data = ["--set", f"data.data_dir={root / 'data'}"]
    for cmd, name in (("train-off", "off"), ("train-bc", "bc")):
        r = invoke(cmd, "--preset", "quickstart-hopper", "--run", root / name, *OFFLINE, *data)
        assert r.exit_code == 0, r.output
    return root


def last_eval(run) -> pd.Series:
    return pd.read_csv(run / "metrics.csv").dropna(subset=["return_mean"]).iloc[-1]


def fine_tuned(sources, tmp_path, name, *extra):
    sets = [a for s in ONLINE for a in ("--set", s)]
    r = invoke("train-on", "--preset", "quickstart-hopper-online", "--run", tmp_path / "ft", "--init-from",
               sources / name, *sets, *extra)
    assert r.exit_code == 0, r.output
    return tmp_path / "ft"


@pytest.fixture(scope="module")
def from_off(sources, tmp_path_factory):
    return fine_tuned(sources, tmp_path_factory.mktemp("ft"), "off")


def test_from_a_train_off_run_the_first_evaluation_is_its_last_and_everything_carries(sources, from_off):
    ft = from_off
    first = pd.read_csv(ft / "metrics.csv").iloc[0]
    src = last_eval(sources / "off")
    # the same policy on the same evaluation episodes (the source's seed, position, episodes, length)
    assert first["env_steps"] == 0 and first["updates"] == 0
    assert first["return_mean"] == src["return_mean"] and first["return_std"] == src["return_std"]
    s = json.loads((ft / "summary.json").read_text())["init_from"]
    assert s["carried"] == ["policy", "critics", "alpha", "model", "dataset (1200 transitions)"]
    assert s["dataset"] == "keep" and s["return_curve"][-1][1] == src["return_mean"]
    cfg = RunDir.open(ft).config()
    assert cfg.train.init_from == str(sources / "off") and cfg.train.model_refit == "warm_start"
    assert "train.init_from" in cfg.modified  # a fine-tuned run is never read as the protocol
    ck = torch.load(ft / "checkpoints" / "train.pt", weights_only=True)
    assert ck["parts"]["real"]["n"] == 1200 + 20 + 80  # the dataset, the warm-up, the learning steps


def test_the_agent_takes_the_source_runs_weights(sources):
    """Read back from the files: the actor of policy/actor.pt, the critics, targets and temperature of the
    source's last checkpoint."""
    flags = fine_tune_settings(str(sources / "off"), keep_dataset=True)
    cfg = resolve("quickstart-hopper-online", None, ONLINE, flags)
    agent = make_agent(11, 3, cfg.agent, CPU)
    source = fine_tune.open_source(sources / "off")
    fine_tune.carry_agent(source, agent)
    ck = torch.load(sources / "off" / "checkpoints" / "train.pt", weights_only=True)["parts"]["agent"]
    pol = torch.load(sources / "off" / "policy" / "actor.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(agent.actor.state_dict()[k], v) for k, v in pol.items())
    for part in ("critic", "critic_target"):
        mine = getattr(agent, part).state_dict()
        assert all(torch.equal(mine[k], v) for k, v in ck[part].items())
    assert float(agent.log_alpha.detach()) == float(ck["log_alpha"])


def test_from_a_bc_run_without_its_dataset(sources, tmp_path):
    ft = fine_tuned(sources, tmp_path, "bc", "--drop-dataset")
    first = pd.read_csv(ft / "metrics.csv").iloc[0]
    src = last_eval(sources / "bc")
    assert first["env_steps"] == 0 and first["return_mean"] == src["return_mean"]
    s = json.loads((ft / "summary.json").read_text())["init_from"]
    assert s["carried"] == ["policy"] and s["dataset"] == "drop" and s["algo"] == "bc"
    ck = torch.load(ft / "checkpoints" / "train.pt", weights_only=True)
    assert ck["parts"]["real"]["n"] == 20 + 80


def test_a_fine_tuned_run_resumes_to_the_uninterrupted_result(sources, tmp_path):
    cfg = resolve("quickstart-hopper-online", None, ONLINE, fine_tune_settings(str(sources / "off"), True))
    data = load_dataset(RunDir.open(sources / "off").config())[0]

    def train(rd, stop_at=None):
        def ctrl_c(step, row):
            if stop_at is not None and step >= stop_at:
                raise KeyboardInterrupt

        return train_online(cfg, rd, CPU, data=data, hooks=Hooks(on_progress=ctrl_c))

    full, split = (RunDir.create_or_open(tmp_path / n, cfg) for n in ("full", "split"))
    seed_everything(0)
    a = train(full)
    seed_everything(0)
    with pytest.raises(KeyboardInterrupt):
        train(split, stop_at=40)
    seed_everything(7)
    b = train(split)
    assert full.file("metrics.csv").read_text().count("\n") == 4  # step 0, 40, 80 and the header
    strip = lambda p: [",".join(x.split(",")[:8]) for x in p.read_text().splitlines()]  # noqa: E731
    assert strip(full.file("metrics.csv")) == strip(split.file("metrics.csv"))
    assert a["final_return"] == b["final_return"] and a["init_from"]["carried"] == b["init_from"]["carried"]


def test_the_report_draws_offline_then_online_as_one_curve(sources, from_off, tmp_path):
    build_report([sources / "off", from_off], tmp_path / "rep")
    assert (tmp_path / "rep" / "fine-tuning-quickstart-hopper-online.png").exists()
    assert "Offline -&gt; online" in (tmp_path / "rep" / "index.html").read_text() or \
        "Offline -> online" in (tmp_path / "rep" / "index.html").read_text()


@pytest.mark.parametrize("source, preset, needle", [
    ("nowhere", "quickstart-hopper-online", "not a run directory"),
    ("off", "walker2d-online", "trained on quickstart-hopper"),
])
def test_refusals_are_one_line_and_leave_nothing(sources, tmp_path, source, preset, needle):
    r = invoke("train-on", "--preset", preset, "--run", tmp_path / "ft", "--init-from",
               sources / source if source != "nowhere" else tmp_path / "nowhere")
    assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output
    assert not (tmp_path / "ft").exists()

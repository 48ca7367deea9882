"""Plugins: a toy model and a toy algorithm, each ONE file under tests/plugins/, installed as a distribution
(a dist-info folder with entry points on the path: what `pip install` leaves behind) and run through the
CLI in a fresh process, as a user of a third-party package would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"
TINY = ["--set", "model.max_epochs=2", "--set", "model.steps_per_epoch=5", "--set", "rollout.batch_size=64",
        "--set", "rollout.horizon=3", "--set", "agent.hidden=[32, 32]", "--set", "agent.batch_size=32",
        "--set", "train.epochs=2", "--set", "train.steps_per_epoch=10", "--set", "train.rollout_freq=10",
        "--set", "eval.episodes=1", "--set", "eval.max_episode_steps=50", "--set", "model.hidden=16",
        "--set", "model.layers=1", "--set", "model.head_blocks=1"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A site folder holding the plugin modules and their distribution's metadata (entry points)."""
    site = tmp_path_factory.mktemp("site")
    for f in ("toy_linear_model.py", "toy_greedy_algo.py"):
        shutil.copy(PLUGINS / f, site / f)
    info = site / "admpo_toy_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: admpo-toy-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[admpo.models]\ntoy-linear = toy_linear_model:MODEL\n\n"
                                           "[admpo.algorithms]\ntoy-greedy = toy_greedy_algo:ALGORITHM\n")
    (info / "RECORD").write_text("")
    return site


def admpo(site: Path, cwd: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200", "ADMPO_QUIET": "1"}
    code = "import sys; from admpo_cli.cli import main; sys.argv = ['admpo'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_plugin_model_and_algorithm_run_from_the_cli(site, tmp_path, hopper_file):
    data = ["--set", f"data.path={hopper_file}", "--set", "data.benchmark=d4rl"]
    run = tmp_path / "r"
    # the toy model, with its own config key, fitted and measured next to ADM
    r = admpo(site, tmp_path, "fit-model", "--preset", "quickstart-hopper", "--run", run, "--model", "toy-linear",
              *data, *TINY, "--set", "model.toy_logvar_init=-1.5")
    assert r.returncode == 0, r.stderr + r.stdout
    fit = (run / "model" / "fit.csv").read_text()
    assert "toy-linear" in fit and (run / "model" / "toy-linear.pt").exists()
    r = admpo(site, tmp_path, "fit-model", "--run", run)  # the run's own ADM beside it
    assert r.returncode == 0, r.stderr + r.stdout
    r = admpo(site, tmp_path, "eval-compounding", "--run", run, "--horizons", "1..5", "--starts", "16")
    assert r.returncode == 0, r.stderr + r.stdout
    curves = (run / "compounding.csv").read_text()
    assert "toy-linear," in curves and "adm (random k)," in curves
    # the toy algorithm: its own loop, its published settings, its default model (the plugin model)
    r = admpo(site, tmp_path, "train-off", "--preset", "quickstart-hopper", "--run", tmp_path / "g",
              "--algo", "toy-greedy", *data, *TINY, "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    summary = json.loads((tmp_path / "g" / "summary.json").read_text())
    assert summary["label"].startswith("Greedy (toy) (modified: ") and summary["model"] == "toy-linear"
    assert summary["gradient_steps"] == 20 and summary["evaluations"] == 2
    cfg = (tmp_path / "g" / "config.yaml").read_text()
    assert "kind: toy-linear" in cfg and "beta: 0.0" in cfg  # its published settings applied
    assert (tmp_path / "g" / "checkpoints" / "train.pt").exists() and (tmp_path / "g" / "policy" / "actor.pt").exists()


def test_plugins_are_listed_and_their_keys_checked(site, tmp_path):
    r = admpo(site, tmp_path, "doctor")
    assert r.returncode == 0, r.stderr
    assert "model toy-linear" in r.stdout and "admpo-toy-plugins 0.1" in r.stdout
    assert "algorithm toy-greedy" in r.stdout
    # the plugin model's key is typed and checked by the plugin's own settings class
    r = admpo(site, tmp_path, "fit-model", "--preset", "quickstart-hopper", "--model", "toy-linear",
              "--set", "model.toy_logvar_init=9")
    assert r.returncode != 0 and "model.toy_logvar_init: expected at most 5" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    r = admpo(site, tmp_path, "train-off", "--preset", "quickstart-hopper", "--algo", "toy-greed")
    assert r.returncode != 0 and "did you mean 'toy-greedy'" in r.stderr + r.stdout


def test_without_the_distribution_the_names_are_unknown(tmp_path):
    r = admpo(tmp_path, tmp_path, "fit-model", "--preset", "quickstart-hopper", "--model", "toy-linear")
    assert r.returncode != 0 and "unknown model 'toy-linear'" in r.stderr + r.stdout


def test_a_broken_plugin_spoils_only_itself(tmp_path):
    """An entry point whose module does not import: doctor reports it, other commands run, using it is one line."""
    info = tmp_path / "broken_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[admpo.models]\nbroken = no_such_module:MODEL\n")
    r = admpo(tmp_path, tmp_path, "presets", "show", "quickstart-hopper")
    assert r.returncode == 0 and "hidden: 64" in r.stdout, r.stderr
    r = admpo(tmp_path, tmp_path, "doctor")
    assert r.returncode == 0 and "model broken" in r.stdout and "no_such_module" in r.stdout
    r = admpo(tmp_path, tmp_path, "fit-model", "--preset", "quickstart-hopper", "--model", "broken")
    assert r.returncode != 0 and "broken-plugin 1.0" in r.stderr + r.stdout and "Traceback" not in r.stderr

"""Plugins: a toy model, a toy algorithm, a penalty with its own hyper-parameter and a CSV dataset format, each
ONE file under tests/plugins/, installed as a distribution (a dist-info folder with entry points on the path:
what `pip install` leaves behind) and run through the CLI in a fresh process, as a user of a third-party
package would; and the template package that `admpo new-plugin` writes, checked by `admpo conformance`."""

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
    for f in ("toy_linear_model.py", "toy_greedy_algo.py", "toy_quantile_penalty.py", "toy_csv_format.py"):
        shutil.copy(PLUGINS / f, site / f)
    info = site / "admpo_toy_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: admpo-toy-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[admpo.models]\ntoy-linear = toy_linear_model:MODEL\n\n"
                                           "[admpo.algorithms]\ntoy-greedy = toy_greedy_algo:ALGORITHM\n\n"
                                           "[admpo.penalties]\ntoy-quantile = toy_quantile_penalty:PENALTY\n\n"
                                           "[admpo.formats]\ntoy-csv = toy_csv_format:FORMAT\n")
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
              "--algo", "toy-greedy", *data, *TINY, "--set", "train.greedy_every=5", "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    summary = json.loads((tmp_path / "g" / "summary.json").read_text())
    assert summary["label"].startswith("Greedy (toy) (modified: ") and summary["model"] == "toy-linear"
    assert summary["gradient_steps"] == 20 and summary["evaluations"] == 2 and summary["greedy_every"] == 5
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


def test_a_plugin_penalty_with_its_own_key_trains_from_the_cli(site, tmp_path, hopper_file):
    data = ["--set", f"data.path={hopper_file}", "--set", "data.benchmark=d4rl"]
    run = tmp_path / "q"
    r = admpo(site, tmp_path, "train-off", "--preset", "quickstart-hopper", "--run", run, *data, *TINY,
              "--set", "rollout.uncertainty=toy-quantile", "--set", "rollout.quantile=0.25",
              "--set", "rollout.beta=0.5")
    assert r.returncode == 0, r.stderr + r.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["uncertainty"] == "toy-quantile" and "modified: " in summary["label"]
    assert "quantile: 0.25" in (run / "config.yaml").read_text()
    import numpy as np

    # the imagined rewards are r - beta * U with U the plugin's quantile of the candidates' std norms
    last = np.load(run / "diagnostics" / "last_rollout.npz")
    assert (last["uncertainty"] > 0).all()
    np.testing.assert_allclose(last["penalised_reward"], last["reward"] - 0.5 * last["uncertainty"], rtol=1e-5,
                               atol=1e-6)
    # the penalty's own check: one line naming the key, no traceback, nothing made
    bad = tmp_path / "bad"
    r = admpo(site, tmp_path, "train-off", "--preset", "quickstart-hopper", "--run", bad, *data,
              "--set", "rollout.uncertainty=toy-quantile", "--set", "rollout.quantile=2")
    assert r.returncode != 0 and "rollout.quantile: expected a number in [0, 1], got 2" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr and not bad.exists()
    r = admpo(site, tmp_path, "train-off", "--preset", "quickstart-hopper", "--set", "rollout.uncertainty=toy-quantil")
    assert r.returncode != 0 and "did you mean 'toy-quantile'" in r.stderr + r.stdout


def test_a_plugin_dataset_format_is_collected_read_fitted_and_cloned(site, tmp_path):
    csv = tmp_path / "d" / "hopper.csv"
    r = admpo(site, tmp_path, "collect", "--env", "hopper", "--out", csv, "--steps", "1200", "--format", "toy-csv")
    assert r.returncode == 0, r.stderr + r.stdout
    assert csv.read_text().startswith("o0,o1,")
    r = admpo(site, tmp_path, "data", "info", csv)  # the suffix names the format
    assert r.returncode == 0, r.stderr + r.stdout
    assert "toy-csv" in r.stdout and "1200" in r.stdout and "normalised score" in r.stdout
    data = ["--set", f"data.path={csv}", "--set", "data.benchmark=toy-csv", "--set", "data.csv_delimiter=,"]
    r = admpo(site, tmp_path, "fit-model", "--preset", "quickstart-hopper", "--run", tmp_path / "f", *data, *TINY)
    assert r.returncode == 0, r.stderr + r.stdout
    rec = json.loads((tmp_path / "f" / "dataset.json").read_text())
    assert rec["format"] == "toy-csv" and rec["transitions"] == 1200
    r = admpo(site, tmp_path, "train-bc", "--preset", "quickstart-hopper", "--run", tmp_path / "b", *data,
              "--steps", "20", "--set", "eval.episodes=1", "--set", "eval.max_episode_steps=20")
    assert r.returncode == 0, r.stderr + r.stdout
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["gradient_steps"] == 20
    r = admpo(site, tmp_path, "data", "info", csv, "--format", "toy-cs")
    assert r.returncode != 0 and "did you mean 'toy-csv'" in r.stderr + r.stdout
    r = admpo(site, tmp_path, "fit-model", "--preset", "quickstart-hopper", *data, "--set", "data.csv_delimiter=;;")
    assert r.returncode != 0 and "data.csv_delimiter: expected one character" in r.stderr + r.stdout


def test_a_plugin_that_raises_on_import_costs_one_line_where_it_is_used(tmp_path):
    """A RuntimeError at import (not an ImportError): the commands that do not use it run; using it is one line
    naming its package; a model plugin declaring an unregistered uncertainty is refused when it loads."""
    (tmp_path / "raising_penalty.py").write_text("raise RuntimeError('this plugin is broken')\n")
    (tmp_path / "odd_model.py").write_text(
        (PLUGINS / "toy_linear_model.py").read_text().replace('uncertainties=("max_aleatoric",)',
                                                              'uncertainties=("no-such-penalty",)'))
    info = tmp_path / "raising_plugin-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: raising-plugin\nVersion: 2.0\n")
    (info / "entry_points.txt").write_text("[admpo.penalties]\nraising = raising_penalty:PENALTY\n\n"
                                           "[admpo.models]\nodd = odd_model:MODEL\n")
    r = admpo(tmp_path, tmp_path, "presets", "show", "quickstart-hopper")
    assert r.returncode == 0 and "hidden: 64" in r.stdout, r.stderr
    r = admpo(tmp_path, tmp_path, "train-off", "--preset", "quickstart-hopper", "--set", "rollout.uncertainty=raising")
    out = r.stderr + r.stdout
    assert r.returncode != 0 and "raising-plugin 2.0" in out and "RuntimeError: this plugin is broken" in out
    assert "Traceback" not in out and len(r.stderr.strip().splitlines()) <= 2, r.stderr
    r = admpo(tmp_path, tmp_path, "fit-model", "--preset", "quickstart-hopper", "--model", "odd")
    out = r.stderr + r.stdout
    assert r.returncode != 0 and "no-such-penalty" in out and "raising-plugin 2.0" in out and "Traceback" not in out
    r = admpo(tmp_path, tmp_path, "doctor")
    assert r.returncode == 0 and "penalty raising" in r.stdout and "format d4rl" in r.stdout


def test_the_shipped_template_plugin_installs_and_passes_conformance(tmp_path):
    """`admpo new-plugin` writes a package with one of each kind; installed, `admpo conformance` passes on it."""
    import tomllib

    site = tmp_path / "site"
    r = admpo(site, tmp_path, "new-plugin", tmp_path / "pkg", "--name", "myext")
    assert r.returncode == 0, r.stderr + r.stdout
    shutil.copytree(tmp_path / "pkg" / "src" / "myext", site / "myext")
    meta = tomllib.loads((tmp_path / "pkg" / "pyproject.toml").read_text())
    info = site / "myext-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myext\nVersion: 0.1.0\n")
    groups = meta["project"]["entry-points"]
    (info / "entry_points.txt").write_text("".join(
        f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for g, eps in groups.items()))
    r = admpo(site, tmp_path, "conformance", "--model", "myext-model", "--algo", "myext-algo",
              "--penalty", "myext-penalty", "--format", "myext-format")
    assert r.returncode == 0, r.stderr + r.stdout[-3000:]
    assert "checks passed" in r.stdout and "FAIL" not in r.stdout
    r = admpo(site, tmp_path, "new-plugin", tmp_path / "pkg", "--name", "myext")  # exists: one line, untouched
    assert r.returncode != 0 and "already exists" in r.stderr + r.stdout


def test_the_plugins_use_the_public_contract_only():
    """Every admpo import of the test plugins and of the shipped template comes from admpo_cli.extend."""
    import ast
    from importlib import resources

    import admpo_cli.extend as extend

    files = {p.name: p.read_text() for p in PLUGINS.glob("*.py")}
    template = resources.files("admpo_cli") / "templates" / "plugin"
    files.update({t.name: t.read_text().replace("{name}", "x") for t in template.iterdir()
                  if t.name.endswith(".py.tmpl")})
    assert len(files) >= 8
    for name, text in files.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("admpo_cli"):
                assert node.module == "admpo_cli.extend", f"{name} imports {node.module}"
                assert all(a.name in extend.__all__ for a in node.names), f"{name}: {[a.name for a in node.names]}"

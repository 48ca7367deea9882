"""`admpo tune`: the search space, a search on the local pool killed with -9 and continued, the same search on
Ray, the best configuration as a config file, and the offline criterion's rank correlation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from admpo_cli.config import resolve
from admpo_cli.errors import UserError
from admpo_cli.sweep.search_space import Param, parse_param, read_space, search_space

pytest.importorskip("optuna")
ADMPO = str(Path(sys.executable).with_name("admpo"))
TINY = ["data.collect_steps=1200", "model.hidden=16", "model.layers=1", "model.head_blocks=1", "model.max_epochs=2",
        "model.steps_per_epoch=5", "rollout.batch_size=32", "agent.hidden=[32, 32]", "agent.batch_size=32",
        "train.epochs=3", "train.steps_per_epoch=20", "train.rollout_freq=20", "eval.episodes=2",
        "eval.max_episode_steps=40", "train.checkpoint_every=1"]
SPACE = ["--param", "rollout.beta=0.1:10:log", "--param", "rollout.horizon=1,3,5"]


def test_the_search_space_from_the_command_line_and_yaml(tmp_path):
    assert parse_param("rollout.beta=0.1:10:log") == Param("rollout.beta", 0.1, 10.0, log=True)
    assert parse_param("rollout.horizon=1:20:int") == Param("rollout.horizon", 1, 20, integer=True)
    assert parse_param("rollout.horizon=1,5,10") == Param("rollout.horizon", choices=(1, 5, 10))
    assert parse_param("rollout.uncertainty=authors,paper").choices == ("authors", "paper")
    for bad in ("rollout.beta", "beta=1:2", "rollout.beta=2:1", "rollout.beta=0:1:log", "rollout.beta=1:2:cubic",
                "rollout.horizon=5"):
        with pytest.raises(UserError):
            parse_param(bad)
    f = tmp_path / "space.yaml"
    f.write_text("rollout.beta: {low: 0.1, high: 10, log: true}\nrollout.horizon: [1, 5]\n")
    assert read_space(f) == [Param("rollout.beta", 0.1, 10.0, log=True), Param("rollout.horizon", choices=(1, 5))]
    with pytest.raises(UserError, match="searched twice"):
        search_space(["rollout.horizon=1,2"], f)


def tune(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([ADMPO, "tune", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "ADMPO_QUIET": "1"}, **kw)


def base_args(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    sets = [*TINY, f"data.data_dir={tmp_path / 'data'}"]
    return ["--preset", "quickstart-hopper", *SPACE, "--trials", "8", "--out", str(out), "--fqe-steps", "100",
            *(x for s in sets for x in ("--set", s)), *extra]


def states(out: Path) -> dict[int, str]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="admpo-tune", storage=f"sqlite:///{out / 'study.db'}")
    return {t.number: t.state.name for t in study.get_trials(deepcopy=False)}


def check_finished_search(out: Path) -> pd.DataFrame:
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 8 and set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    assert sorted(trials["number"]) == list(range(8))
    # the best configuration is a config file train-off reads, with the best trial's parameters
    best = json.loads((out / "tune.json").read_text())["best"]
    doc = yaml.safe_load((out / "best.yaml").read_text())
    cfg = resolve("quickstart-hopper", out / "best.yaml")
    assert cfg.rollout.beta == pytest.approx(best["params"]["rollout.beta"])
    assert cfg.rollout.horizon == best["params"]["rollout.horizon"] and doc["model"]["hidden"] == 16
    done = trials[trials["state"] == "COMPLETE"]
    assert best["value"] == pytest.approx(done["value"].max())
    # each offline criterion's rank correlation with the simulator, against scipy's
    from scipy.stats import spearmanr

    agreement = json.loads((out / "tune.json").read_text())["criterion_agreement"]
    assert set(agreement) == {"model_return", "fqe_value"}
    for col, agree in agreement.items():
        both = done.dropna(subset=[col, "final_return"])
        assert agree["n"] == len(both) >= 3
        assert agree["spearman"] == pytest.approx(spearmanr(both[col], both["final_return"])[0])
    page = (out / "index.html").read_text()
    assert "Spearman" in page and "Optimisation history" in page and "Parameter importances" in page
    imp = json.loads((out / "importances.json").read_text())
    assert set(imp) == {"rollout.beta", "rollout.horizon"} and sum(imp.values()) == pytest.approx(1.0)
    return trials


@pytest.mark.slow
def test_a_search_killed_with_minus_9_continues_without_repeating_finished_trials(tmp_path, wait_for):
    out = tmp_path / "tune"
    args = base_args(tmp_path, out, "--jobs", "2")
    proc = subprocess.Popen([ADMPO, "tune", *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "ADMPO_QUIET": "1"})
    finished_trials = lambda: sum(v in ("COMPLETE", "PRUNED") for v in  # noqa: E731
                                  (states(out) if (out / "study.db").exists() else {}).values())
    wait_for(lambda: finished_trials() >= 3, 300, proc, "the search did not finish 3 trials")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = states(out)
    finished = [n for n, v in before.items() if v in ("COMPLETE", "PRUNED")]
    stamps = {n: (out / "trials" / f"trial-{n:03d}" / "summary.json").stat().st_mtime_ns for n in finished}
    time.sleep(3)  # the orphaned workers checkpoint and let go of their runs' locks
    r = tune(args, tmp_path, timeout=400)
    assert r.returncode == 0, r.stdout + r.stderr
    trials = check_finished_search(out)
    for n in finished:  # never trained again: the same state and the same files
        assert trials.loc[trials["number"] == n, "state"].item() == before[n]
        assert (out / "trials" / f"trial-{n:03d}" / "summary.json").stat().st_mtime_ns == stamps[n]
    resumed = [n for n, v in before.items() if v == "RUNNING"]
    assert f"{len(resumed)} resumed" in r.stdout
    # the same command once more: nothing left to run
    r = tune(args, tmp_path, timeout=120)
    assert r.returncode == 0 and "0 trained now, 0 resumed" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_the_same_search_runs_on_a_ray_cluster(tmp_path, ray_cluster):
    out = tmp_path / "tune"
    r = tune(base_args(tmp_path, out, "--ray-address", ray_cluster, "--parallel", "2", "--cpus-per-run", "1"),
             tmp_path, timeout=500)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Ray cluster: 1 node(s)" in r.stdout and "8 trained now" in r.stdout
    check_finished_search(out)


def test_selection_on_the_offline_criterion_needs_a_model_and_turns_pruning_off(tmp_path):
    r = tune(["--preset", "quickstart-hopper", "--algo", "bc", *SPACE, "--select", "model-return", "--out",
              str(tmp_path / "t")], tmp_path, timeout=120)
    assert r.returncode == 2 and "needs an offline model-based algorithm" in r.stderr + r.stdout
    r = tune(["--preset", "quickstart-hopper-online", *SPACE, "--select", "fqe", "--out", str(tmp_path / "t")],
             tmp_path, timeout=120)
    assert r.returncode == 2 and "online preset" in r.stderr + r.stdout
    r = tune(["--preset", "quickstart-hopper", "--param", "rollout.nope=1,2", "--out", str(tmp_path / "t")],
             tmp_path, timeout=120)
    assert r.returncode == 2 and "rollout.nope" in r.stderr + r.stdout and "Traceback" not in r.stderr
    assert not (tmp_path / "t").exists()

from __future__ import annotations

import importlib.metadata
import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import admpo_cli
from admpo_cli.cli import app

runner = CliRunner()

TINY = [
    "--set", "model.hidden=16", "--set", "model.layers=1", "--set", "model.head_blocks=1",
    "--set", "model.max_epochs=2", "--set", "model.steps_per_epoch=5", "--set", "model.ensemble_size=3",
    "--set", "model.elites=2", "--set", "model.ensemble_hidden=16",
    "--set", "rollout.batch_size=64", "--set", "rollout.horizon=3",
    "--set", "agent.hidden=[32, 32]", "--set", "agent.batch_size=32",
    "--set", "train.epochs=2", "--set", "train.steps_per_epoch=10", "--set", "train.rollout_freq=10",
    "--set", "train.checkpoint_every=1", "--set", "train.bc_steps=20",
    "--set", "eval.episodes=2", "--set", "eval.max_episode_steps=30",
]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_version_and_presets():
    r = invoke("--version")
    assert r.exit_code == 0 and r.output.strip() == f"admpo {admpo_cli.__version__}"
    # one version source: the installed distribution's metadata reads admpo_cli.__version__ (pyproject dynamic)
    assert importlib.metadata.version("admpo") == admpo_cli.__version__
    r = invoke("presets", "list")
    assert r.exit_code == 0
    for name in ("neorl-hopper-low", "walker2d-medium-expert", "humanoid-online", "quickstart-hopper"):
        assert name in r.output
    r = invoke("presets", "show", "neorl-hopper-low")
    assert r.exit_code == 0 and "horizon: 20" in r.output and "beta: 5.0" in r.output


@pytest.mark.parametrize("args,needle", [
    (["presets", "show", "hoper-low"], "unknown preset"),
    (["fit-model", "--preset", "quickstart-hopper", "--set", "model.mm=3"], "did you mean 'm'"),
    (["fit-model", "--preset", "nope"], "unknown preset"),
    (["resume", "/nonexistent/run"], "does not exist"),
    (["train-off", "--preset", "hopper-medium", "--run", "{tmp}/r"], "hopper_medium-v2.hdf5 not found"),
    (["data", "info", "{tmp}/missing.hdf5"], "no such file"),
    (["fit-model", "--preset", "quickstart-hopper", "--device", "cuda:3"], "--device cuda:3"),
])
def test_user_errors_are_one_red_line_exit_2(args, needle, tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    r = invoke(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.exit_code == 2, r.output
    assert needle in r.output
    assert "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) <= 2


def test_bad_dataset_file_gives_exit_2(tmp_path):
    p = tmp_path / "bad.hdf5"
    with h5py.File(p, "w") as fh:
        fh["observations"] = np.zeros((10, 12), np.float32)
        fh["next_observations"] = np.zeros((10, 12), np.float32)
        fh["actions"] = np.zeros((10, 3), np.float32)
        fh["rewards"] = np.zeros(10, np.float32)
        fh["terminals"] = np.zeros(10, bool)
    r = invoke("fit-model", "--preset", "quickstart-hopper", "--dataset", p, "--run", tmp_path / "r")
    assert r.exit_code == 2 and "has 12 dims, expected 11" in r.output


@pytest.mark.parametrize("defect,needle", [
    ("missing_key", "missing key 'actions'"),
    ("nan_rows", "rows with NaN/inf (first at row 3)"),
    ("truncated", "not a readable HDF5 file"),
])
def test_defective_files_give_one_line_and_exit_2(tmp_path, defect, needle):
    p = tmp_path / "d.hdf5"
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(3000, 11)).astype(np.float32)
    if defect == "nan_rows":
        obs[3, 0] = np.inf
    with h5py.File(p, "w") as fh:
        fh["observations"] = obs
        fh["next_observations"] = obs
        if defect != "missing_key":
            fh["actions"] = np.zeros((3000, 3), np.float32)
        fh["rewards"] = np.zeros(3000, np.float32)
        fh["terminals"] = np.zeros(3000, bool)
    if defect == "truncated":
        p.write_bytes(p.read_bytes()[:5000])
    r = invoke("fit-model", "--preset", "quickstart-hopper", "--dataset", p, "--run", tmp_path / "r")
    assert r.exit_code == 2, r.output
    assert needle in r.output and "d.hdf5" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_collect_and_data_info(tmp_path):
    out = tmp_path / "h.hdf5"
    r = invoke("collect", "--env", "hopper", "--steps", 1500, "--out", out, "--seed", 1)
    assert r.exit_code == 0, r.output
    r = invoke("data", "info", out, "--task", "hopper-random-v2")
    assert r.exit_code == 0, r.output
    assert "1500" in r.output and "normalised score" in r.output
    npz = tmp_path / "Hopper-v3-low-100-train-noise.npz"
    r = invoke("collect", "--env", "hopper", "--steps", 500, "--out", npz, "--format", "neorl")
    assert r.exit_code == 0, r.output
    with np.load(npz) as z:
        assert z["obs"].shape == (500, 12) and set(z.files) >= {"obs", "next_obs", "action", "reward", "done", "index"}


def test_doctor_runs():
    r = invoke("doctor")
    assert r.exit_code == 0 and "Hopper-v4" in r.output and "torch threads" in r.output


@pytest.fixture(scope="module")
def run_with_data(tmp_path_factory, hopper_file):
    return tmp_path_factory.mktemp("runs") / "r", hopper_file


def test_fit_model_every_kind_into_one_run(run_with_data):
    run, data = run_with_data
    for kind in ("adm", "ensemble", "bootrnn"):
        r = invoke("fit-model", "--preset", "quickstart-hopper", "--dataset", data, "--run", run,
                   "--model", kind, *TINY)
        assert r.exit_code == 0, r.output
        assert (run / "model" / f"{kind}.pt").exists()
    rows = (run / "model" / "fit.csv").read_text().splitlines()
    assert rows[0].startswith("kind,epoch,train_loss,holdout_mse,holdout_mse_k1")
    assert len(rows) == 1 + 3 * 2
    meta = json.loads((run / "meta.json").read_text())
    assert "status" not in meta  # a status per stage, none for the whole directory
    assert all(meta["stages"][f"fit-model-{k}"]["status"] == "done" for k in ("adm", "ensemble", "bootrnn"))
    assert json.loads((run / "dataset.json").read_text())["transitions"] == 3000


def test_train_off_mopo_and_bc_through_the_cli(run_with_data, tmp_path):
    run, data = run_with_data
    expect = {"": ("admpo", "ADMPO-OFF"), "--modelensemble": ("admpo", "ADMPO-OFF with ensemble model (ablation)"),
              "--algomopo": ("mopo", "MOPO (no published setting for this task)"), "--algobc": ("bc", "BC")}
    for extra in ([], ["--model", "ensemble"], ["--algo", "mopo"], ["--algo", "bc"]):
        rd = tmp_path / ("r" + "".join(extra))
        r = invoke("train-off", "--preset", "quickstart-hopper", "--dataset", data, "--run", rd, *TINY, *extra)
        assert r.exit_code == 0, r.output
        summary = json.loads((rd / "summary.json").read_text())
        # TINY changes protocol keys: the label names them after the algorithm's own
        protocol_label, modified = summary["label"].split(" (modified: ")
        assert (summary["algo"], protocol_label) == expect["".join(extra)]
        assert "train.epochs" in summary["modified"] and modified.endswith("more)")
        assert summary["final_score"] is not None
        assert (rd / "policy" / "actor.pt").exists()
    # a finished run is not trained again
    r = invoke("train-off", "--run", tmp_path / "r")
    assert r.exit_code == 0 and "already finished" in r.output
    # its policy drives `admpo collect` (NeoRL-style noisy actions)
    out = tmp_path / "from-policy.hdf5"
    r = invoke("collect", "--env", "hopper", "--steps", 400, "--out", out, "--policy",
               tmp_path / "r" / "policy" / "actor.pt", "--noise")
    assert r.exit_code == 0, r.output
    assert "admpo" in r.output  # the policy's origin is reported
    r = invoke("collect", "--env", "walker2d", "--steps", 10, "--out", out, "--policy",
               tmp_path / "r" / "policy" / "actor.pt")
    assert r.exit_code == 2 and "expected 17" in r.output


@pytest.mark.slow
def test_collect_quality_modes_train_sac_first(tmp_path):
    out = tmp_path / "m.hdf5"
    r = invoke("collect", "--env", "hopper", "--steps", 300, "--out", out, "--quality", "medium",
               "--target-return", 1e9, "--train-steps", 1200)
    assert r.exit_code == 0, r.output
    assert "sac_curve" in r.output
    from admpo_cli.data import d4rl

    assert len(d4rl.load_d4rl(out)) == 300
    out = tmp_path / "mr.hdf5"
    r = invoke("collect", "--env", "hopper", "--out", out, "--quality", "medium-replay",
               "--target-return", 1e9, "--train-steps", 800)
    assert r.exit_code == 0, r.output
    data = d4rl.load_d4rl(out)
    assert len(data) == 800 and data.ends.sum() >= 10  # random-ish early episodes are short
    # reached at the first evaluation (200 random + 200 learning steps): SAC stops there, the data ends there
    out = tmp_path / "early.hdf5"
    r = invoke("collect", "--env", "hopper", "--out", out, "--quality", "medium-replay",
               "--target-return", -1e9, "--train-steps", 800)
    assert r.exit_code == 0, r.output
    assert len(d4rl.load_d4rl(out)) == 400
    r = invoke("collect", "--env", "hopper", "--out", out, "--quality", "great")
    assert r.exit_code == 2 and "--quality" in r.output


def test_dataset_flag_reads_and_never_collects(tmp_path, hopper_file):
    r = invoke("fit-model", "--preset", "quickstart-hopper", "--dataset", tmp_path / "nope.hdf5", *TINY)
    assert r.exit_code == 2 and "nope.hdf5: no such file" in r.output
    r = invoke("fit-model", "--preset", "quickstart-hopper", "--dataset", "hopper-medium-v2", *TINY)
    assert r.exit_code == 2 and "hopper_medium-v2.hdf5 not found" in r.output
    assert not (tmp_path / "data").exists()


def test_same_seed_same_numbers(tmp_path, hopper_file):
    outs = []
    for name in ("a", "b"):
        r = invoke("train-off", "--preset", "quickstart-hopper", "--dataset", hopper_file, "--run", tmp_path / name,
                   "--seed", 3, *TINY)
        assert r.exit_code == 0, r.output
        lines = (tmp_path / name / "metrics.csv").read_text().splitlines()
        outs.append([",".join(line.split(",")[:10]) for line in lines])  # all but timings
    assert outs[0] == outs[1] and len(outs[0]) == 2


def test_data_info_checks_dimensions_against_the_task(tmp_path):
    out = tmp_path / "h.hdf5"
    assert invoke("collect", "--env", "hopper", "--steps", 300, "--out", out).exit_code == 0
    r = invoke("data", "info", out, "--task", "walker2d")
    assert r.exit_code == 2 and "observations have 11 dims, walker2d (d4rl layout) expects 17" in r.output
    assert "normalised score" not in r.output
    r = invoke("data", "info", out, "--task", "neorl-hopper-low")
    assert r.exit_code == 2 and "expects 12" in r.output


def test_default_run_directories_never_mix_algorithms(tmp_path, hopper_file):
    """ADMPO, MOPO and the ensemble ablation of one preset get their own directories by default."""
    made = []
    for extra in ([], ["--model", "ensemble"], ["--algo", "mopo"]):
        r = invoke("train-off", "--preset", "quickstart-hopper", "--dataset", hopper_file, *TINY, *extra)
        assert r.exit_code == 0, r.output
        assert "already finished" not in r.output
        made.append(sorted(p.name for p in (tmp_path / "runs" / "quickstart-hopper").iterdir()))
    names = made[-1]
    assert len(names) == 3, names
    assert sorted(n.rsplit("-s0", 1)[0] for n in names) == ["admpo", "admpo-ensemble", "mopo"]
    labels = {n: json.loads((tmp_path / "runs" / "quickstart-hopper" / n / "summary.json").read_text())["label"]
              for n in names}
    assert len(set(labels.values())) == 3
    # the same command again finds its own finished run
    r = invoke("train-off", "--preset", "quickstart-hopper", "--dataset", hopper_file, *TINY, "--algo", "mopo")
    assert r.exit_code == 0 and "already finished" in r.output and "MOPO (no published" in r.output
    # another seed, another directory; other overrides, another hash
    r = invoke("train-off", "--preset", "quickstart-hopper", "--dataset", hopper_file, *TINY, "--seed", 1,
               "--set", "train.epochs=1")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "runs" / "quickstart-hopper").iterdir())
    assert len(names) == 4 and any(n.startswith("admpo-s1-") for n in names)


def test_a_run_is_not_resumed_or_reused_with_other_settings(tmp_path, hopper_file):
    run = tmp_path / "r"
    r = invoke("train-off", "--preset", "quickstart-hopper", "--dataset", hopper_file, "--run", run, *TINY)
    assert r.exit_code == 0, r.output
    before = (run / "summary.json").read_text()
    r = invoke("train-off", "--preset", "quickstart-hopper", "--dataset", hopper_file, "--run", run, *TINY,
               "--model", "ensemble")
    assert r.exit_code == 2 and "made with other settings (model.kind 'ensemble' here, 'adm' in the run" in r.output
    assert (run / "summary.json").read_text() == before and "kind: adm" in (run / "config.yaml").read_text()
    r = invoke("train-off", "--preset", "quickstart-hopper", "--dataset", hopper_file, "--run", run, *TINY,
               "--model", "ensemble", "--force")
    assert r.exit_code == 0, r.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == "ensemble" and "kind: ensemble" in (run / "config.yaml").read_text()


@pytest.mark.parametrize("args,needle", [
    (["--preset", "hopper-online"], "`admpo train-on --preset hopper-online`"),
    (["--preset", "quickstart-hopper", "--set", "train.algo=sac"], "`admpo train-on --algo sac`"),
    (["--preset", "quickstart-hopper", "--algo", "mbpo"], "`admpo train-on --algo mbpo`"),
    (["--preset", "quickstart-hopper", "--algo", "mopo", "--model", "adm"], "MOPO (published) uses the ensemble"),
])
def test_train_off_refuses_online_work_in_one_line(tmp_path, args, needle):
    r = invoke("train-off", *args)
    assert r.exit_code == 2 and needle in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def test_commands_that_read_a_run_create_nothing(tmp_path):
    for cmd in ("eval-compounding", "eval-uncertainty"):
        r = invoke(cmd, "--run", tmp_path / "typo")
        assert r.exit_code == 2 and "typo does not exist" in r.output, r.output
        r = invoke(cmd, "--preset", "quickstart-hopper")
        assert r.exit_code == 2 and "does not exist" in r.output
    (tmp_path / "folder").mkdir()
    r = invoke("eval-compounding", "--run", tmp_path / "folder")
    assert r.exit_code == 2 and "not an admpo run directory" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_a_command_that_fails_before_it_starts_leaves_no_run(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HOME", str(tmp_path))
    for cmd in ("train-off", "fit-model", "train-bc"):
        r = invoke(cmd, "--preset", "hopper-medium")
        assert r.exit_code == 2 and "hopper_medium-v2.hdf5 not found" in r.output
    assert not (tmp_path / "runs").exists()

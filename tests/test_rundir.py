from __future__ import annotations

import csv
import json

import pytest

from admpo_cli.config import Config, resolve
from admpo_cli.errors import UserError
from admpo_cli.files import append_csv, atomic_write_json, truncate_csv_after
from admpo_cli.rundir import RunDir


def test_create_writes_resolved_config_and_reopens(tmp_path):
    cfg = resolve("hopper-medium", None, ["model.m=3"])
    rd = RunDir.create_or_open(tmp_path / "r", cfg)
    assert rd.config() == cfg
    assert RunDir.open(tmp_path / "r").config().model.m == 3


def test_open_missing_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        RunDir.open(tmp_path / "nope")


def test_run_of_another_task_is_refused(tmp_path):
    RunDir.create_or_open(tmp_path / "r", resolve("hopper-medium"))
    with pytest.raises(UserError, match="belongs to task 'hopper-medium-v2'"):
        RunDir.create_or_open(tmp_path / "r", resolve("walker2d-medium"))


def test_missing_artifact_names_the_command(tmp_path):
    rd = RunDir.create_or_open(tmp_path / "r", Config())
    with pytest.raises(UserError, match="admpo fit-model"):
        rd.require("model", "adm.pt", hint="admpo fit-model")


def test_append_csv_never_truncates(tmp_path):
    p = tmp_path / "m.csv"
    append_csv(p, {"step": 1, "x": 0.5})
    append_csv(p, {"step": 2, "x": 0.25})
    rows = list(csv.DictReader(p.open()))
    assert [r["step"] for r in rows] == ["1", "2"]
    with pytest.raises(ValueError):
        append_csv(p, {"step": 3, "new": 1})
    truncate_csv_after(p, "step", 1)
    assert [r["step"] for r in csv.DictReader(p.open())] == ["1"]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"a": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_stage_records_status(tmp_path):
    cfg = Config()
    rd = RunDir.create_or_open(tmp_path / "r", cfg)
    with rd.stage("x", cfg, "cpu"):
        pass
    meta = json.loads(rd.file("meta.json").read_text())
    assert meta["stages"]["x"]["status"] == "done" and meta["seed"] == 0
    assert {"torch", "numpy", "gymnasium", "mujoco", "python", "admpo"} <= set(meta["versions"])
    with pytest.raises(RuntimeError), rd.stage("y", cfg, "cpu"):
        raise RuntimeError("boom")
    assert json.loads(rd.file("meta.json").read_text())["stages"]["y"]["status"] == "failed"
    assert rd.stage_status("x") == "done"  # one stage's failure leaves the others' status alone


def test_a_fresh_run_that_fails_on_a_user_error_leaves_nothing(tmp_path):
    from admpo_cli.errors import UserError

    cfg = Config()
    rd = RunDir.create_or_open(tmp_path / "new", cfg)
    with pytest.raises(UserError), rd.stage("train-admpo", cfg, "cpu"):
        raise UserError("data/missing.hdf5: no such file")
    assert not (tmp_path / "new").exists()
    old = RunDir.create_or_open(tmp_path / "old", cfg)  # an existing run keeps its files
    again = RunDir.create_or_open(tmp_path / "old", cfg)
    assert old.fresh and not again.fresh
    with pytest.raises(UserError), again.stage("train-admpo", cfg, "cpu"):
        raise UserError("boom")
    assert again.stage_status("train-admpo") == "failed"


def test_a_run_refuses_other_settings_unless_forced(tmp_path):
    from admpo_cli.config import resolve
    from admpo_cli.errors import UserError

    cfg = resolve("quickstart-hopper")
    rd = RunDir.create_or_open(tmp_path / "r", cfg)
    rd.file("summary.json").write_text("{}")
    other = resolve("quickstart-hopper", None, ["rollout.horizon=7"])
    with pytest.raises(UserError, match=r"made with other settings \(rollout.horizon 7 here, 5 in the run\)"):
        RunDir.create_or_open(tmp_path / "r", other)
    RunDir.create_or_open(tmp_path / "r", resolve("quickstart-hopper", None, ["run.device=cpu"]))  # where, not what
    assert rd.file("summary.json").exists()
    RunDir.create_or_open(tmp_path / "r", other, force=True)
    assert not rd.file("summary.json").exists() and rd.config().rollout.horizon == 7

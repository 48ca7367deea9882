"""The model study end to end at its CI budget, from the CLI: datasets of two qualities, two model kinds, two
seeds; the rows, the summary with bootstrap intervals over seeds, the recommendation table and the page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from admpo_cli.cli import app
from admpo_cli.report.model_study import _auc, binned_pearson, bootstrap_ci


def test_auc_and_bootstrap_by_hand():
    assert _auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert _auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert _auc(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 0.5
    mean, lo, hi = bootstrap_ci(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0 and 1.0 <= lo < 2.0 < hi <= 3.0
    assert bootstrap_ci(np.array([5.0]))[1:] == (5.0, 5.0)
    # binned means: a noisy but monotone relation has a weak pairwise and a strong binned correlation
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, 4000)
    e = u + rng.normal(0, 1.0, 4000)
    assert np.corrcoef(u, e)[0, 1] < 0.4 and binned_pearson(u, e) > 0.9


@pytest.mark.slow
def test_the_study_runs_end_to_end_at_the_ci_budget(tmp_path):
    out = tmp_path / "study"
    r = CliRunner().invoke(app, ["study-models", "--envs", "hopper", "--qualities", "random,medium", "--models",
                                 "adm,ensemble", "--seeds", "0-1", "--budget", "ci", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = pd.read_csv(out / "rows.csv")
    assert len(rows) == 8 and set(rows["model"]) == {"adm", "ensemble"} and set(rows["quality"]) == {"random", "medium"}
    for col in ("compounding_h1", "compounding_h5", "spearman_pooled", "pearson_log_pooled", "pearson_random",
                "auc_random_vs_behaviour", "pearson_binned_pooled", "fit_s", "rollout_tps", "admpo_off_score"):
        assert rows[col].notna().all(), col
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4 and (summary["compounding_h1_lo"] <= summary["compounding_h1"]).all()
    recs = pd.read_csv(out / "recommendations.csv")
    assert list(recs["data"]) == ["hopper random", "hopper medium"] and recs["use"].isin(["adm", "ensemble"]).all()
    page = (out / "index.html").read_text()
    assert "Recommendations" in page and "The datasets, collected locally" in page and "data:image/png" in page
    assert (out / "study.png").stat().st_size > 1000
    assert (out / "data" / "hopper-medium.hdf5").exists() and (out / "runs" / "hopper-medium" / "adm-s1").is_dir()
    # one SAC run made medium and medium-replay: the replay is everything it saw (600 steps, target not reached)
    import json

    from admpo_cli.data import d4rl

    med, rep = (json.loads((out / "data" / f"hopper-{q}.json").read_text()) for q in ("medium", "medium-replay"))
    assert med["sac_curve"] == rep["sac_curve"] and rep["transitions"] == 600
    assert len(d4rl.load_d4rl(out / "data" / "hopper-medium-replay.hdf5")) == 600
    assert rows["data_transitions"].tolist() == [1200] * 8
    # a second call reuses every finished run's row: the measured seconds come back unchanged
    r = CliRunner().invoke(app, ["study-models", "--envs", "hopper", "--qualities", "random,medium", "--models",
                                 "adm,ensemble", "--seeds", "0-1", "--budget", "ci", "--out", str(out)])
    assert r.exit_code == 0, r.output
    again = pd.read_csv(out / "rows.csv")
    pd.testing.assert_frame_equal(again, rows)


@pytest.mark.slow
def test_workers_give_the_rows_of_one_process(tmp_path):
    import torch

    args = ["study-models", "--envs", "hopper", "--qualities", "random", "--models", "adm", "--seeds", "0-1",
            "--budget", "ci"]
    r = CliRunner().invoke(app, [*args, "--workers", "2", "--out", str(tmp_path / "par")])
    assert r.exit_code == 0, r.output
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))  # each worker's share, so that the arithmetic is the same
    try:
        r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "seq")])
    finally:
        torch.set_num_threads(threads)
    assert r.exit_code == 0, r.output
    par, seq = (pd.read_csv(tmp_path / d / "rows.csv") for d in ("par", "seq"))
    clock = ["fit_s", "fit_steps_per_s", "rollout_tps"]
    assert len(par) == 2 and par["compounding_h5"].notna().all()
    pd.testing.assert_frame_equal(par.drop(columns=clock), seq.drop(columns=clock))
    # a bad value fails inside a worker and comes back as the one-line error, exit 2
    r = CliRunner().invoke(app, [*args, "--workers", "2", "--out", str(tmp_path / "bad"), "--set", "model.m=zero"])
    assert r.exit_code == 2 and "model.m" in r.output and "Traceback" not in r.output, r.output
    r = CliRunner().invoke(app, [*args, "--workers", "0", "--out", str(tmp_path / "none")])
    assert r.exit_code == 2 and "--workers" in r.output

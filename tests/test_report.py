from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from admpo_cli.cli import app
from admpo_cli.config import resolve
from admpo_cli.files import append_csv, atomic_write_json
from admpo_cli.report.build import build_report
from admpo_cli.rundir import RunDir


def _fake_run(root, name, preset, algo, seed, scores, status="done", model=None, final_return=None):
    sets = [f"train.algo={algo}", f"run.seed={seed}"] + ([f"model.kind={model}"] if model else [])
    cfg = resolve(preset, None, sets)
    rd = RunDir.create_or_open(root / name, cfg)
    for i, s in enumerate(scores):
        append_csv(rd.file("metrics.csv"), {"step": 1000 * (i + 1), "epoch": i + 1, "score_mean": s,
                                            "return_mean": 10 * s})
    meta = {"seed": seed, "stages": {f"train-{algo}": {"status": status}}}
    if status == "done":  # an evaluation that failed after training does not drop the run
        meta["stages"]["eval-uncertainty"] = {"status": "failed"}
    atomic_write_json(rd.file("meta.json"), meta)
    if status == "done":
        atomic_write_json(rd.file("summary.json"), {
            "algo": algo, "model": model or {"admpo": "adm", "mopo": "ensemble"}.get(algo), "published_setting": True,
            "final_score": sum(scores[-2:]) / 2, "final_return": final_return or 10 * sum(scores[-2:]) / 2,
            "uncertainty": {"admpo": "authors", "mopo": "max_aleatoric"}.get(algo)})
    return rd


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    _fake_run(root, "hm-admpo-0", "hopper-medium", "admpo", 0, [10, 50, 60])   # final 55
    _fake_run(root, "hm-admpo-1", "hopper-medium", "admpo", 1, [20, 70, 80])   # final 75
    _fake_run(root, "hm-mopo-0", "hopper-medium", "mopo", 0, [5, 30, 40])      # final 35
    _fake_run(root, "hm-mopo-1", "hopper-medium", "mopo", 1, [5, 20, 30])      # final 25
    _fake_run(root, "wm-admpo-0", "walker2d-medium", "admpo", 0, [1, 2, 3])    # final 2.5
    _fake_run(root, "wm-admpo-1", "walker2d-medium", "admpo", 1, [1, 2, 900], status="failed")
    _fake_run(root, "hm-admpo-2", "hopper-medium", "admpo", 2, [1, 1, 1], status="running")
    _fake_run(root, "hm-ablation-0", "hopper-medium", "admpo", 0, [3, 4, 6], model="ensemble")  # final 5
    return root


def test_report_tables_match_hand_computation(runs, tmp_path):
    out = tmp_path / "rep"
    res = build_report([runs], out, paper=True)
    assert res["runs"] == 8 and res["complete"] == 6 and res["incomplete"] == 2
    df = pd.read_csv(out / "summary.csv", index_col="task")
    admpo, mopo, ablation = "ADMPO-OFF", "MOPO (published)", "ADMPO-OFF with ensemble model (ablation)"
    assert df.loc["hopper-medium-v2", admpo] == pytest.approx(65.0)
    assert df.loc["hopper-medium-v2", mopo] == pytest.approx(30.0)
    assert df.loc["hopper-medium-v2", ablation] == pytest.approx(5.0)  # three labels, never pooled
    assert df.loc["walker2d-medium-v2", admpo] == pytest.approx(2.5)
    assert df.loc["average", admpo] == pytest.approx((65.0 + 2.5) / 2)
    assert pd.isna(df.loc["average", mopo])  # mopo has no walker2d run: no partial average
    assert df.loc["hopper-medium-v2", "paper: ADMPO-OFF"] == pytest.approx(107.4)
    md = (out / "summary.md").read_text()
    assert "65.0 ± 10.0 (n=2)" in md and "30.0 ± 5.0 (n=2)" in md and "2.5 (n=1)" in md  # no "± 0.0" for one run
    assert "failed" in md and "running" in md  # listed apart, not averaged
    r = pd.read_csv(out / "returns.csv", index_col="task")
    assert r.loc["hopper-medium-v2", admpo] == pytest.approx(650.0)
    page = (out / "index.html").read_text()
    # one learning-curve figure per task and the performance profiles, each with a caption under it
    assert page.count("data:image/png;base64,") == 3 and page.count("<figcaption>") == 3
    assert "Higher is better" in page and "<th>task</th>" in page and "hm-admpo-0" in page
    assert (out / "curves-hopper-medium-v2.png").exists()


def test_report_cli_and_errors(runs, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["report", str(runs), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "65.0 ± 10.0 (n=2)" in r.output and "2 run(s) not finished" in r.output
    r = runner.invoke(app, ["report", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no such run directory" in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "no run directories" in r.output


def test_variant_names_tell_baselines_and_ablations_apart(tmp_path):
    from admpo_cli.report.collect_runs import variant_name

    assert variant_name({"algo": "admpo", "model": "adm", "uncertainty": "authors"}, "admpo", "adm") == "ADMPO-OFF"
    assert variant_name({"algo": "admpo", "model": "adm", "uncertainty": "paper"}, "admpo",
                        "adm") == "ADMPO-OFF with paper uncertainty (ablation)"
    assert variant_name({"algo": "admpo", "model": "ensemble", "uncertainty": "max_aleatoric"}, "admpo",
                        "adm") == "ADMPO-OFF with ensemble model (ablation)"
    assert variant_name({"algo": "mopo", "model": "ensemble", "uncertainty": "max_aleatoric",
                         "published_setting": True}, "mopo", "ensemble") == "MOPO (published)"
    assert "no published setting" in variant_name({"algo": "mopo", "model": "ensemble", "published_setting": False},
                                           "mopo", "ensemble")
    assert variant_name(None, "bc", "adm") == "BC"


def test_report_refuses_a_path_without_runs_and_writes_nothing(tmp_path, runs):
    runner = CliRunner()
    (tmp_path / "typo").mkdir()
    r = runner.invoke(app, ["report", str(runs), str(tmp_path / "typo"), "--out", str(tmp_path / "R")])
    assert r.exit_code == 2 and "typo: not a run directory" in r.output
    assert not (tmp_path / "R").exists()


def test_report_reads_as_a_document_in_a_real_headless_browser(runs, tmp_path, chromium):
    """The page renders in Chromium (headless): a screenshot of it is a real picture, not a blank page."""
    import subprocess

    import matplotlib.image as mpimg

    browser = chromium
    out = tmp_path / "rep"
    build_report([runs], out, paper=True)
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,1800", f"--screenshot={shot}", (out / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    img = mpimg.imread(shot)
    assert img.shape[:2] == (1800, 1200)
    assert img[..., :3].std() > 0.05  # text, tables and figures, not an empty page
    dark = (img[..., :3].mean(-1) < 0.5).mean()
    assert 0.005 < dark < 0.5

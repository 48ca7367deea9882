from __future__ import annotations

import numpy as np
import pytest

minari = pytest.importorskip("minari")


def _make(tmp_path, monkeypatch):
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    rng = np.random.default_rng(0)
    bufs = []
    for e in range(3):
        n = 10 + e
        obs = rng.normal(size=(n + 1, 11))
        bufs.append(EpisodeBuffer(observations=list(obs), actions=list(rng.uniform(-1, 1, (n, 3)).astype(np.float32)),
                                  rewards=list(rng.normal(size=n)), terminations=[False] * (n - 1) + [e == 0],
                                  truncations=[False] * (n - 1) + [e != 0]))
    with pytest.warns(UserWarning):
        minari.create_dataset_from_buffers("test/hopper/tiny-v0", bufs, env=gym.make("Hopper-v4").spec,
                                           ref_min_score=-20.0, ref_max_score=3000.0)
    return bufs


def test_minari_dataset_on_disk_loads_with_its_reference(tmp_path, monkeypatch):
    from admpo_cli.data.minari_io import load_minari

    bufs = _make(tmp_path, monkeypatch)
    data, ref = load_minari("test/hopper/tiny-v0")
    assert len(data) == 33 and data.obs_dim == 11
    np.testing.assert_allclose(data.next_observations[0], bufs[0].observations[1], rtol=1e-6)
    assert data.terminals[9] and data.timeouts[20] and data.ends.sum() == 3
    assert ref.random == -20.0 and ref.expert == 3000.0 and "Minari" in ref.source


def test_missing_minari_dataset_is_a_clear_error(tmp_path, monkeypatch):
    from admpo_cli.data.minari_io import load_minari
    from admpo_cli.errors import UserError

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(UserError, match="not found under"):
        load_minari("mujoco/hopper/medium-v0")


def test_a_run_on_minari_data_scores_with_minaris_reference_everywhere(tmp_path, monkeypatch):
    """One reference for a run: the one its dataset recorded (Minari's metadata), in the summary, the metrics
    and eval-policy; `data info` reads a Minari id with the same reference."""
    import json

    from typer.testing import CliRunner

    from admpo_cli.cli import app

    _make(tmp_path, monkeypatch)
    run = tmp_path / "bc"
    sets = ["data.benchmark=minari", "data.path=test/hopper/tiny-v0", "model.m=1", "train.bc_steps=20",
            "agent.hidden=[16, 16]", "eval.episodes=1", "eval.max_episode_steps=20"]
    r = CliRunner().invoke(app, ["train-bc", "--preset", "quickstart-hopper", "--run", str(run),
                                 *[x for s in sets for x in ("--set", s)]])
    assert r.exit_code == 0, r.output
    summary = json.loads((run / "summary.json").read_text())
    assert "Minari" in summary["reference"]["source"]
    want = 100 * (summary["final_return"] + 20.0) / 3020.0  # Minari's -20 / 3000, not D4RL's
    assert summary["final_score"] == pytest.approx(want, rel=1e-6)
    r = CliRunner().invoke(app, ["eval-policy", str(run), "--episodes", "1"])
    assert r.exit_code == 0, r.output
    ev = json.loads((run / "eval_policy.json").read_text())
    assert ev["score_mean"] == pytest.approx(100 * (ev["return_mean"] + 20.0) / 3020.0, rel=1e-6)
    r = CliRunner().invoke(app, ["data", "info", "test/hopper/tiny-v0"])
    assert r.exit_code == 0, r.output
    assert "33" in r.output and "Minari metadata" in r.output


def test_a_missing_minari_id_names_the_option_that_fetches_it(tmp_path, monkeypatch):
    from admpo_cli.data.minari_io import load_minari
    from admpo_cli.errors import UserError

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(UserError, match=r"--set data\.download=true"):
        load_minari("mujoco/hopper/medium-v0")

"""The README's Python API example, run as it is written there; and a trained run read back through the API."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs(tmp_path, capsys):
    text = README.read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md (Python API)", "exec"), scope)  # noqa: S102
    out, model, env = scope["out"], scope["model"], scope["env"]
    assert model.kind == "adm" and len(out) > 0 and torch.isfinite(out.unc).all()
    assert scope["u_paper"].shape == scope["u_code"].shape == (256,) and bool((scope["u_paper"] >= 0).all())
    assert env.observation_space.contains(scope["obs"]) and np.isfinite(scope["reward"])
    assert len(scope["returns"]) == 3 and (tmp_path / "runs" / "lib" / "model" / "adm.pt").exists()
    # the README's env keeps ADM's dropout on (the authors' formula) and is still reproducible from its seed
    from gymnasium.utils.env_checker import check_env

    assert env.dropout
    torch.manual_seed(99)  # torch's global generator plays no part in its draws
    check_env(scope["run"].env(beta=1.0), skip_render_check=True)


@pytest.mark.slow
def test_a_trained_run_reads_back(tmp_path, hopper_file):
    from typer.testing import CliRunner

    from admpo_cli import api
    from admpo_cli.cli import app

    tiny = ["--set", "model.hidden=16", "--set", "model.layers=1", "--set", "model.head_blocks=1", "--set",
            "model.max_epochs=1", "--set", "model.steps_per_epoch=5", "--set", "rollout.batch_size=64",
            "--set", "agent.hidden=[32, 32]", "--set", "agent.batch_size=32", "--set", "train.epochs=2",
            "--set", "train.steps_per_epoch=10", "--set", "train.rollout_freq=10", "--set", "eval.episodes=1",
            "--set", "eval.max_episode_steps=30", "--set", f"data.path={hopper_file}", "--set", "data.benchmark=d4rl"]
    r = CliRunner().invoke(app, ["train-off", "--preset", "quickstart-hopper", "--run", str(tmp_path / "r"), *tiny])
    assert r.exit_code == 0, r.output
    run = api.load_run(tmp_path / "r")
    assert run.config.train.algo == "admpo" and run.summary["gradient_steps"] == 20
    assert list(run.metrics["step"]) == [20]  # the quickstart evaluates every 2nd epoch
    act = run.policy()(torch.as_tensor(run.dataset().observations[:4]))
    assert act.shape == (4, 3) and bool((act.abs() <= 1).all())
    returns = api.evaluate_policy(run.policy(), "hopper", episodes=2, max_steps=30)
    assert np.isfinite(returns).all()
    with pytest.raises(Exception, match="not an admpo run directory"):
        api.load_run(tmp_path)

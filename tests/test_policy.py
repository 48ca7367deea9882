"""What users do with a trained policy and a run: eval-policy (with a headless video), export (TorchScript,
ONNX), logging backends (TensorBoard, W&B offline), --json, shell completion. All through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from admpo_cli.cli import app

runner = CliRunner()
ADMPO = str(Path(sys.executable).with_name("admpo"))


def _tiny(data_dir: Path) -> list[str]:
    sets = [f"data.data_dir={data_dir}", "data.collect_steps=1500", "model.max_epochs=1", "model.steps_per_epoch=5",
            "train.epochs=3", "train.steps_per_epoch=40", "train.rollout_freq=20", "eval.episodes=1", "eval.every=1",
            "rollout.batch_size=100", "eval.max_episode_steps=60"]
    return [x for s in sets for x in ("--set", s)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A quickstart run (tiny budget) trained with the TensorBoard logger and --json."""
    root = tmp_path_factory.mktemp("policy")
    run = root / "run"
    r = subprocess.run([ADMPO, "train-off", "--preset", "quickstart-hopper", "--run", str(run), *_tiny(root / "data"),
                        "--logger", "csv,tensorboard", "--json"], capture_output=True, text=True, cwd=root,
                       env={**os.environ, "ADMPO_QUIET": "0"})
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)  # --json: one object on stdout, nothing else (no progress bar)
    assert summary["algo"] == "admpo" and summary["evaluations"] == 3
    return run


def _gl_or_skip():
    from admpo_cli.headless_gl import probe_gl

    if os.environ.get("MUJOCO_GL") or any(probe_gl(b) is None for b in ("egl", "osmesa")):
        return
    if os.environ.get("CI"):
        pytest.fail("CI must render headless (.ci/run installs EGL)")
    pytest.skip("no EGL or OSMesa here")


def test_eval_policy_writes_scores_and_a_playable_headless_video(trained, tmp_path):
    _gl_or_skip()
    video = tmp_path / "hopper.mp4"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([ADMPO, "eval-policy", str(trained), "--episodes", "2", "--video", str(video), "--json"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    saved = json.loads((trained / "eval_policy.json").read_text())
    assert saved["returns"] == res["returns"] and len(res["returns"]) == 2 and res["deterministic"]
    assert res["score_mean"] == pytest.approx(np.mean(
        [100 * (x + 20.272305) / (3234.3 + 20.272305) for x in res["returns"]]))  # D4RL's Hopper references
    import imageio.v2 as imageio

    reader = imageio.get_reader(video)
    frames = reader.count_frames()
    assert frames == sum(res["lengths"]) + 2 == res["frames"]  # a frame after each reset and after every step
    frame = reader.get_data(frames // 2)
    assert frame.shape == (240, 320, 3) and frame.std() > 10  # a rendered scene, not a blank image
    # the same deterministic episodes without a video give the same returns
    r = runner.invoke(app, ["eval-policy", str(trained), "--episodes", "2"])
    assert r.exit_code == 0 and json.loads((trained / "eval_policy.json").read_text())["returns"] == res["returns"]
    r = runner.invoke(app, ["eval-policy", str(trained), "--video", str(tmp_path / "x.avi")])
    assert r.exit_code == 2 and ".mp4" in r.output


def _by_hand(run: Path, obs: np.ndarray) -> np.ndarray:
    """The policy's deterministic action from its saved weights with plain F.linear (Hopper's bound is 1)."""
    sd = torch.load(run / "policy" / "actor.pt", weights_only=True)["state_dict"]
    layers = sorted({k.split(".")[1] for k in sd if k.endswith("weight")}, key=int)
    x = torch.as_tensor(obs)
    for i, name in enumerate(layers):
        x = F.linear(x, sd[f"net.{name}.weight"], sd[f"net.{name}.bias"])
        if i < len(layers) - 1:
            x = torch.relu(x)
    return torch.tanh(x[:, :3]).numpy()


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_passes_its_parity_check_and_matches_the_weights_by_hand(trained, tmp_path, fmt):
    out = tmp_path / ("policy.pt" if fmt == "torchscript" else "policy.onnx")
    r = runner.invoke(app, ["export", str(trained), "--format", fmt, "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["observations"] == 1000 and res["max_abs_diff"] <= 1e-5 and out.exists()
    obs = np.random.default_rng(0).normal(size=(64, 11)).astype(np.float32)
    if fmt == "torchscript":
        got = torch.jit.load(str(out))(torch.as_tensor(obs)).detach().numpy()
    else:
        import onnxruntime as ort

        got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"obs": obs})[0]
    np.testing.assert_allclose(got, _by_hand(trained, obs), atol=1e-5)


def test_export_refuses_a_file_that_fails_the_check_and_writes_nothing(trained, tmp_path, monkeypatch):
    from admpo_cli.stages import policy

    monkeypatch.setattr(policy, "MAX_EXPORT_DIFF", -1.0)  # any difference, even 0, now fails the check
    out = tmp_path / "p.pt"
    r = runner.invoke(app, ["export", str(trained), "--out", str(out)])
    assert r.exit_code == 2 and "nothing written" in r.output and "Traceback" not in r.output, r.output
    assert not out.exists() and not list(tmp_path.glob(".p.pt*"))


def test_tensorboard_event_file_holds_the_runs_scores(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list((trained / "tensorboard").glob("events.out.tfevents.*"))
    assert files
    acc = EventAccumulator(str(trained / "tensorboard"))
    acc.Reload()
    events = acc.Scalars("score_mean")
    metrics = pd.read_csv(trained / "metrics.csv")
    assert [e.step for e in events] == metrics["step"].tolist()
    np.testing.assert_allclose([e.value for e in events], metrics["score_mean"], rtol=1e-6)


def test_wandb_logs_offline_and_a_missing_backend_is_one_line(tmp_path):
    pytest.importorskip("wandb")
    run = tmp_path / "w"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    r = subprocess.run([ADMPO, "train-bc", "--preset", "quickstart-hopper", "--run", str(run), *_tiny(tmp_path / "d"),
                        "--set", "train.bc_steps=40", "--logger", "wandb", "--json"], capture_output=True, text=True,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["algo"] == "bc"
    offline = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert offline and offline[0].stat().st_size > 0
    r = runner.invoke(app, ["train-bc", "--preset", "quickstart-hopper", "--logger", "csv,mlflow"])
    assert r.exit_code == 2 and "--logger" in r.output


def test_shell_completion_installs_and_completes(tmp_path):
    """`admpo --install-completion bash` writes the script the shell sources; the shell's own call (with
    _ADMPO_COMPLETE set) completes a command name."""
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    # from a bash process, as a user types it: Typer finds the shell as the process's parent. `; exit $?` keeps
    # bash alive as that parent (a lone command would replace it: exec), with admpo's exit status
    r = subprocess.run(["bash", "-c", f"'{ADMPO}' --install-completion bash; exit $?"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    script = tmp_path / ".bash_completions" / "admpo.sh"
    assert script.exists() and "_ADMPO_COMPLETE" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()
    r = subprocess.run([ADMPO], capture_output=True, text=True,
                       env={**env, "_ADMPO_COMPLETE": "complete_bash", "COMP_WORDS": "admpo swe", "COMP_CWORD": "1"})
    assert r.stdout.split() == ["sweep"], r.stdout + r.stderr
    assert shutil.which("bash")

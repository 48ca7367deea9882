from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("ADMPO_QUIET", "1")
os.environ["COLUMNS"] = "200"  # rich wraps at the terminal width; messages are checked whole
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    """Commands write runs/ and data/ under the current folder: keep tests out of the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def tiny_transitions():
    """Three short episodes of a made-up 3-dim system (a terminal, a timeout, a cut end)."""
    from admpo_cli.data.dataset import Transitions

    rng = np.random.default_rng(0)
    lengths = [7, 5, 6]
    obs, nxt, act, rew, term, tout = [], [], [], [], [], []
    for i, n in enumerate(lengths):
        s = rng.normal(size=(n + 1, 3)).astype(np.float32)
        obs.append(s[:-1])
        nxt.append(s[1:])
        act.append(rng.uniform(-1, 1, size=(n, 2)).astype(np.float32))
        rew.append(rng.normal(size=n).astype(np.float32))
        t = np.zeros(n, bool)
        u = np.zeros(n, bool)
        if i == 0:
            t[-1] = True
        elif i == 1:
            u[-1] = True
        term.append(t)
        tout.append(u)
    cat = np.concatenate
    return Transitions(cat(obs), cat(act), cat(rew), cat(nxt), cat(term), cat(tout))


@pytest.fixture(scope="session")
def hopper_file(tmp_path_factory):
    """A small random Hopper dataset written by the collector in the D4RL layout."""
    from admpo_cli.data.simulate import collect, write_dataset
    from admpo_cli.envs.specs import get_spec

    path = tmp_path_factory.mktemp("data") / "hopper_random-v2.hdf5"
    data, qpos, qvel = collect(get_spec("hopper", "d4rl"), 3000, None, seed=0)
    write_dataset(path, data, "d4rl", qpos, qvel)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster():
    """A one-node Ray cluster on 127.0.0.1, started for the test and stopped after it (its session files in a
    short temporary folder: Ray's sockets need paths under 108 bytes)."""
    import shutil
    import tempfile

    pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray_bin = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                            "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                            f"--temp-dir={temp}"], capture_output=True, text=True, env=env, timeout=180)
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def chromium() -> str:
    """A headless Chromium for screenshot tests: required in CI (.ci/run installs it), skipped elsewhere."""
    import shutil

    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                   None)
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium (.ci/run installs it)")
        pytest.skip("no headless Chromium here (apt-get install chromium)")
    return browser


@pytest.fixture
def wait_for():
    """wait_for(condition, seconds, proc, what): poll until condition() holds; else kill proc and fail saying what
    did not happen (the kill tests wait for a run to reach the point where they kill it)."""
    import time

    def wait(condition, seconds: float, proc, what: str) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if condition():
                return
            time.sleep(0.2)
        proc.kill()
        pytest.fail(f"{what} within {seconds:g} s")

    return wait

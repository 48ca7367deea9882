"""The Transformer ADM (models/adm_transformer.py): causal, so one pass gives every k; its loss is Eq. (2);
its cached roll-out step equals the reference that re-runs every window; and it runs through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from admpo_cli.cli import app
from admpo_cli.data.dataset import Transitions, WindowSampler
from admpo_cli.models.adm_transformer import ADMTransformer, ReferenceTransformerStepper, TransformerStepper
from admpo_cli.models.reference import adm_eq2_loss, penalised_rollout
from admpo_cli.models.rollout import rollout


def _data(n=300, d=3, episode=50):
    rng = np.random.default_rng(0)
    ends = np.zeros(n, bool)
    ends[episode - 1 :: episode] = True
    return Transitions(rng.normal(size=(n, d)).astype(np.float32), rng.uniform(-1, 1, (n, 2)).astype(np.float32),
                       rng.normal(size=n).astype(np.float32), rng.normal(size=(n, d)).astype(np.float32),
                       np.zeros(n, bool), ends)


def test_position_j_is_the_k_step_window_alone():
    """Causality: the prediction at position k-1 of the m-step window is the k-step window's own."""
    torch.manual_seed(0)
    mdl = ADMTransformer(3, 2, m=5, hidden=16, layers=2, heads=2, head_blocks=1).eval()
    s0, acts = torch.randn(7, 3), torch.rand(7, 5, 2) * 2 - 1
    mean, logvar = mdl(s0, acts)
    for k in range(1, 6):
        mk, lk = mdl(s0, acts[:, :k])
        torch.testing.assert_close(mean[:, k - 1], mk[:, -1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(logvar[:, k - 1], lk[:, -1], atol=1e-5, rtol=1e-5)


def test_loss_is_eq2():
    data = _data()
    torch.manual_seed(1)
    mdl = ADMTransformer(3, 2, m=4, hidden=16, layers=2, heads=4, head_blocks=2).eval()
    loss = mdl.train_loss(WindowSampler(data, 4, seed=1), 64, "all", torch.Generator())
    b = WindowSampler(data, 4, seed=1).sample_all(64)
    assert not bool(b["mask"].all())
    ref = adm_eq2_loss(mdl, b["s0"], b["actions"], b["target"], b["mask"])  # one pass per k
    torch.testing.assert_close(loss, ref + mdl.head.bound_penalty(), rtol=1e-5, atol=1e-6)


def test_cached_step_equals_the_reference_step_and_algorithm_1():
    torch.manual_seed(2)
    m, d, B, H = 4, 3, 30, 7
    mdl = ADMTransformer(d, 2, m=m, hidden=24, layers=2, heads=3, head_blocks=2).eval()
    hist_obs, hist_act, obs = torch.randn(B, m - 1, d), torch.rand(B, m - 1, 2) * 2 - 1, torch.randn(B, d)
    fast, ref = TransformerStepper(mdl), ReferenceTransformerStepper(mdl)
    fast.start(hist_obs, hist_act)
    ref.start(hist_obs, hist_act)
    cur, rows = obs, torch.arange(B)
    for t in range(H):
        act = torch.tanh(cur[:, :2])
        (mf, vf), (mr, vr) = fast.step(cur, act), ref.step(cur, act)
        assert mf.shape == (len(rows), m, d + 1)
        torch.testing.assert_close(mf, mr, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(vf, vr, atol=2e-5, rtol=1e-4)
        keep = torch.arange(len(rows))[t % 3:]  # rows leave the batch
        fast.keep(keep)
        ref.keep(keep)
        cur, rows = mf[keep, t % m, :d], rows[keep]
    # the whole roll-out (random backtracking, both uncertainties) against Algorithm 1 line by line
    policy = lambda o: torch.tanh(o[:, :2] * 0.7)  # noqa: E731
    term = lambda o: o[:, 0] < -1.5  # noqa: E731
    for unc in ("authors", "paper"):
        out = rollout(mdl, policy, hist_obs, hist_act, obs, H, term, unc, beta=1.0, chunk_size=16,
                      generator=torch.Generator().manual_seed(3), sample=False)
        step_k = torch.randint(m, (H,), generator=torch.Generator().manual_seed(3))
        want = penalised_rollout(mdl, policy, hist_obs, hist_act, obs, H, term, 1.0, step_k, unc)
        a, b = torch.argsort(out.rows * H + out.steps), torch.argsort(want["rows"] * H + want["steps"])
        for key in ("obs", "next_obs", "rew", "unc", "done"):
            torch.testing.assert_close(getattr(out, key)[a], want[key][b], atol=5e-5, rtol=1e-4)


@pytest.mark.slow
def test_every_command_takes_the_transformer(tmp_path, hopper_file):
    runner = CliRunner()
    tiny = ["--set", "model.hidden=16", "--set", "model.layers=1", "--set", "model.heads=2", "--set",
            "model.head_blocks=1", "--set", "model.max_epochs=2", "--set", "model.steps_per_epoch=5",
            "--set", "rollout.batch_size=64", "--set", "rollout.horizon=3", "--set", "agent.hidden=[32, 32]",
            "--set", "agent.batch_size=32", "--set", "train.epochs=2", "--set", "train.steps_per_epoch=10",
            "--set", "train.rollout_freq=10", "--set", "eval.episodes=1", "--set", "eval.max_episode_steps=30"]
    data = ["--set", f"data.path={hopper_file}", "--set", "data.benchmark=d4rl"]
    run = str(tmp_path / "t")

    def ok(*args):
        r = runner.invoke(app, [str(a) for a in args])
        assert r.exit_code == 0, r.output
        return r

    ok("train-off", "--preset", "quickstart-hopper", "--run", run, "--model", "adm-transformer", *data, *tiny)
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["model"] == "adm-transformer" and "(ablation)" in summary["label"]
    ok("eval-compounding", "--run", run, "--horizons", "1..4", "--starts", "16")
    assert "adm-transformer (random k)" in (tmp_path / "t" / "compounding.csv").read_text()
    ok("eval-uncertainty", "--run", run, "--starts", "16", "--horizon", "3")
    assert "adm-transformer" in (tmp_path / "t" / "uncertainty.csv").read_text()
    ok("train-on", "--preset", "quickstart-hopper-online", "--run", tmp_path / "on", "--set",
       "model.kind=adm-transformer", *tiny, "--set", "train.total_steps=60", "--set", "train.warmup_steps=40",
       "--set", "eval.every=60", "--set", "train.model_update_interval=30", "--set", "train.utd=1")
    assert json.loads((tmp_path / "on" / "summary.json").read_text())["model"] == "adm-transformer"

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from admpo_cli.cli import app
from admpo_cli.data.dataset import Transitions
from admpo_cli.data.simulate import collect
from admpo_cli.envs.oracle import SimulatorOracle
from admpo_cli.envs.specs import get_spec
from admpo_cli.evaluate.compounding import Starts, compounding_curves, per_horizon_error
from admpo_cli.evaluate.uncertainty import correlations
from admpo_cli.models.base import DynamicsModel, Stepper


class ShiftModel(DynamicsModel):
    """Knows the true dynamics s' = s + a but adds a constant offset c to every prediction."""

    kind = "shift"

    def __init__(self, obs_dim, act_dim, offset):
        super().__init__(obs_dim, act_dim)
        self.offset = offset

    def stepper(self, dropout_at_inference=False):
        model = self

        class S(Stepper):
            K = 1

            def start(self, hist_obs, hist_act):
                pass

            def step(self, obs, act):
                mean = torch.cat([obs + act + model.offset, torch.zeros(obs.shape[0], 1)], -1)
                return mean[:, None], torch.full_like(mean[:, None], 1e-8)

            def keep(self, idx):
                pass

        return S()


class OracleModel(DynamicsModel):
    """The simulator posing as a model: its compounding error must be zero."""

    kind = "oracle"

    def __init__(self, spec):
        super().__init__(spec.obs_dim, spec.act_dim)
        self.oracle = SimulatorOracle(spec)

    def stepper(self, dropout_at_inference=False):
        oracle = self.oracle

        class S(Stepper):
            K = 1

            def start(self, hist_obs, hist_act):
                pass

            def step(self, obs, act):
                nxt, rew, _ = oracle.step(obs.numpy(), act.numpy())
                mean = torch.cat([torch.as_tensor(nxt), torch.as_tensor(rew)[:, None]], -1)
                return mean[:, None], torch.zeros_like(mean[:, None])

            def keep(self, idx):
                pass

        return S()


def _linear_data(n_ep=4, length=30, d=2):
    rng = np.random.default_rng(0)
    obs, act, nxt = [], [], []
    for _ in range(n_ep):
        s = rng.normal(size=d)
        for _ in range(length):
            a = rng.uniform(-1, 1, d)
            obs.append(s)
            act.append(a)
            s = s + a
            nxt.append(s)
    n = n_ep * length
    t = np.zeros(n, bool)
    t[length - 1 :: length] = True
    return Transitions(np.array(obs), np.array(act), np.zeros(n), np.array(nxt), np.zeros(n, bool), t)


def test_compounding_error_of_a_known_offset_grows_as_h_squared():
    data = _linear_data()
    c = torch.tensor([0.1, -0.3])
    starts = Starts(np.array([0, 30, 65]), np.array([30, 30, 25]))
    rows = compounding_curves(ShiftModel(2, 2, c), data, starts, 20, torch.device("cpu"))
    for r in rows:
        h = r["horizon"]
        assert r["mse_mean"] == pytest.approx(h**2 * float((c**2).mean()), rel=1e-4)
        assert r["n"] == 3


def test_perfect_oracle_model_has_zero_compounding_error():
    spec = get_spec("halfcheetah", "d4rl")  # no velocity clipping in its observation
    data, _, _ = collect(spec, 200, None, seed=2)
    starts = Starts(np.array([0, 50, 100]), np.array([100, 100, 100]))
    rows = compounding_curves(OracleModel(spec), data, starts, 20, torch.device("cpu"))
    assert len(rows) == 20
    # zero up to float32 rounding of the observations, which the chaotic contacts amplify past ~30 steps
    assert max(r["mse_mean"] for r in rows) < 1e-6


def test_per_horizon_error_masks_and_flags_divergence():
    pred = np.zeros((3, 2, 1))
    real = np.ones((3, 2, 1))
    pred[2, 1, 0] = 1e9
    valid = np.array([[True, True], [True, False], [True, True]])
    rows = per_horizon_error(pred, real, valid)
    assert rows[0]["mse_mean"] == 1.0 and rows[0]["n"] == 3
    assert rows[1]["n"] == 2 and rows[1]["overflow_frac"] == 0.5


def test_correlations_hand_computed():
    df = pd.DataFrame({"model": "adm", "policy": ["a"] * 4 + ["b"] * 4,
                       "unc_authors": [1, 2, 3, 4, 1, 2, 3, 4], "unc_paper": [4, 3, 2, 1, 1, 1, 2, 2],
                       "true_error": [1.0, 2, 3, 5, 2, 4, 6, 8]})
    res = correlations(df)["adm"]
    assert res["authors"]["pooled"]["spearman"] == pytest.approx(np.corrcoef([1, 2, 3, 4, 1, 2, 3, 4],
                                                                          pd.Series(df.true_error).rank())[0, 1])
    assert res["authors"]["b"]["pearson"] == pytest.approx(1.0)
    assert res["paper"]["a"]["spearman"] == pytest.approx(-1.0)


def test_eval_commands_refuse_a_run_without_a_model(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["train-bc", "--preset", "quickstart-hopper", "--run", str(tmp_path / "r"),
                            "--set", "data.collect_steps=1200", "--steps", "5", "--set", "eval.episodes=1",
                            "--set", "eval.max_episode_steps=5"])
    assert r.exit_code == 0, r.output
    for cmd in ("eval-compounding", "eval-uncertainty"):
        r = runner.invoke(app, [cmd, "--run", str(tmp_path / "r")])
        assert r.exit_code == 2 and "admpo fit-model --run" in r.output


def test_eval_commands_write_their_files(tmp_path, hopper_file):
    runner = CliRunner()
    run = tmp_path / "r"
    tiny = ["--set", "model.hidden=16", "--set", "model.layers=1", "--set", "model.head_blocks=1",
            "--set", "model.max_epochs=2", "--set", "model.steps_per_epoch=5", "--set", "model.ensemble_size=3",
            "--set", "model.elites=2", "--set", "model.ensemble_hidden=16", "--set", "train.bc_steps=50"]
    for kind in ("adm", "ensemble", "bootrnn"):
        r = runner.invoke(app, ["fit-model", "--preset", "quickstart-hopper", "--dataset", str(hopper_file),
                                "--run", str(run), "--model", kind, *tiny])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval-compounding", "--run", str(run), "--horizons", "1..30", "--starts", "32"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(run / "compounding.csv")
    assert set(df["model"]) == {"adm (random k)", "adm (k=3)", "adm (k=1)", "ensemble", "bootrnn"}
    assert (run / "compounding.png").stat().st_size > 1000
    r = runner.invoke(app, ["eval-uncertainty", "--run", str(run), "--starts", "40"])
    assert r.exit_code == 0, r.output
    res = json.loads((run / "uncertainty.json").read_text())
    assert set(res["correlations"]) == {"adm", "ensemble", "bootrnn"}
    assert set(res["correlations"]["adm"]) == {"authors", "paper"}
    u = pd.read_csv(run / "uncertainty.csv")
    assert set(u["policy"]) == {"random", "behaviour"} and (u["true_error"] >= 0).all()
    assert (run / "uncertainty.png").exists() and (run / "policy" / "bc.pt").exists()

from __future__ import annotations

import numpy as np
import pytest
import torch

from admpo_cli.config import ModelConfig
from admpo_cli.data import d4rl
from admpo_cli.data.dataset import WindowSampler, holdout_mask
from admpo_cli.errors import UserError
from admpo_cli.models.adm import ADM
from admpo_cli.models.bootrnn import BootRNN
from admpo_cli.models.ensemble import Ensemble
from admpo_cli.models.factory import build_model, load_model, save_model
from admpo_cli.models.fit import fit
from admpo_cli.models.rollout import cast_model, rollout
from admpo_cli.models.uncertainty import adm_authors, adm_paper, max_aleatoric


def _scratch(mdl, states, acts, t, k, d):
    s0 = states[:, t + 1 - k]
    mu, lv = mdl(s0, acts[:, t + 1 - k : t + 1])
    return torch.cat([mu[:, -1, :d] + s0, mu[:, -1, d:]], -1), lv[:, -1].exp()


def test_all_k_pass_equals_each_k_separately():
    torch.manual_seed(0)
    mdl = ADM(3, 2, m=4, hidden=16, layers=2, head_blocks=2).eval()
    s0, acts = torch.randn(6, 3), torch.randn(6, 4, 2)
    mean_all, lv_all = mdl(s0, acts)
    for k in range(1, 5):
        mean_k, lv_k = mdl(s0, acts[:, :k])
        torch.testing.assert_close(mean_all[:, k - 1], mean_k[:, -1], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(lv_all[:, k - 1], lv_k[:, -1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_cached_window_step_equals_windows_from_scratch(dtype):
    torch.manual_seed(1)
    m, d = 4, 3
    mdl = ADM(d, 2, m=m, hidden=32, layers=3, head_blocks=2).eval()
    states, acts = torch.randn(5, 12, d), torch.randn(5, 11, 2)
    low = cast_model(mdl, dtype)
    st = low.stepper()
    st.start(states[:, : m - 1], acts[:, : m - 1])
    tol = 1e-5 if dtype == "fp32" else 0.1
    for t in range(m - 1, 11):
        if t == 7:  # dropping rows keeps the cache of the rest intact
            keep = torch.tensor([0, 2, 4])
            st.keep(keep)
            states, acts = states[keep], acts[keep]
        mean, var = st.step(states[:, t], acts[:, t])
        assert mean.shape == (states.shape[0], m, d + 1)
        for k in range(1, m + 1):
            ref_mean, ref_var = _scratch(mdl, states, acts, t, k, d)
            torch.testing.assert_close(mean[:, k - 1], ref_mean, atol=tol, rtol=tol)
            torch.testing.assert_close(var[:, k - 1], ref_var, atol=tol, rtol=tol * 10)


def test_uncertainty_against_hand_computation():
    # two rows, K = 2 predictions of a 2-dim state + reward
    mean = torch.tensor([[[1.0, 2.0, 0.5], [3.0, 2.0, 1.5]],
                         [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    var = torch.tensor([[[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]],
                        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]])
    # Eq. (4) literally, over the next state only: || mean_k(var + mu^2) - mean_k(mu)^2 ||_1
    s_var, s_mean = var[..., :2], mean[..., :2]
    lit = ((s_var + s_mean**2).mean(1) - s_mean.mean(1) ** 2).abs().sum(-1)
    torch.testing.assert_close(adm_paper(mean, var, 2), lit)
    # row 0: state dim 0 means 1,3 -> var 1; dim 1 -> 0 (the reward's spread does not count)
    # mixture: dim0 0.2 + 1 ; dim1 0.2 + 0 -> 1.4
    assert adm_paper(mean, var, 2)[0].item() == pytest.approx(1.4)
    assert adm_paper(mean, var, 2)[1].item() == pytest.approx(2.0)
    # authors' code: sqrt(mean over state dims of var over k of the means) = sqrt((1 + 0) / 2)
    assert adm_authors(mean, 2)[0].item() == pytest.approx(np.sqrt(0.5))
    assert adm_authors(mean, 2)[1].item() == 0.0
    # MOPO: max over members of ||std||_2
    assert max_aleatoric(var)[0].item() == pytest.approx(np.sqrt(0.6))


def test_ensemble_batched_members_equal_a_loop():
    torch.manual_seed(0)
    ens = Ensemble(4, 2, members=3, elites=2, hidden=8, layers=2)
    obs, act = torch.randn(5, 4), torch.randn(5, 2)
    mean, logvar = ens(obs, act)
    x = torch.cat([ens.norm.obs(obs), ens.norm.act(act)], -1)
    for e in range(3):
        h = x
        for i, layer in enumerate(ens.layers_):
            h = h @ layer.weight[e] + layer.bias[e, 0]
            if i < len(ens.layers_) - 1:
                h = torch.nn.functional.silu(h)
        torch.testing.assert_close(mean[e], h.chunk(2, -1)[0], atol=1e-5, rtol=1e-5)


def _quick_cfg(**kw):
    base = dict(m=3, hidden=32, layers=2, head_blocks=1, max_epochs=8, patience=8, steps_per_epoch=40,
                batch_size=128, lr=2e-3, ensemble_size=3, elites=2, ensemble_hidden=32, ensemble_layers=2)
    base.update(kw)
    return ModelConfig.of(**base)


@pytest.mark.parametrize("kind", ["adm", "ensemble", "bootrnn"])
def test_fit_lowers_holdout_loss(hopper_file, kind, tmp_path):
    data = d4rl.load_d4rl(hopper_file)
    cfg = _quick_cfg()
    torch.manual_seed(0)
    model = build_model(kind, data.obs_dim, data.act_dim, cfg)
    res = fit(model, data, cfg, torch.device("cpu"), seed=0, csv_path=tmp_path / "fit.csv")
    first = res.history[0]["holdout_mse"]
    assert min(r["holdout_mse"] for r in res.history) < 0.7 * first
    assert (tmp_path / "fit.csv").read_text().count("\n") == res.epochs + 1


def test_adm_beats_mean_delta_baseline_for_every_k(hopper_file):
    data = d4rl.load_d4rl(hopper_file)
    cfg = _quick_cfg(max_epochs=12, patience=12)
    torch.manual_seed(0)
    s = cfg.settings("adm")
    model = ADM(data.obs_dim, data.act_dim, cfg.m, s.hidden, s.layers, s.head_blocks, s.dropout)
    res = fit(model, data, cfg, torch.device("cpu"), seed=0)
    hold = holdout_mask(data, cfg.holdout_ratio, cfg.holdout_max, 0, cfg.holdout)
    train = WindowSampler(data, cfg.m, ~hold)
    held = WindowSampler(data, cfg.m, hold)
    hb = held.gather(held.starts[0], cfg.m)
    tb = train.gather(train.starts[0], cfg.m)
    for k in range(cfg.m):
        w = tb["mask"][:, k]
        baseline = tb["target"][w, k].mean(0)  # the mean k-step delta (and reward) of the training data
        hv = hb["mask"][:, k]
        base_mse = (hb["target"][hv, k] - baseline).pow(2).mean().item()
        assert res.holdout_mse[k] < base_mse, (k + 1, res.holdout_mse[k], base_mse)


def test_one_k_per_minibatch_mode_trains():
    torch.manual_seed(0)
    from admpo_cli.data.dataset import Transitions

    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (400, 2)).astype(np.float32)
    o = np.zeros((401, 3), np.float32)
    for i in range(400):  # a linear system: s' = s + 0.1 [a, 0]
        o[i + 1] = 0 if i % 40 == 39 else o[i] + 0.1 * np.pad(a[i], (0, 1))
    nxt = o[:-1] + 0.1 * np.pad(a, ((0, 0), (0, 1)))
    ends = np.zeros(400, bool)
    ends[39::40] = True
    data = Transitions(o[:-1], a, a.sum(1), nxt, np.zeros(400, bool), ends)
    model = ADM(3, 2, 3, 16, 1, 1)
    cfg = _quick_cfg(k_sampling="one", hidden=16, layers=1)
    res = fit(model, data, cfg, torch.device("cpu"))
    assert np.mean(res.holdout_mse) < 0.5 * res.history[0]["holdout_mse"]


def test_save_load_round_trip_and_refusals(tmp_path):
    cfg = _quick_cfg()
    model = build_model("adm", 11, 3, cfg)
    p = tmp_path / "adm.pt"
    save_model(p, model, cfg, "hopper-medium-v2")
    back, payload = load_model(p, "hopper-medium-v2", 11, 3)
    for (k, v), (_, w) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    with pytest.raises(UserError, match="fitted for task 'hopper-medium-v2'"):
        load_model(p, "walker2d-medium-v2")
    with pytest.raises(UserError, match="obs_dim=11, expected 17"):
        load_model(p, None, 17)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")


def test_rollout_drops_terminated_rows_and_penalises():
    torch.manual_seed(0)
    mdl = ADM(3, 2, m=3, hidden=16, layers=1, head_blocks=1).eval()
    B = 50

    def policy(o):
        return torch.zeros(o.shape[0], 2)

    def term(o):  # rows whose first coordinate is negative end
        return o[:, 0] < 0

    out = rollout(mdl, policy, torch.randn(B, 2, 3), torch.randn(B, 2, 2), torch.randn(B, 3), 6, term,
                  "authors", beta=2.0, k_mode="row", chunk_size=16)
    steps = out.steps.numpy()
    assert (np.bincount(steps)[1:] <= np.bincount(steps)[:-1]).all()  # rows only leave
    # the rows alive at step t+1 are exactly the rows not done at step t
    for t in range(5):
        alive = int(((out.steps == t) & ~out.done).sum())
        assert int((out.steps == t + 1).sum()) == alive
    assert out.done.any() and (out.steps == 0).sum() == B
    torch.testing.assert_close(out.rew, out.raw_rew - 2.0 * out.unc)
    assert (out.unc > 0).all()


def test_bootrnn_and_ensemble_steppers_shapes():
    torch.manual_seed(0)
    boot = BootRNN(3, 2, m=3, hidden=8, layers=1, head_blocks=1).eval()
    st = boot.stepper()
    st.start(torch.randn(4, 2, 3), torch.randn(4, 2, 2))
    mean, var = st.step(torch.randn(4, 3), torch.randn(4, 2))
    assert mean.shape == (4, 1, 4) and (var > 0).all()
    ens = Ensemble(3, 2, members=4, elites=2, hidden=8, layers=1)
    st = ens.stepper()
    mean, var = st.step(torch.randn(4, 3), torch.randn(4, 2))
    assert mean.shape == (4, 4, 4)  # every member: MOPO's penalty is the max over all of them
    assert st.candidates.tolist() == ens.elites.tolist()  # next states are drawn from the elites


def test_warm_start_continues_from_the_run_model(tmp_path, hopper_file):
    from admpo_cli.config import resolve
    from admpo_cli.rundir import RunDir
    from admpo_cli.stages.fit import fit_model_stage

    sets = ["model.hidden=16", "model.layers=1", "model.head_blocks=1", "model.max_epochs=3",
            "model.steps_per_epoch=20", f"data.path={hopper_file}"]
    cfg = resolve("quickstart-hopper", None, sets)
    rd = RunDir.create_or_open(tmp_path / "r", cfg)
    first = fit_model_stage(cfg, rd, torch.device("cpu"))
    warm = resolve("quickstart-hopper", None, [*sets, "model.warm_start=true", "model.max_epochs=1"])
    second = fit_model_stage(warm, rd, torch.device("cpu"))
    fresh = fit_model_stage(resolve("quickstart-hopper", None, [*sets, "model.max_epochs=1"]),
                            RunDir.create_or_open(tmp_path / "f", cfg), torch.device("cpu"))
    # one epoch from the first fit's weights ends below one epoch from scratch
    assert second["first_holdout_mse"] < fresh["first_holdout_mse"]
    assert first["epochs"] == 3 and second["epochs"] == 1


def test_matmul_precision_is_validated():
    from admpo_cli.config import resolve

    assert resolve(None, None, ["model.matmul_precision=bf16"]).model.matmul_precision == "bf16"
    with pytest.raises(UserError, match="model.matmul_precision: expected one of fp32, bf16"):
        resolve(None, None, ["model.matmul_precision=fp16"])


def test_bf16_matmuls_apply_inside_the_block_only(caplog):
    from admpo_cli.device import bf16_matmuls, bf16_matmuls_usable, cpu_has_bf16

    assert not bf16_matmuls_usable("fp32", torch.device("cpu"))
    assert not bf16_matmuls_usable("bf16", torch.device("cuda"))
    assert "applies to CPU fitting" in caplog.text
    if not (hasattr(torch.backends.mkldnn, "matmul") and cpu_has_bf16()):
        pytest.skip("no bfloat16 hardware or torch < 2.9")
    assert bf16_matmuls_usable("bf16", torch.device("cpu"))
    a, b = torch.randn(64, 300, dtype=torch.float64).float(), torch.randn(300, 64).float()
    exact = a.double() @ b.double()
    before = torch.backends.mkldnn.matmul.fp32_precision
    with bf16_matmuls():
        low = a @ b
    assert torch.backends.mkldnn.matmul.fp32_precision == before
    fp32 = a @ b
    err_low, err_fp32 = (low.double() - exact).abs().max().item(), (fp32.double() - exact).abs().max().item()
    assert low.dtype == torch.float32 and err_fp32 < 1e-3 < err_low < 1.0  # bf16 inputs: ~3 digits


@pytest.mark.parametrize("kind", ["adm", "ensemble"])
def test_fit_with_bf16_matmuls_lowers_holdout_loss(hopper_file, kind):
    data = d4rl.load_d4rl(hopper_file)
    cfg = _quick_cfg(matmul_precision="bf16")
    torch.manual_seed(0)
    model = build_model(kind, data.obs_dim, data.act_dim, cfg)
    res = fit(model, data, cfg, torch.device("cpu"), seed=0)
    assert min(r["holdout_mse"] for r in res.history) < 0.7 * res.history[0]["holdout_mse"]


class _LabelledStepper:
    """K candidates whose predicted next state is the candidate's own index k (and reward 0)."""

    def __init__(self, K, obs_dim):
        self.K, self.obs_dim = K, obs_dim

    @property
    def candidates(self):
        return torch.arange(self.K)

    def start(self, hist_obs, hist_act):
        pass

    def step(self, obs, act):
        b = obs.shape[0]
        mean = torch.arange(self.K, dtype=torch.float32)[None, :, None].expand(b, self.K, self.obs_dim + 1).clone()
        mean[..., -1] = 0.0
        return mean, torch.zeros_like(mean)

    def keep(self, idx):
        pass


class _LabelledModel:
    kind, obs_dim, context, draws_per_row = "adm", 2, 4, False

    def stepper(self, dropout_at_inference=False):
        return _LabelledStepper(4, self.obs_dim)

    def planned_stepper(self, plan, dropout_at_inference=False):
        return None  # every candidate at every step, so the test sees which one a roll-out draws


@pytest.mark.parametrize("k_mode", ["batch", "row"])
def test_batch_k_mode_draws_one_k_per_imagined_step_for_the_whole_batch(k_mode):
    """Authors' code: one k per imagined step for all rows, however the batch is chunked."""
    B, H = 600, 6
    gen = torch.Generator().manual_seed(0)
    out = rollout(_LabelledModel(), lambda o: torch.zeros(o.shape[0], 1), torch.zeros(B, 3, 2), torch.zeros(B, 3, 1),
                  torch.zeros(B, 2), H, lambda o: torch.zeros(o.shape[0], dtype=torch.bool), "none",
                  k_mode=k_mode, chunk_size=50, generator=gen, sample=False)
    ks = [out.next_obs[out.steps == t, 0].unique() for t in range(H)]
    if k_mode == "batch":
        assert all(len(k) == 1 for k in ks)  # 12 chunks, one k
        assert len(torch.cat(ks).unique()) > 1  # but a new k at each step
    else:
        assert all(len(k) == 4 for k in ks)


@pytest.mark.parametrize("unc", ["authors", "paper", "none"])
def test_cached_window_rollout_equals_algorithm_1_and_3_line_by_line(unc):
    """The fast roll-out (cached windows, chunks, rows leaving the batch) against models/reference.py's
    penalised_rollout, which predicts every k's window from scratch and writes both formulas out.
    Without an uncertainty the roll-out takes the planned stepper (only the drawn k's windows)."""
    from admpo_cli.models.reference import penalised_rollout

    torch.manual_seed(4)
    m, d, B, H = 3, 4, 40, 6
    mdl = ADM(d, 2, m=m, hidden=24, layers=2, head_blocks=2).eval()
    w = torch.randn(d, 2) * 0.8
    policy = lambda o: torch.tanh(o @ w)  # noqa: E731  (deterministic: both see the same actions)
    term = lambda o: o[:, 0] < -1.2  # noqa: E731
    hist_obs, hist_act, obs = torch.randn(B, m - 1, d), torch.rand(B, m - 1, 2) * 2 - 1, torch.randn(B, d)
    fast = rollout(mdl, policy, hist_obs, hist_act, obs, H, term, unc, beta=1.5, k_mode="batch", chunk_size=16,
                   generator=torch.Generator().manual_seed(9), sample=False)
    step_k = torch.randint(m, (H,), generator=torch.Generator().manual_seed(9))  # the fast path's first draw
    ref = penalised_rollout(mdl, policy, hist_obs, hist_act, obs, H, term, 1.5, step_k, unc)
    assert bool(ref["done"].any()) and len(set(step_k.tolist())) > 1
    order_f = torch.argsort(fast.rows * H + fast.steps)
    order_r = torch.argsort(ref["rows"] * H + ref["steps"])
    assert len(order_f) == len(order_r)
    for key in ("obs", "act", "rew", "raw_rew", "next_obs", "done", "unc"):
        torch.testing.assert_close(getattr(fast, key)[order_f], ref[key][order_r], atol=2e-5, rtol=1e-4)

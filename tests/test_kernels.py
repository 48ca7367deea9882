"""The hand-written training passes equal the autograd/nn reference they replace."""

from __future__ import annotations

import platform
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from admpo_cli import kernels
from admpo_cli.models.gru import _layer_backward, _layer_forward, gru_forward
from admpo_cli.models.head import GaussianHead, _mix32, block_key, dropout_mask
from admpo_cli.process import keep_heap_memory


@pytest.fixture
def fused(monkeypatch):
    """The fused CPU kernels, built (once per machine) and switched on; skipped without a compiler."""
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("ADMPO_CPU_KERNELS", "1")
    kernels.reset()
    ops = kernels.cpu_ops()
    yield ops
    kernels.reset()


def _without_kernels(monkeypatch):
    monkeypatch.setenv("ADMPO_CPU_KERNELS", "0")
    kernels.reset()


@pytest.mark.parametrize("layers,T", [(1, 1), (3, 5), (2, 7)])
@pytest.mark.parametrize("x_grad", [False, True])
def test_hand_gru_equals_nn_gru_values_and_gradients(layers, T, x_grad):
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 9, layers).double()
    x = torch.randn(T, 4, 6, dtype=torch.double, requires_grad=x_grad)
    w = torch.randn(T, 4, 9, dtype=torch.double)
    ref, _ = gru(x)
    (ref * w).sum().backward()
    ref_grads = [p.grad.clone() for p in gru.parameters()]
    ref_x = x.grad.clone() if x_grad else None
    gru.zero_grad()
    x.grad = None
    out = gru_forward(gru, x)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10)
    (out * w).sum().backward()
    for p, g in zip(gru.parameters(), ref_grads, strict=True):
        torch.testing.assert_close(p.grad, g, atol=1e-12, rtol=1e-10)
    if x_grad:
        torch.testing.assert_close(x.grad, ref_x, atol=1e-12, rtol=1e-10)
    with torch.no_grad():  # the inference path gives the same outputs
        torch.testing.assert_close(gru_forward(gru, x), ref, atol=1e-12, rtol=1e-10)


def test_gru_gradcheck():
    torch.manual_seed(1)
    gru = torch.nn.GRU(3, 4, 2).double()
    x = torch.randn(3, 2, 3, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: gru_forward(gru, inp), (x,))


def _reference_head(head: GaussianHead, h: torch.Tensor, masks) -> tuple[torch.Tensor, torch.Tensor]:
    for block, mask in zip(head.blocks, masks, strict=True):
        a = F.silu(block.fc(h))
        h = block.norm(h + (a if mask is None else a * mask))
    mean, logvar = head.out(h).chunk(2, -1)
    lo, hi = head.min_logvar, head.max_logvar
    logvar = hi - F.softplus(hi - logvar)
    return mean, lo + F.softplus(logvar - lo)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_residual_blocks_equal_autograd(dropout):
    torch.manual_seed(2)
    head = GaussianHead(8, 5, 3, dropout).double().train()
    h = torch.randn(4, 6, 8, dtype=torch.double, requires_grad=True)
    w = torch.randn(4, 6, 5, dtype=torch.double)
    torch.manual_seed(3)
    mean, logvar = head(h)
    ((mean + logvar) * w).sum().backward()
    grads = [p.grad.clone() for p in head.parameters()] + [h.grad.clone()]
    head.zero_grad()
    h.grad = None
    torch.manual_seed(3)  # the same masks again
    seed = int(torch.randint(0, 1 << 32, (1,)))
    masks = [dropout_mask(block_key(seed, i), h.shape, dropout, h.device, h.dtype) if dropout else None
             for i in range(3)]
    ref_mean, ref_logvar = _reference_head(head, h, masks)
    torch.testing.assert_close(mean, ref_mean)
    torch.testing.assert_close(logvar, ref_logvar)
    ((ref_mean + ref_logvar) * w).sum().backward()
    for got, ref in zip(grads, [p.grad for p in head.parameters()] + [h.grad], strict=True):
        torch.testing.assert_close(got, ref)


def test_dropout_mask_rate_scale_and_streams():
    m = dropout_mask(block_key(7, 0), (500, 200), 0.1, torch.device("cpu"))
    assert m.shape == (500, 200)
    values = torch.unique(m).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.9)
    assert abs((m == 0).float().mean().item() - 0.1) < 0.005
    assert torch.equal(m, dropout_mask(block_key(7, 0), (500, 200), 0.1, torch.device("cpu")))
    other = dropout_mask(block_key(7, 1), (500, 200), 0.1, torch.device("cpu"))
    assert 0.15 < (other != m).float().mean().item() < 0.21  # independent streams: 2 p (1 - p) = 0.18
    assert (dropout_mask(block_key(8, 0), (500, 200), 0.1, torch.device("cpu")) != m).any()


def test_hash_equals_uint32_reference():
    def lowbias32(x):  # the published constants, in numpy's wrapping uint32 arithmetic
        x = np.array(x, dtype=np.uint32)  # a copy: the updates below are in place
        x ^= x >> np.uint32(16)
        x *= np.uint32(0x7FEB352D)
        x ^= x >> np.uint32(15)
        x *= np.uint32(0x846CA68B)
        return x ^ (x >> np.uint32(16))

    xs = np.array([0, 1, 2, 12345, 2**31, 2**32 - 1], dtype=np.uint32)
    ref = lowbias32(xs).astype(np.int64)
    assert _mix32(torch.from_numpy(xs.astype(np.int64))).tolist() == ref.tolist()
    assert [_mix32(int(x)) for x in xs] == ref.tolist()


def test_cpu_dropout_mask_equals_the_torch_formula_of_other_devices():
    from admpo_cli.models.head import dropout_threshold

    key = block_key(123, 2)
    i = torch.arange(40 * 30, dtype=torch.int64).view(40, 30)
    keep = (_mix32(i ^ key) >> 8) >= dropout_threshold(0.25)
    torch.testing.assert_close(dropout_mask(key, (40, 30), 0.25, torch.device("cpu")), keep.float() / 0.75)


def test_kernels_build_where_a_compiler_exists(fused):
    assert fused is not None  # CI has a compiler: a build failure must not pass silently


@pytest.mark.parametrize("T", [1, 5])
def test_fused_gru_layer_equals_python_path(fused, T):
    torch.manual_seed(0)
    B, H = 37, 24  # rows not a multiple of the vector width or the thread grain
    gi = torch.randn(T, B, 3 * H) * 2
    b_ih, w_hh, b_hh = torch.randn(3 * H), torch.randn(3 * H, H) * 0.3, torch.randn(3 * H)
    gates_ref = gi + b_ih
    out_ref, ghn_ref = _layer_forward(gates_ref, w_hh, b_hh)
    gates = gi.clone()
    out, ghn = fused.gru_layer_forward(gates, b_ih, w_hh, b_hh)
    torch.testing.assert_close(out, out_ref, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(ghn, ghn_ref, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(gates, gates_ref, atol=2e-6, rtol=1e-5)
    d_out = torch.randn(T, B, H)
    ref = _layer_backward(d_out, gates_ref, ghn_ref, out_ref, w_hh)
    d_gi, d_gh, d_bias = fused.gru_layer_backward(d_out, gates_ref, ghn_ref, out_ref, w_hh)
    torch.testing.assert_close(d_gi, ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(d_gh[1:], ref[1][1:], atol=1e-5, rtol=1e-5)  # step 0 has no product
    torch.testing.assert_close(d_bias[0], ref[2], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(d_bias[1], ref[3], atol=1e-4, rtol=1e-5)


def test_fused_gru_equals_nn_gru_float32(fused):
    torch.manual_seed(1)
    gru = torch.nn.GRU(14, 32, 3)
    x = torch.randn(5, 40, 14)
    w = torch.randn(5, 40, 32)
    ref, _ = gru(x)
    (ref * w).sum().backward()
    ref_grads = [p.grad.clone() for p in gru.parameters()]
    gru.zero_grad()
    out = gru_forward(gru, x)
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=1e-5)
    (out * w).sum().backward()
    for p, g in zip(gru.parameters(), ref_grads, strict=True):
        torch.testing.assert_close(p.grad, g, atol=1e-4, rtol=1e-4)


def _head_pass(dropout: float) -> list[torch.Tensor]:
    torch.manual_seed(2)
    head = GaussianHead(40, 6, 3, dropout).train()
    h = torch.randn(5, 37, 40, requires_grad=True)
    torch.manual_seed(3)
    mean, logvar = head(h)
    ((mean + logvar) * torch.randn_like(mean)).sum().backward()
    return [mean.detach(), logvar.detach()] + [p.grad for p in head.parameters()] + [h.grad]


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_fused_head_equals_python_path_with_the_same_dropout(fused, monkeypatch, dropout):
    got = _head_pass(dropout)
    _without_kernels(monkeypatch)
    ref = _head_pass(dropout)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, atol=5e-5, rtol=1e-4)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_heap_memory_applies_on_glibc():
    assert keep_heap_memory() is True


@pytest.fixture(params=["fused", "pytorch"])
def path(request, monkeypatch):
    """Runs a test on the fused CPU kernels and on the pure-PyTorch path."""
    if request.param == "fused":
        if shutil.which("c++") is None:
            pytest.skip("no C++ compiler")
        monkeypatch.setenv("ADMPO_CPU_KERNELS", "1")
    else:
        monkeypatch.setenv("ADMPO_CPU_KERNELS", "0")
    kernels.reset()
    yield request.param
    kernels.reset()


@pytest.mark.parametrize("masked", [False, True])
def test_clamped_nll_equals_autograd_of_the_reference_loss(path, masked):
    from admpo_cli.models.nll import clamped_gaussian_nll, gaussian_nll, soft_clamp

    torch.manual_seed(4)
    D = 5
    out = (torch.randn(3, 37, 2 * D) * 3).requires_grad_()  # raw values past both bounds too
    lo = (torch.full((D,), -4.0) + torch.randn(D)).requires_grad_()
    hi = (torch.full((D,), 0.5) + torch.randn(D) * 0.3).requires_grad_()
    y = torch.randn(3, 37, D)
    mask = torch.rand(3, 37) > 0.4 if masked else None
    mu, raw = out.chunk(2, -1)
    ref = gaussian_nll(mu, soft_clamp(raw, lo, hi), y, mask) * 3.0
    ref_grads = torch.autograd.grad(ref, [out, lo, hi])
    loss = clamped_gaussian_nll(out, lo, hi, y, mask, scale=3.0)
    grads = torch.autograd.grad(loss * 2.0, [out, lo, hi])  # the incoming gradient scales them
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, 2.0 * r, rtol=1e-4, atol=1e-5)


def test_ensemble_trunk_gradients_equal_autograd(path):
    from admpo_cli.models.ensemble import Ensemble

    torch.manual_seed(5)
    ens = Ensemble(4, 2, members=3, elites=2, hidden=24, layers=3)
    obs, act = torch.randn(3, 19, 4), torch.randn(3, 19, 2)
    w = torch.randn(3, 19, 10)
    (ens.raw(obs, act) * w).sum().backward()
    grads = [p.grad.clone() for p in ens.layers_.parameters()]
    x = torch.cat([ens.norm.obs(obs), ens.norm.act(act)], -1)
    for i, layer in enumerate(ens.layers_):  # the same network in plain autograd ops
        x = torch.baddbmm(layer.bias, x, layer.weight)
        if i < len(ens.layers_) - 1:
            x = F.silu(x)
    ref = torch.autograd.grad((x * w).sum(), list(ens.layers_.parameters()))
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def _random_transitions(seed: int, n: int, obs_dim: int, episode: int):
    """n random transitions (2-dim actions) in episodes of `episode` steps."""
    from admpo_cli.data.dataset import Transitions

    rng = np.random.default_rng(seed)
    ends = np.zeros(n, bool)
    ends[episode - 1 :: episode] = True
    return Transitions(rng.normal(size=(n, obs_dim)).astype(np.float32), rng.uniform(-1, 1, (n, 2)).astype(np.float32),
                       rng.normal(size=n).astype(np.float32), rng.normal(size=(n, obs_dim)).astype(np.float32),
                       np.zeros(n, bool), ends)


@pytest.mark.parametrize("kind", ["adm", "bootrnn"])
def test_recurrent_losses_equal_the_masked_nll_of_their_predictions(path, kind):
    from admpo_cli.data.dataset import WindowSampler
    from admpo_cli.models.adm import ADM
    from admpo_cli.models.bootrnn import BootRNN
    from admpo_cli.models.nll import gaussian_nll

    data = _random_transitions(0, 300, 3, 50)  # short episodes: masked k positions at their ends
    torch.manual_seed(6)
    cls = ADM if kind == "adm" else BootRNN
    mdl = cls(3, 2, m=4, hidden=16, layers=2, head_blocks=2).eval()  # no dropout: both passes see the same net
    loss = mdl.train_loss(WindowSampler(data, 4, seed=1), 64, "all", torch.Generator())
    b = WindowSampler(data, 4, seed=1).sample_all(64)  # the same batch again
    assert not bool(b["mask"].all())
    if kind == "adm":
        # Eq. (2): each k averaged over its own windows, then the plain mean over k; one pass per k
        from admpo_cli.models.reference import adm_eq2_loss

        ref = adm_eq2_loss(mdl, b["s0"], b["actions"], b["target"], b["mask"])
        counts = b["mask"].sum(0)
        assert counts[-1] < counts[0]  # large k has fewer windows: the weighting matters here
    else:
        states, target = mdl._targets(b)
        mean, logvar, _ = mdl(states, b["actions"])
        ref = gaussian_nll(mean, logvar, target, b["mask"])
    torch.testing.assert_close(loss, ref + mdl.head.bound_penalty(), rtol=1e-5, atol=1e-6)


def test_one_step_batches_are_the_k1_windows():
    from admpo_cli.data.dataset import WindowSampler

    data = _random_transitions(1, 200, 3, 100)
    one = WindowSampler(data, 3, seed=2).sample_one_step(50)
    win = WindowSampler(data, 3, seed=2).sample_k(1, 50)
    torch.testing.assert_close(one["s0"], win["s0"])
    torch.testing.assert_close(one["action"], win["actions"][:, 0])
    torch.testing.assert_close(one["target"], win["target"][:, 0])


def test_hand_written_ensemble_step_equals_the_autograd_step(fused):
    from admpo_cli.data.dataset import WindowSampler
    from admpo_cli.models.base import DynamicsModel
    from admpo_cli.models.ensemble import Ensemble
    from admpo_cli.optim import LeanAdam

    data = _random_transitions(3, 400, 4, 100)
    runs = []
    for by_hand in (True, False):
        torch.manual_seed(7)
        ens = Ensemble(4, 2, members=3, elites=2, hidden=24, layers=3).train()
        opt = LeanAdam.from_groups(ens.param_groups(), 1e-2)
        sampler = WindowSampler(data, 1, seed=4)
        step = ens.train_step if by_hand else (lambda *a, e=ens: DynamicsModel.train_step(e, *a))
        losses = [float(step(sampler, 32, "all", torch.Generator(), opt)) for _ in range(4)]
        runs.append((losses, [p.detach().clone() for p in ens.parameters()]))
    (hand_losses, hand_params), (auto_losses, auto_params) = runs
    assert hand_losses == pytest.approx(auto_losses, rel=1e-5)
    assert hand_losses[-1] < hand_losses[0]
    for a, b in zip(hand_params, auto_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_kernel_library_is_keyed_by_the_cpu_features(monkeypatch):
    """-march=native code must not be handed to a CPU without its instructions by a shared build cache."""
    here = kernels._name()
    assert kernels._name() == here  # stable on one machine
    monkeypatch.setattr(kernels, "_cpu_features", lambda: "GenuineIntel | avx2 fma sse4_2")
    avx2 = kernels._name()
    monkeypatch.setattr(kernels, "_cpu_features", lambda: "GenuineIntel | avx2 fma sse4_2 avx512f avx512bw amx_tile")
    assert kernels._name() != avx2 and here not in (avx2, kernels._name())


def test_fused_residual_block_at_inference_equals_the_pytorch_path(fused, monkeypatch):
    """Roll-outs with dropout on (the authors' default) take the fused pass; the same mask and values as
    the in-place PyTorch path, and without dropout nothing changes."""
    from admpo_cli.models.head import ResidualBlock

    torch.manual_seed(2)
    blk = ResidualBlock(48)
    x = torch.randn(5, 70, 48)
    with torch.no_grad():
        on, off = blk(x, 777, 0.1), blk(x, 777, 0.0)
        _without_kernels(monkeypatch)
        on_ref, off_ref = blk(x, 777, 0.1), blk(x, 777, 0.0)
    torch.testing.assert_close(on, on_ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(off, off_ref)
    assert not torch.allclose(on, off)  # dropout acted


@pytest.mark.parametrize("planned", [False, True])
def test_fused_gru_cell_roll_out_step_equals_nn_gru(fused, planned):
    """The roll-out steppers on the fused GRU cell: every k's prediction (or the planned k's) equals nn.GRU's
    own forward over that window (start state copied, the window's actions) followed by the head."""
    from admpo_cli.models.adm import ADM

    torch.manual_seed(3)
    m, d, a, B, H = 3, 5, 2, 70, 5
    mdl = ADM(d, a, m=m, hidden=16, layers=2, head_blocks=1).eval()
    states = [torch.randn(B, d) for _ in range(m - 1 + H)]
    actions = [torch.rand(B, a) * 2 - 1 for _ in range(m - 1 + H)]
    plan = [2, 0, 1, 2, 1]
    stepper = mdl.planned_stepper(plan) if planned else mdl.stepper()
    stepper.start(torch.stack(states[: m - 1], 1), torch.stack(actions[: m - 1], 1))
    for t in range(H):
        g = m - 1 + t
        mean, var = stepper.step(states[g], actions[g])
        for k in ([plan[t] + 1] if planned else range(1, m + 1)):
            s0 = states[g - k + 1]
            acts = torch.stack(actions[g - k + 1 : g + 1], 1)
            x = torch.cat([mdl.norm.obs(s0)[:, None].expand(-1, k, -1), mdl.norm.act(acts)], -1)
            with torch.no_grad():
                mu, logvar = mdl.head(nn_gru_last(mdl.gru, x))
            col = 0 if planned else k - 1
            torch.testing.assert_close(mean[:, col, :d], s0 + mu[:, :d], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(mean[:, col, d], mu[:, d], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(var[:, col], logvar.exp(), atol=1e-5, rtol=1e-4)


def nn_gru_last(gru: torch.nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """nn.GRU's own forward (batch_first as ADM builds it), the last position's output."""
    with torch.no_grad():
        return gru(x)[0][:, -1]


def test_kernel_flags_are_the_cpus():
    """-mprefer-vector-width is an x86 flag: another CPU would fail every build with it."""
    assert "-mprefer-vector-width=512" in kernels.flags("x86_64")
    assert "-mprefer-vector-width=512" not in kernels.flags("aarch64")
    assert "-march=native" in kernels.flags("aarch64")


@pytest.fixture
def private_build_dir(tmp_path, monkeypatch):
    """A kernel library name of its own in an empty extension folder: the tests' builds and locks touch nothing
    of the real cache."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setattr(kernels, "_name", lambda: "admpo_cpu_testonly")
    monkeypatch.setenv("ADMPO_CPU_KERNELS", "1")
    kernels.reset()
    yield kernels._library("admpo_cpu_testonly")
    kernels.reset()


def test_a_stale_build_lock_costs_one_bounded_wait(private_build_dir, monkeypatch, caplog):
    from torch.utils import cpp_extension

    lock = private_build_dir.parent / "lock"
    lock.write_text("")  # a build killed mid-way leaves torch's lock behind
    monkeypatch.setenv("ADMPO_KERNEL_LOCK_WAIT", "0.5")
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/c++")
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: pytest.fail("built while another build's lock stood"))
    caplog.set_level("WARNING", logger="admpo")
    assert kernels.cpu_ops() is None
    assert not lock.exists() and "outlived a" in caplog.text and "pure-PyTorch path now" in caplog.text


def test_a_failed_build_is_not_retried_by_every_process(private_build_dir, monkeypatch, caplog):
    from torch.utils import cpp_extension

    calls = []

    def broken(**kw):
        calls.append(kw)
        raise RuntimeError("c++: error: unrecognized command-line option '-mprefer-vector-width=512'")

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/c++")
    monkeypatch.setattr(cpp_extension, "load", broken)
    caplog.set_level("WARNING", logger="admpo")
    assert kernels.cpu_ops() is None and len(calls) == 1
    kernels.reset()  # the next process
    assert kernels.cpu_ops() is None and len(calls) == 1
    assert "failed to build here before (c++: error: unrecognized" in caplog.text


def test_a_built_library_is_loaded_without_building(fused, monkeypatch):
    """Another virtualenv with the same torch finds the library and loads it: no compiler run, no ninja."""
    from torch.utils import cpp_extension

    assert kernels._library(kernels._name()).exists()
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: pytest.fail("rebuilt a library that exists"))
    monkeypatch.setattr(shutil, "which", lambda name: None)  # not even a compiler is needed
    kernels.reset()
    assert kernels.cpu_ops() is not None

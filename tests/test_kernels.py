"""The hand-written training passes equal the autograd/nn reference they replace."""

from __future__ import annotations

import platform

import pytest
import torch
import torch.nn.functional as F

from admpo_cli.models.common import GaussianHead, dropout_masks
from admpo_cli.models.gru import gru_forward
from admpo_cli.runtime import keep_heap_memory


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
    masks = dropout_masks(3, h.shape, dropout, h.device).double().unbind(0) if dropout else [None] * 3
    ref_mean, ref_logvar = _reference_head(head, h, masks)
    torch.testing.assert_close(mean, ref_mean)
    torch.testing.assert_close(logvar, ref_logvar)
    ((ref_mean + ref_logvar) * w).sum().backward()
    for got, ref in zip(grads, [p.grad for p in head.parameters()] + [h.grad], strict=True):
        torch.testing.assert_close(got, ref)


def test_dropout_masks_rate_scale_and_seed():
    torch.manual_seed(0)
    m = dropout_masks(2, (500, 200), 0.1, torch.device("cpu"))
    assert m.shape == (2, 500, 200)
    values = torch.unique(m).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.9)
    assert abs((m == 0).float().mean().item() - 0.1) < 0.005
    assert not torch.equal(m[0], m[1])
    torch.manual_seed(0)
    assert torch.equal(m, dropout_masks(2, (500, 200), 0.1, torch.device("cpu")))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_heap_memory_applies_on_glibc():
    assert keep_heap_memory() is True

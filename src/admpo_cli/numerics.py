"""Arithmetic whose bits do not depend on torch's thread count, where torch's own would.

A resumed run continues bit for bit only if every product and sum rounds the same way at any thread count
(tests/test_offline.py: resumed at 1 thread against a run at 2). MKL's strict CNR mode (process.strict_cnr)
covers its products but one family: a product with a short output, x (M, K) @ W^T with M < N and both
small (an evaluation's few environments through the actor's last layer, the rows left at the end of a
roll-out through a model's output layer), still splits its sums by thread count. Computed as (W x^T)^T it is
the other family, which CNR covers; the fixed-order column sums are in kernels/cpu_kernels.cpp and
models/head.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear(x, weight, bias) with the same bits at every thread count (see the module's note)."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or x.dtype != torch.float32 or x.device.type != "cpu":
        return F.linear(x, weight, bias)  # an exported graph keeps one path for every batch size
    rows = x.reshape(-1, x.shape[-1])
    if rows.shape[0] >= weight.shape[0]:
        return F.linear(x, weight, bias)
    out = weight @ rows.t() if bias is None else torch.addmm(bias.unsqueeze(1), weight, rows.t())
    return out.t().reshape(*x.shape[:-1], weight.shape[0])


class FixedOrderLinear(nn.Linear):
    """nn.Linear (the same parameters, initialisation and state_dict) computed by `linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)

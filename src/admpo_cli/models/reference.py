"""Plain references of the model maths, written as the paper states them and checked against the fast
paths by the tests: one screen each, no fused kernels, no shared passes.

- `adm_eq2_loss`: ADM's objective, Eq. (2), one forward pass per k.
"""

from __future__ import annotations

import torch


def gaussian_nll_terms(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log N(target; mean, exp(logvar)) per entry, up to the constant and the factor 1/2 (authors' loss)."""
    return (mean - target).pow(2) * torch.exp(-logvar) + logvar


def adm_eq2_loss(model, s0: torch.Tensor, actions: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """Eq. (2): J = 1/m sum_{k=1..m} E[-log T_theta(s_{t+k}, r_{t+k} | s_t, a_{t:t+k-1})].

    s0 (B, obs); actions (B, m, act); target (B, m, obs+1), position k-1 the k-step target
    (s_{t+k} - s_t, r_{t+k}); mask (B, m): whether that target exists. For each k the GRU reads s_t copied
    k times with a_t..a_{t+k-1} from scratch, and the expectation is the mean over the windows that have
    a k-step target and over the output dims; then the plain mean over k (the learned log-variance bounds'
    penalty is added by the caller)."""
    per_k = []
    for k in range(1, actions.shape[1] + 1):
        valid = mask[:, k - 1]
        if not bool(valid.any()):
            continue
        mean, logvar = model(s0[valid], actions[valid, :k])
        per_k.append(gaussian_nll_terms(mean[:, -1], logvar[:, -1], target[valid, k - 1]).mean())
    return torch.stack(per_k).mean()

"""Plain references of the model maths, written as the paper states them and checked against the fast
paths by the tests: one screen each, no fused kernels, no shared passes.

- `adm_eq2_loss`: ADM's objective, Eq. (2), one forward pass per k.
- `penalised_rollout`: Algorithm 1 with Algorithm 3's penalty r - beta U, every window from scratch (the
  oracle of the cached-window roll-out in rollout.py), with both uncertainty formulas written out.
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


def uncertainty_authors(mean: torch.Tensor, obs_dim: int) -> torch.Tensor:
    """The authors' code: sqrt(mean over the state dims of the variance over k of the m predicted means).
    mean: (B, m, obs_dim + 1) predictions of the same next state."""
    mu = mean[..., :obs_dim]
    spread = (mu - mu.mean(1, keepdim=True)).pow(2).mean(1)
    return spread.mean(-1).sqrt()


def uncertainty_eq4(mean: torch.Tensor, var: torch.Tensor, obs_dim: int) -> torch.Tensor:
    """Eq. (4), as printed: || (1/m) sum_k (Sigma_k^2 + mu_k^2) - mu_bar^2 ||_1 over the next state."""
    mu, sig2 = mean[..., :obs_dim], var[..., :obs_dim]
    mu_bar = mu.mean(1)
    return ((sig2 + mu**2).mean(1) - mu_bar**2).abs().sum(-1)


@torch.no_grad()
def penalised_rollout(model, policy, hist_obs: torch.Tensor, hist_act: torch.Tensor, obs: torch.Tensor,
                      horizon: int, termination, beta: float, step_k: torch.Tensor,
                      uncertainty: str = "authors",
                      generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Algorithm 1 (roll-out with random backtracking) with Algorithm 3's penalty, line by line, every
    window from scratch. The next state is the drawn k's mean, so that the result is a function of the
    drawn k alone, or, given a `generator`, a sample of its Gaussian (as the training roll-outs); step_k[tau]
    is the index k - 1 drawn for imagined step tau (one k per step for the whole batch, as the authors' code).

    Input: a real window (s_1, a_1, ..., s_{m-1}, a_{m-1}, s_m) per row. Returns the imagined transitions
    with their row and step, and the penalised reward r - beta * U."""
    m = model.m
    d = obs.shape[-1]
    states = [hist_obs[:, i] for i in range(m - 1)] + [obs]  # s_1 .. s_m
    actions = [hist_act[:, i] for i in range(m - 1)]  # a_1 .. a_{m-1}
    rows = torch.arange(obs.shape[0], device=obs.device)
    out: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "raw_rew", "next_obs", "done", "unc", "rows",
                                            "steps")}
    for tau in range(horizon):
        s = states[-1]
        a = policy(s)  # a_{m+tau} ~ pi(. | s_{m+tau})
        actions.append(a)
        means, variances = [], []
        for k in range(1, m + 1):  # T(s_{m+tau+1}, r | s_{m+tau+1-k}, a_{m+tau+1-k : m+tau}) for every k
            s0 = states[-k]
            mu, logvar = model(s0, torch.stack(actions[-k:], 1))
            means.append(torch.cat([s0 + mu[:, -1, :d], mu[:, -1, d:]], -1))
            variances.append(logvar[:, -1].exp())
        mean, var = torch.stack(means, 1), torch.stack(variances, 1)  # (B, m, d + 1), k = 1 .. m
        k = int(step_k[tau])  # k ~ U[1, m]
        draw = mean[:, k]
        if generator is not None:  # (s', r) ~ N(mu_k, Sigma_k)
            draw = draw + var[:, k].sqrt() * torch.randn(draw.shape, device=draw.device, generator=generator)
        nxt, r = draw[:, :d], draw[:, d]
        if uncertainty == "none":
            u = torch.zeros(mean.shape[0], device=mean.device)
        else:
            u = uncertainty_authors(mean, d) if uncertainty == "authors" else uncertainty_eq4(mean, var, d)
        done = termination(nxt)
        for key, v in (("obs", s), ("act", a), ("rew", r - beta * u), ("raw_rew", r), ("next_obs", nxt),
                       ("done", done), ("unc", u), ("rows", rows), ("steps", torch.full_like(rows, tau))):
            out[key].append(v)
        keep = ~done  # terminated imagined trajectories stop
        states = [x[keep] for x in states] + [nxt[keep]]
        actions = [x[keep] for x in actions]
        rows = rows[keep]
        if not bool(keep.any()):
            break
    return {k: torch.cat(v) for k, v in out.items()}

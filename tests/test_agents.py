from __future__ import annotations

import math

import pytest
import torch

from admpo_cli.agents.adam import LeanAdam
from admpo_cli.agents.nets import FusedCritics, TanhGaussianActor
from admpo_cli.agents.sac import SAC
from admpo_cli.config import AgentConfig


@pytest.mark.parametrize("fused", [True, False])
def test_lean_adam_matches_torch_adam(fused):
    torch.manual_seed(0)
    a = [torch.randn(5, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    b = [p.detach().clone().requires_grad_() for p in a]
    ours = LeanAdam(a, lr=1e-2)
    ours.fused = fused
    ref = torch.optim.Adam(b, lr=1e-2)
    for i in range(20):
        for params, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            loss = (params[0].sum(1) * (i + 1)).pow(2).sum() + params[1].sin().sum()
            loss.backward()
            opt.step()
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_cosine_schedule_matches_torch():
    p = [torch.zeros(1, requires_grad=True)]
    ours = LeanAdam(p, lr=1.0, total_steps=10, schedule="cosine")
    q = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([q], lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 10)
    for _ in range(10):
        p[0].grad = torch.ones(1)
        ours.step()
        opt.step()
        sched.step()
        assert ours.lr == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12)


def test_fused_critics_equal_two_separate_networks():
    torch.manual_seed(0)
    c = FusedCritics(4, 2, (8, 8))
    o, a = torch.randn(6, 4), torch.randn(6, 2)
    q = c(o, a)
    x = torch.cat([o, a], -1)
    for i in range(2):
        h = x
        for j, (w, b) in enumerate(zip(c.weights, c.biases, strict=True)):
            h = h @ w[i] + b[i, 0]
            if j < 2:
                h = torch.relu(h)
        torch.testing.assert_close(q[i], h[:, 0])


def test_tanh_gaussian_log_prob_consistent():
    torch.manual_seed(0)
    actor = TanhGaussianActor(3, 2, (16,))
    obs = torch.randn(64, 3)
    a, logp = actor(obs)
    assert (a.abs() < 1).all()
    torch.testing.assert_close(logp, actor.log_prob(obs, a), atol=2e-3, rtol=1e-3)


def test_sac_learns_a_bandit_and_state_dict_round_trips():
    """One-step problem with reward -(a - 0.5)^2: the deterministic action should move to 0.5."""
    torch.manual_seed(0)
    cfg = AgentConfig(hidden=(32, 32), actor_lr=3e-3, critic_lr=3e-3, alpha=0.01, actor_lr_schedule="none")
    sac = SAC(1, 1, cfg, torch.device("cpu"))
    for _ in range(600):
        obs = torch.zeros(128, 1)
        act = torch.rand(128, 1) * 2 - 1
        rew = -(act[:, 0] - 0.5) ** 2
        sac.update(obs, act, rew, obs, torch.ones(128))
    a = sac.act(torch.zeros(1, 1), deterministic=True).item()
    assert abs(a - 0.5) < 0.15, a
    other = SAC(1, 1, cfg, torch.device("cpu"))
    other.load_state_dict(sac.state_dict())
    assert other.updates == 600 and math.isclose(other.act(torch.zeros(1, 1), True).item(), a, rel_tol=1e-6)


def test_lean_adam_weight_decay_matches_torch_groups():
    torch.manual_seed(0)
    a = [torch.randn(4, 4, requires_grad=True), torch.randn(4, requires_grad=True)]
    b = [p.detach().clone().requires_grad_() for p in a]
    ours = LeanAdam.from_groups([{"params": [a[0]], "weight_decay": 0.1}, {"params": [a[1]], "weight_decay": 0.0}],
                                1e-2)
    ref = torch.optim.Adam([{"params": [b[0]], "weight_decay": 0.1}, {"params": [b[1]], "weight_decay": 0.0}],
                           lr=1e-2)
    for _ in range(10):
        for params, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            (params[0].sum() ** 2 + params[1].cos().sum()).backward()
            opt.step()
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)

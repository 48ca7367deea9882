from __future__ import annotations

import math

import pytest
import torch

from admpo_cli.agents.nets import FusedCritics, TanhGaussianActor
from admpo_cli.agents.sac import SAC
from admpo_cli.config import AgentConfig
from admpo_cli.optim import LeanAdam


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
    from admpo_cli.agents.backprop import fused_forward

    c = FusedCritics(4, 2, (8, 8))
    o, a = torch.randn(6, 4), torch.randn(6, 2)
    x = torch.cat([o, a], -1)
    q = fused_forward(x, list(c.weights), list(c.biases))[1].squeeze(-1)
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


@pytest.mark.parametrize("fused", [True, False])
def test_lean_adam_weight_decay_matches_torch_groups(fused):
    torch.manual_seed(0)
    a = [torch.randn(4, 4, requires_grad=True), torch.randn(4, requires_grad=True), torch.randn(3, requires_grad=True)]
    b = [p.detach().clone().requires_grad_() for p in a]
    decays = (0.1, 0.0, 0.3)  # three groups: the fused path makes one kernel call per decay value
    ours = LeanAdam.from_groups([{"params": [p], "weight_decay": d} for p, d in zip(a, decays, strict=True)], 1e-2)
    ours.fused = fused
    ref = torch.optim.Adam([{"params": [p], "weight_decay": d} for p, d in zip(b, decays, strict=True)], lr=1e-2)
    for _ in range(10):
        for params, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            (params[0].sum() ** 2 + params[1].cos().sum() + params[2].pow(3).sum()).backward()
            opt.step()
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def _reference_from(agent: SAC, total_actor_updates: int, action_scale=None):
    """A ReferenceSAC (nn.Linear networks, autograd, torch.optim) holding the fast agent's initial weights."""
    from admpo_cli.agents.sac_reference import ReferenceSAC

    ref = ReferenceSAC(agent.obs_dim, agent.act_dim, agent.cfg, total_actor_updates, action_scale=action_scale)
    ref.start_from(agent.actor.state_dict(), agent.critic.weights, agent.critic.biases, agent.critic_target.weights,
                   agent.critic_target.biases)
    return ref


@pytest.mark.parametrize("auto_alpha,extra", [
    (True, {}), (False, {}),
    # CleanRL's SAC: two actor steps each time, the temperature's loss on alpha itself
    (True, {"actor_steps": 2, "alpha_loss": "alpha"}),
    # log pi in the env's units of a +-0.4 action space (Humanoid's)
    (True, {"entropy_space": "env", "target_entropy": -1.5}),
    # CleanRL's log-std squashed by tanh into [-5, 2] (the reference writes CleanRL's formula out)
    (True, {"actor_steps": 2, "alpha_loss": "alpha", "log_std_bound": "tanh"}),
])
def test_hand_written_sac_update_equals_plain_autograd_sac(auto_alpha, extra):
    """The reference is agents/sac_reference.py: two nn.Linear Q-networks, autograd, torch.optim.Adam and
    CosineAnnealingLR; nothing of the fused critics or the hand-written backward."""
    cfg = AgentConfig(auto_alpha=auto_alpha, hidden=(32, 24), **extra)
    scale = [0.4, 0.4] if "entropy_space" in extra else None
    torch.manual_seed(0)
    ours = SAC(5, 2, cfg, torch.device("cpu"), 50, action_scale=scale)
    ref = _reference_from(ours, 50, scale)
    for step in range(6):
        g = torch.Generator().manual_seed(step)
        batch = (torch.randn(64, 5, generator=g), torch.rand(64, 2, generator=g) * 2 - 1,
                 torch.randn(64, generator=g), torch.randn(64, 5, generator=g),
                 (torch.rand(64, generator=g) < 0.2).float())
        update_actor = step % 3 != 2
        torch.manual_seed(100 + step)
        out = ours.update(*batch, update_actor=update_actor)
        torch.manual_seed(100 + step)
        out_ref = ref.update(*batch, update_actor=update_actor)
        for k, v in out_ref.items():
            torch.testing.assert_close(out[k], v, rtol=1e-4, atol=1e-5)
    for k, v in ref.actor.state_dict().items():
        torch.testing.assert_close(ours.actor.state_dict()[k], v, rtol=1e-4, atol=1e-5)
    for fused, nets in ((ours.critic, (ref.qf1, ref.qf2)), (ours.critic_target, (ref.qf1_target, ref.qf2_target))):
        for i, q in enumerate(nets):
            linears = [m for m in q.net if isinstance(m, torch.nn.Linear)]
            for lin, w, b in zip(linears, fused.weights, fused.biases, strict=True):
                torch.testing.assert_close(w[i].t(), lin.weight, rtol=1e-4, atol=1e-5)
                torch.testing.assert_close(b[i, 0], lin.bias, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.log_alpha.detach(), ref.log_alpha.detach())
    assert ours.actor_opt.lr == pytest.approx(ref.actor_optimizer.param_groups[0]["lr"])
    if auto_alpha:
        assert not torch.equal(ours.log_alpha.detach(), torch.tensor(math.log(cfg.alpha)))


@pytest.mark.parametrize("bound", ["clamp", "tanh"])
def test_actor_sample_gradients_equal_autograd(bound):
    from admpo_cli.agents.backprop import ActorSample

    torch.manual_seed(3)
    actor = TanhGaussianActor(4, 3, (16, 16), bound).double()
    with torch.no_grad():  # push some log-stds past the clamp so its mask is exercised
        actor.net[-1].bias[3:] = torch.tensor([3.0, -7.0, 0.0], dtype=torch.double)
    obs = torch.randn(32, 4, dtype=torch.double)
    w_a, w_l = torch.randn(32, 3, dtype=torch.double), 0.37
    torch.manual_seed(5)
    a, logp = actor(obs)
    ((a * w_a).sum() + w_l * logp.sum()).backward()
    ref = [p.grad.clone() for p in actor.parameters()]
    linears = [m for m in actor.net if isinstance(m, torch.nn.Linear)]
    ws, bs = [m.weight.detach() for m in linears], [m.bias.detach() for m in linears]
    torch.manual_seed(5)
    s = ActorSample(ws, bs, obs, keep=True, bound=bound)
    torch.testing.assert_close(s.a, a.detach())
    torch.testing.assert_close(s.logp, logp.detach())
    gw, gb = s.backward(ws, w_a, torch.tensor(w_l, dtype=torch.double))
    for got, want in zip([g for pair in zip(gw, gb, strict=True) for g in pair], ref, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("raw,bound,want", [
    # CleanRL: log_std = -5 + 0.5 (2 - (-5)) (tanh(raw) + 1); a raw 0 starts at exp(-1.5) = 0.2231
    (0.0, "tanh", math.exp(-1.5)), (-1.0, "tanh", math.exp(-5 + 3.5 * (math.tanh(-1.0) + 1))),
    (0.0, "clamp", 1.0), (0.5, "clamp", math.exp(0.5)), (-9.0, "clamp", math.exp(-5.0)),
])
def test_actor_std_as_cleanrl_and_the_authors_bound_it(raw, bound, want):
    """The actor's std for a raw log-std output, by hand: tanh squashing (CleanRL) or a clamp (ADMPO, MBPO)."""
    actor = TanhGaussianActor(2, 1, (4,), bound).double()
    with torch.no_grad():
        actor.net[-1].weight.zero_()
        actor.net[-1].bias.copy_(torch.tensor([0.0, raw], dtype=torch.double))
    torch.manual_seed(0)
    obs = torch.zeros(20000, 2, dtype=torch.double)
    a, _ = actor(obs)
    u = torch.atanh(a.clamp(-1 + 1e-12, 1 - 1e-12))
    assert float(u.std()) == pytest.approx(want, rel=0.03)


def test_sac_runs_cleanrls_log_std_and_admpo_the_authors():
    from admpo_cli.config import resolve

    assert resolve("hopper-online", flags={"train.algo": "sac"}).agent.log_std_bound == "tanh"
    assert resolve("hopper-online").agent.log_std_bound == "clamp"
    assert resolve("hopper-online", flags={"train.algo": "mbpo"}).agent.log_std_bound == "clamp"

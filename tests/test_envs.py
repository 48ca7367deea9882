from __future__ import annotations

import numpy as np
import pytest
import torch

from admpo_cli.data import d4rl
from admpo_cli.envs.oracle import SimulatorOracle
from admpo_cli.envs.specs import get_spec, make_env
from admpo_cli.envs.termination import termination_fn

CASES = [("hopper", "d4rl"), ("walker2d", "d4rl"), ("halfcheetah", "d4rl"), ("hopper", "neorl"),
         ("walker2d", "neorl"), ("halfcheetah", "neorl"), ("ant", "online"), ("humanoid", "online")]


def _visited_states(spec, steps=600, seed=0, perturb=0.0):
    """(next_obs, terminated) pairs from random roll-outs; with perturb, states are kicked so that
    unhealthy ones are reached often."""
    env = make_env(spec)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    u = env.unwrapped
    out_obs, out_term = [], []
    for _ in range(steps):
        if perturb:
            qpos = u.data.qpos.copy() + rng.normal(scale=perturb, size=u.model.nq)
            qvel = u.data.qvel.copy() + rng.normal(scale=perturb * 5, size=u.model.nv)
            u.set_state(qpos, qvel)
        o, _, term, trunc, _ = env.step(env.action_space.sample())
        out_obs.append(o)
        out_term.append(term)
        if term or trunc:
            env.reset(seed=int(rng.integers(1 << 30)))
    env.close()
    return np.array(out_obs, np.float32), np.array(out_term)


@pytest.mark.parametrize("env,layout", CASES)
def test_termination_matches_the_environment(env, layout):
    spec = get_spec(env, layout)
    fn = termination_fn(spec)
    reached = {}
    for perturb in (0.0, 0.05):
        obs, term = _visited_states(spec, perturb=perturb, seed=1)
        pred = fn(torch.as_tensor(obs)).numpy()
        assert obs.shape[1] == spec.obs_dim
        assert (pred == term).all(), f"{(pred != term).sum()} disagreements"
        reached[perturb] = int(term.sum())
    if env in ("hopper", "walker2d", "ant", "humanoid"):
        assert reached[0.05] > 0, "the perturbed roll-outs should reach terminal states"
    else:
        assert reached[0.0] == reached[0.05] == 0  # halfcheetah never terminates


def _env_terminates_at(spec, qpos_over: dict[int, float]):
    """Put the simulator in its reset state with some qpos entries overwritten, take one zero action,
    and return (next observation, terminated) as the real environment reports them."""
    env = make_env(spec)
    env.reset(seed=0)
    u = env.unwrapped
    qpos, qvel = u.data.qpos.copy(), u.data.qvel.copy()
    for i, v in qpos_over.items():
        qpos[i] = v
    u.set_state(qpos, qvel)
    o, _, term, _, _ = env.step(np.zeros(spec.act_dim))
    env.close()
    return o, term


@pytest.mark.parametrize("env", ["halfcheetah", "hopper", "walker2d"])
@pytest.mark.parametrize("x", [150.0, 5000.0])
def test_neorl_termination_ignores_the_x_position(env, x):
    """NeoRL keeps the x position in obs[0]; an ordinary episode carries it past 100 (HalfCheetah runs at
    several m/s for 1000 steps of 0.05 s). Neither the env nor the termination function may stop there."""
    spec = get_spec(env, "neorl")
    o, term = _env_terminates_at(spec, {0: x})
    assert o[0] > 100 and not term
    assert not bool(termination_fn(spec)(torch.as_tensor(o, dtype=torch.float32)))
    # and the function itself on a batch of start states far down the track
    obs = torch.zeros(4, spec.obs_dim)
    obs[:, 0] = torch.tensor([101.0, 250.0, 1e4, -300.0])
    if env != "halfcheetah":
        obs[:, 1] = 1.25  # healthy height
    assert not termination_fn(spec)(obs).any()


def test_neorl_walker2d_and_halfcheetah_termination_on_hand_made_states():
    walker = termination_fn(get_spec("walker2d", "neorl"))
    s = torch.zeros(6, 18)
    s[:, 0] = 200.0  # x, beyond 100
    s[:, 1] = torch.tensor([1.25, 0.79, 2.01, 1.25, 1.25, 1.25])  # z
    s[:, 2] = torch.tensor([0.0, 0.0, 0.0, -1.0, 0.99, 0.0])  # angle
    s[5, 10] = 150.0  # a diverged velocity
    assert walker(s).tolist() == [False, True, True, True, False, True]
    cheetah_neorl = termination_fn(get_spec("halfcheetah", "neorl"))
    cheetah_d4rl = termination_fn(get_spec("halfcheetah", "d4rl"))
    c = torch.zeros(3, 18)
    c[:, 0] = torch.tensor([99.0, 150.0, 1e5])
    assert not cheetah_neorl(c).any()
    d = torch.zeros(2, 17)
    d[1, 8] = 150.0  # D4RL's layout has no x: a value past 100 is a diverged prediction
    assert cheetah_d4rl(d).tolist() == [False, True]


def test_termination_is_batched_over_leading_dims():
    fn = termination_fn(get_spec("hopper", "d4rl"))
    x = torch.zeros(4, 5, 11)
    x[..., 0] = 1.2
    assert fn(x).shape == (4, 5) and not fn(x).any()
    x[1, 2, 1] = 0.5  # angle too large
    assert fn(x).sum() == 1


@pytest.mark.parametrize("env,layout", [("hopper", "d4rl"), ("walker2d", "d4rl"), ("halfcheetah", "d4rl"),
                                        ("hopper", "neorl"), ("halfcheetah", "neorl")])
def test_oracle_reproduces_real_transitions(env, layout):
    from admpo_cli.data.simulate import collect

    spec = get_spec(env, layout)
    data, _, qvel = collect(spec, 300, None, seed=3)
    oracle = SimulatorOracle(spec)
    # Hopper/Walker2d observations clip qvel to +-10; such rows cannot be restored from the observation.
    ok = np.abs(qvel).max(1) < 10 if env != "halfcheetah" else np.ones(len(data), bool)
    nxt, rew, _ = oracle.step(data.observations[ok], data.actions[ok])
    np.testing.assert_allclose(nxt, data.next_observations[ok], atol=1e-4)
    np.testing.assert_allclose(rew, data.rewards[ok], atol=1e-4)


def test_collected_file_loads_through_d4rl_path(hopper_file):
    data = d4rl.load_d4rl(hopper_file)
    assert len(data) == 3000 and data.obs_dim == 11 and data.act_dim == 3
    import h5py

    with h5py.File(hopper_file) as fh:
        assert fh["infos/qpos"].shape == (3000, 6) and fh["infos/qvel"].shape == (3000, 6)
        assert fh["timeouts"][-1]


def test_humanoid_rewards_as_the_authors_truncated_v3():
    """HumanoidTruncatedObs-v3 on mujoco-py 2.x: forward reward + 5 alive - 0.1 |a|^2, no contact cost, the
    alive reward on the terminating step too; the observation is qpos[2:] and qvel (45 dims)."""
    import numpy as np

    from admpo_cli.envs.specs import get_spec, make_env

    env = make_env(get_spec("humanoid"))
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    u = env.unwrapped
    for _ in range(1000):
        a = rng.uniform(-0.4, 0.4, 17)
        obs, r, term, trunc, info = env.step(a)
        assert obs.shape == (45,)
        np.testing.assert_allclose(obs, np.r_[u.data.qpos[2:], u.data.qvel], rtol=1e-6)
        assert r - info["forward_reward"] + 0.1 * float(np.square(a).sum()) == pytest.approx(5.0, abs=1e-9)
        if term:
            break
    assert term  # random actions make it fall; the falling step paid the alive reward above

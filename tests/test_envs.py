from __future__ import annotations

import numpy as np
import pytest
import torch

from admpo_cli.data import d4rl
from admpo_cli.envs.oracle import SimulatorOracle
from admpo_cli.envs.registry import get_spec, make_env
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
    for perturb in (0.0, 0.05):
        obs, term = _visited_states(spec, perturb=perturb, seed=1)
        pred = fn(torch.as_tensor(obs)).numpy()
        assert obs.shape[1] == spec.obs_dim
        assert (pred == term).all(), f"{(pred != term).sum()} disagreements"
    if env in ("hopper", "walker2d", "ant", "humanoid"):
        assert term.any() or perturb  # the perturbed roll-outs reach terminal states


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
    from admpo_cli.data.collect import collect

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

"""ModelEnv: a fitted model as a gymnasium environment. It passes gymnasium's own checker for every model
kind, its transitions are Algorithm 1's roll-out for the same seed, and SAC can be trained in it and then
evaluated in the real simulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from admpo_cli import registry
from admpo_cli.config import ModelConfig
from admpo_cli.data.d4rl import load_d4rl
from admpo_cli.data.dataset import rollout_starts, start_windows
from admpo_cli.envs.specs import get_spec
from admpo_cli.envs.termination import termination_fn
from admpo_cli.models.factory import build_model
from admpo_cli.models.fit import fit
from admpo_cli.models.model_env import ModelEnv
from admpo_cli.models.rollout import rollout

CPU = torch.device("cpu")
SMALL = ModelConfig.of(m=3, hidden=16, layers=1, heads=2, head_blocks=1, ensemble_size=3, elites=2,
                       ensemble_hidden=16, ensemble_layers=2, max_epochs=2, steps_per_epoch=10)


def _fitted(kind, data):
    torch.manual_seed(0)
    model = build_model(kind, data.obs_dim, data.act_dim, SMALL)
    fit(model, data, SMALL, CPU, seed=0)
    return model.eval()


@pytest.mark.parametrize("kind,dropout", [("adm", False), ("adm", True), ("ensemble", False), ("bootrnn", False),
                                          ("bootrnn", True), ("adm-transformer", False), ("adm-transformer", True)])
def test_check_env_passes_for_every_model_kind(kind, dropout, hopper_file):
    """check_env steps twice from one seed and compares: with dropout on, the masks must come from the env's
    generator as well."""
    data = load_d4rl(hopper_file)
    unc = registry.model(kind).uncertainties[0]
    env = ModelEnv(_fitted(kind, data), data, get_spec("hopper"), beta=1.0, uncertainty=unc, max_episode_steps=20,
                   dropout=dropout)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    ret, steps, done = 0.0, 0, False
    while not done:
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        ret, steps, done = ret + r, steps + 1, term or trunc
        assert info["uncertainty"] >= 0 and np.isclose(r, info["raw_reward"] - info["uncertainty"], atol=1e-5)
    assert 1 <= steps <= 20


def test_transitions_equal_algorithm_1_for_the_same_seed(hopper_file):
    data = load_d4rl(hopper_file)
    model = _fitted("adm", data)
    spec = get_spec("hopper")
    env = ModelEnv(model, data, spec, beta=0.5, uncertainty="authors", max_episode_steps=8)
    i = 17
    obs, info = env.reset(seed=5, options={"start": i})
    actions = torch.rand(1, 8, data.act_dim, generator=torch.Generator().manual_seed(1)) * 2 - 1
    got = []
    for t in range(8):
        nxt, r, term, trunc, _ = env.step(actions[0, t].numpy())
        got.append((nxt, r, term))
        if term or trunc:
            break
    w = start_windows(torch.as_tensor(data.observations), torch.as_tensor(data.actions),
                      torch.tensor([int(rollout_starts(data, model.context)[i])]), model.context)
    np.testing.assert_allclose(obs, w["obs"][0].numpy())
    ro = rollout(model, None, w["hist_obs"], w["hist_act"], w["obs"], 8, termination_fn(spec), "authors", 0.5,
                 k_mode="row", generator=torch.Generator().manual_seed(5), actions=actions)
    assert len(ro) == len(got)
    for t, (nxt, r, term) in enumerate(got):
        np.testing.assert_allclose(nxt, ro.next_obs[t].numpy(), rtol=1e-5, atol=1e-6)
        assert np.isclose(r, float(ro.rew[t]), rtol=1e-5, atol=1e-6) and term == bool(ro.done[t])


def test_sac_trains_in_the_model_and_runs_in_the_simulator(hopper_file):
    from admpo_cli.agents import make_agent
    from admpo_cli.algos.buffers import KEYS, RingBuffer
    from admpo_cli.config import AgentConfig
    from admpo_cli.evaluate.policy import evaluate

    data = load_d4rl(hopper_file)
    spec = get_spec("hopper")
    env = ModelEnv(_fitted("adm", data), data, spec, beta=1.0, uncertainty="authors", max_episode_steps=50)
    torch.manual_seed(0)
    agent = make_agent(data.obs_dim, data.act_dim, AgentConfig(hidden=(32, 32), batch_size=32), CPU)
    buf = RingBuffer(1000, data.obs_dim, data.act_dim, CPU)
    obs, _ = env.reset(seed=0)
    first = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    for t in range(300):
        a = agent.act(torch.as_tensor(obs)[None])[0].numpy()
        nxt, r, term, trunc, _ = env.step(a)
        buf.add({"obs": torch.as_tensor(obs)[None], "act": torch.as_tensor(a)[None], "rew": torch.tensor([r]),
                 "next_obs": torch.as_tensor(nxt)[None], "done": torch.tensor([float(term)])})
        obs = env.reset()[0] if term or trunc else nxt
        if t >= 64:
            idx = buf.sample_idx(32)
            batch = buf.store.split(buf.store.table[idx])
            agent.update(*(batch[k] for k in KEYS))
    assert any(not torch.equal(first[k], v) for k, v in agent.actor.state_dict().items())  # it learned something
    returns = evaluate(lambda o: agent.act(o, deterministic=True), spec, 2, seed=0, max_steps=100)
    assert np.isfinite(returns).all()

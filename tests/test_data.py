from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from admpo_cli.data import d4rl, neorl
from admpo_cli.data.dataset import (
    Transitions,
    WindowSampler,
    holdout_mask,
    rollout_starts,
    start_windows,
    steps_from_start,
    steps_to_end,
    validate,
)
from admpo_cli.data.scores import D4RL_REF, NEORL_REF, normalized_score, task_reference
from admpo_cli.errors import UserError


def test_episode_ends_include_terminal_timeout_and_unmarked_cut(tiny_transitions):
    d = tiny_transitions
    # episode 0 ends in a terminal (row 6), episode 1 in a timeout (row 11), episode 2 at the end.
    assert np.flatnonzero(d.ends).tolist() == [6, 11, 17]
    # An unmarked end (next_obs != following obs) is found too (D4RL issue #162).
    t = d.timeouts.copy()
    t[11] = False
    d2 = Transitions(d.observations, d.actions, d.rewards, d.next_observations, d.terminals, t)
    assert d2.ends[11]


def test_steps_to_end_and_from_start():
    ends = np.array([0, 0, 1, 0, 1, 1], bool)
    assert steps_to_end(ends).tolist() == [3, 2, 1, 2, 1, 1]
    assert steps_from_start(ends).tolist() == [0, 1, 2, 0, 1, 0]


def test_windows_never_cross_episode_boundaries(tiny_transitions):
    d = tiny_transitions
    s = WindowSampler(d, m=4, seed=0)
    for k in range(1, 5):
        for t in s.starts[k - 1].tolist():
            seg = d.ends[t : t + k - 1]
            assert not seg.any(), (k, t)
            assert t + k - 1 < len(d)
    b = s.sample_k(3, 64)
    t0 = b["s0"]
    # The target is s_{t+k} - s_t and r_{t+k}: check against the arrays directly.
    idx = [int(np.flatnonzero((d.observations == row.numpy()).all(1))[0]) for row in t0[:8]]
    for row, t in enumerate(idx):
        want = np.concatenate([d.next_observations[t + 2] - d.observations[t], [d.rewards[t + 2]]])
        np.testing.assert_allclose(b["target"][row, 2].numpy(), want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(b["actions"][row].numpy(), d.actions[t : t + 3])


def test_sample_all_masks_past_episode_end(tiny_transitions):
    s = WindowSampler(tiny_transitions, m=5, seed=1)
    t = torch.tensor([5, 6, 0])  # row 5 has 2 steps left, row 6 is the terminal row, row 0 has 7
    b = s.gather(t, 5)
    assert b["mask"].tolist() == [[True, True, False, False, False], [True] + [False] * 4, [True] * 5]


def test_sampler_is_seeded(tiny_transitions):
    a = WindowSampler(tiny_transitions, 3, seed=4).sample_all(16)["s0"]
    b = WindowSampler(tiny_transitions, 3, seed=4).sample_all(16)["s0"]
    assert torch.equal(a, b)


def test_holdout_takes_whole_episodes(tiny_transitions):
    mask = holdout_mask(tiny_transitions, 0.3, 1000, seed=0)
    for a, b in tiny_transitions.episode_slices():
        assert mask[a:b].all() or not mask[a:b].any()
    assert 0 < mask.sum() < len(mask)


def test_rollout_start_windows_have_full_history(tiny_transitions):
    d = tiny_transitions
    rows = rollout_starts(d, 3)
    w = start_windows(torch.as_tensor(d.observations), torch.as_tensor(d.actions), torch.as_tensor(rows), 3)
    assert w["hist_obs"].shape == (len(rows), 2, 3)
    # the last history step leads to the start state within one episode
    np.testing.assert_allclose(d.next_observations[rows - 1], w["obs"])
    assert 0 not in rows and 7 not in rows and 8 not in rows and 9 in rows


def _write_d4rl(path, n=50, obs_dim=11, act_dim=3, **overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "next_observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.zeros(n, bool),
    }
    arrays.update(overrides)
    with h5py.File(path, "w") as fh:
        for k, v in arrays.items():
            if v is not None:
                fh.create_dataset(k, data=v)
    return arrays


def test_d4rl_round_trip(tmp_path, tiny_transitions):
    p = tmp_path / "x.hdf5"
    d4rl.write_d4rl(p, tiny_transitions)
    back = d4rl.load_d4rl(p)
    np.testing.assert_array_equal(back.observations, tiny_transitions.observations)
    np.testing.assert_array_equal(back.ends, tiny_transitions.ends)


def test_d4rl_reward_column_shape(tmp_path):
    p = tmp_path / "x.hdf5"
    arrays = _write_d4rl(p, rewards=np.ones((50, 1), np.float32))
    assert d4rl.load_d4rl(p).rewards.shape == (50,)
    assert arrays["rewards"].shape == (50, 1)


def test_d4rl_without_next_observations_drops_timeouts(tmp_path):
    p = tmp_path / "x.hdf5"
    t = np.zeros(50, bool)
    t[9] = True
    arrays = _write_d4rl(p, next_observations=None, timeouts=t)
    d = d4rl.load_d4rl(p)
    assert len(d) == 48  # row 9 (timeout) and the last row have no next state
    np.testing.assert_array_equal(d.next_observations[0], arrays["observations"][1])


def test_d4rl_id_lookup_and_missing_file_message(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    assert d4rl.d4rl_filename("hopper-medium-replay-v2") == "hopper_medium_replay-v2.hdf5"
    with pytest.raises(UserError, match=r"hopper_medium-v2.hdf5 not found in .*" + str(tmp_path.name)):
        d4rl.find_file("hopper-medium-v2")
    _write_d4rl(tmp_path / "hopper_medium-v2.hdf5")
    assert d4rl.find_file("hopper-medium-v2") == tmp_path / "hopper_medium-v2.hdf5"


def test_d4rl_errors(tmp_path):
    p = tmp_path / "nokey.hdf5"
    _write_d4rl(p, terminals=None)
    with pytest.raises(UserError, match="missing key 'terminals'"):
        d4rl.load_d4rl(p)
    p = tmp_path / "dim.hdf5"
    _write_d4rl(p, obs_dim=12, next_observations=np.zeros((50, 12), np.float32))
    with pytest.raises(UserError, match="'observations' has 12 dims, expected 11"):
        validate(d4rl.load_d4rl(p), str(p), 11, 3)
    p = tmp_path / "trunc.hdf5"
    _write_d4rl(p, n=2000)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="trunc.hdf5"):
        d4rl.load_d4rl(p)


def test_nonfinite_rows_rejected_or_dropped(tmp_path):
    p = tmp_path / "nan.hdf5"
    obs = np.random.default_rng(0).normal(size=(50, 11)).astype(np.float32)
    obs[7, 2] = np.nan
    _write_d4rl(p, observations=obs)
    with pytest.raises(UserError, match="1 rows with NaN/inf \\(first at row 7\\)"):
        validate(d4rl.load_d4rl(p), str(p), 11, 3)
    d = validate(d4rl.load_d4rl(p), str(p), 11, 3, nonfinite="drop")
    assert len(d) == 49 and d.dropped_nonfinite == 1 and np.isfinite(d.observations).all()
    assert d.ends[6]  # the row before the dropped one closes its episode


def test_neorl_round_trip_and_trajectory_slice(tmp_path, tiny_transitions):
    p = tmp_path / "Hopper-v3-low-100-train-noise.npz"
    neorl.write_neorl(p, tiny_transitions)
    back = neorl.load_neorl(p, trajectories=2)
    assert len(back) == 12  # the first two trajectories: 7 + 5
    np.testing.assert_array_equal(back.observations, tiny_transitions.observations[:12])
    assert back.terminals[6] and back.timeouts[11]
    assert neorl.find_file("Hopper-v3-low", 100, str(tmp_path)) == p


def test_neorl_errors(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(p, obs=np.zeros((3, 12)))
    with pytest.raises(UserError, match="missing key 'next_obs'"):
        neorl.load_neorl(p)
    with pytest.raises(UserError, match="Hopper-v3-low-1000-train-noise.npz"):
        neorl.find_file("Hopper-v3-low", 1000, str(tmp_path))


def test_normalised_scores():
    ref = D4RL_REF["hopper"]
    assert normalized_score(ref.random, ref) == 0.0
    assert normalized_score(ref.expert, ref) == pytest.approx(100.0)
    assert normalized_score(1607.0, ref) == pytest.approx(100 * (1607 + 20.272305) / (3234.3 + 20.272305))
    from admpo_cli.config import DataConfig

    assert task_reference(DataConfig(task="neorl-hopper-low", env="hopper", benchmark="neorl")) is NEORL_REF["hopper"]
    assert "OfflineRL-Kit" in NEORL_REF["hopper"].source
    assert task_reference(DataConfig(task="ant-online", env="ant")) is None

"""Environment specs: which gymnasium env and observation layout each task uses."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from ..errors import UserError


@dataclass(frozen=True)
class EnvSpec:
    env: str  # hopper | halfcheetah | walker2d | ant | humanoid
    layout: str  # d4rl (x position dropped) | neorl (x position kept) | online
    gym_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    obs_dim: int = 0
    act_dim: int = 0
    nq: int = 0  # qpos size of the model (x included)
    # Keep only the first N observation dimensions (0: all): the truncated Humanoid of the authors' code.
    obs_first: int = 0


# D4RL/NeoRL data come from the v2/v3 envs; their gymnasium v4 counterparts have the same dynamics and
# layouts (Walker2d-v5 changed the foot friction, so v4 is the default everywhere; gymnasium's v5 changelog).
_SPECS = {
    ("hopper", "d4rl"): EnvSpec("hopper", "d4rl", "Hopper-v4", {}, 11, 3, 6),
    ("halfcheetah", "d4rl"): EnvSpec("halfcheetah", "d4rl", "HalfCheetah-v4", {}, 17, 6, 9),
    ("walker2d", "d4rl"): EnvSpec("walker2d", "d4rl", "Walker2d-v4", {}, 17, 6, 9),
    ("hopper", "neorl"): EnvSpec(
        "hopper", "neorl", "Hopper-v4", {"exclude_current_positions_from_observation": False}, 12, 3, 6
    ),
    ("halfcheetah", "neorl"): EnvSpec(
        "halfcheetah", "neorl", "HalfCheetah-v4",
        {"exclude_current_positions_from_observation": False}, 18, 6, 9,
    ),
    ("walker2d", "neorl"): EnvSpec(
        "walker2d", "neorl", "Walker2d-v4", {"exclude_current_positions_from_observation": False}, 18, 6, 9
    ),
    # Truncated observations of the online tasks (paper: Ant 27 dims, Humanoid 45 dims).
    ("ant", "online"): EnvSpec("ant", "online", "Ant-v4", {"use_contact_forces": False}, 27, 8, 15),
    # The authors' HumanoidTruncatedObs-v3 (gym v3 on mujoco-py 2.x) pays no contact cost (openai/gym#1541:
    # cfrc_ext was all zeros) and pays the healthy reward on the terminating step too. Humanoid-v4 rewards
    # exactly so (forward + 5 alive - control cost); v5 adds ~0.1 a step of contact cost and drops that reward.
    # Its observation is qpos[2:] (22) + qvel (23) followed by the contact terms: the first 45 dims are kept.
    ("humanoid", "online"): EnvSpec("humanoid", "online", "Humanoid-v4", {}, 45, 17, 24, obs_first=45),
}


def get_spec(env: str, layout: str = "d4rl") -> EnvSpec:
    if env in ("ant", "humanoid"):
        layout = "online"
    elif layout == "online":
        layout = "d4rl"
    key = (env, layout)
    if key not in _SPECS:
        raise UserError(f"data.env: no environment for '{env}' with the {layout} layout")
    return _SPECS[key]


def spec_for(data_cfg) -> EnvSpec:
    """The environment of a data section: its env family in the observation layout of its dataset format."""
    from .. import registry

    return get_spec(data_cfg.env, registry.dataset_format(registry.format_of(data_cfg)).layout)


def make_env(spec: EnvSpec, max_episode_steps: int = 1000, **extra: Any) -> gym.Env:
    with warnings.catch_warnings():
        # v4 is chosen on purpose (same dynamics as the data); its "out of date" notice is noise.
        warnings.simplefilter("ignore", DeprecationWarning)
        env = gym.make(spec.gym_id, max_episode_steps=max_episode_steps, **spec.kwargs, **extra)
    if spec.obs_first:  # the cut goes under the TimeLimit, whose step counter a checkpoint reads
        import numpy as np

        n = spec.obs_first
        space = gym.spaces.Box(-np.inf, np.inf, (n,), np.float64)
        outer = env
        while not isinstance(outer, gym.wrappers.TimeLimit):
            outer = outer.env
        outer.env = gym.wrappers.TransformObservation(outer.env, lambda o: o[:n], space)
    return env


def action_scale(space: gym.spaces.Box):
    """The factor that maps a policy's [-1, 1] action to the env's units, a_env = scale * a (float32). Every
    MuJoCo task admpo runs has a symmetric action box (Humanoid: +-0.4, the others +-1); an asymmetric box is
    refused rather than silently clipped."""
    import numpy as np

    low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
    if not np.allclose(low, -high):
        raise UserError(f"action space [{low}, {high}] is not symmetric: admpo's policies act in [-1, 1] * high")
    return high


_SCALES: dict[int, tuple[gym.spaces.Box, Any]] = {}


def env_action(action, space: gym.spaces.Box):
    """A policy's action in [-1, 1] in the env's units (the one place this mapping is written); the space's
    factor is worked out once (an env keeps its space)."""
    hit = _SCALES.get(id(space))
    if hit is None or hit[0] is not space:
        if len(_SCALES) > 256:  # evaluations make fresh envs: keep the cache small
            _SCALES.clear()
        hit = _SCALES[id(space)] = (space, action_scale(space))
    return action * hit[1]

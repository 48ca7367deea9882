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
    ("humanoid", "online"): EnvSpec(
        "humanoid", "online", "Humanoid-v5",
        {
            "include_cinert_in_observation": False,
            "include_cvel_in_observation": False,
            "include_qfrc_actuator_in_observation": False,
            "include_cfrc_ext_in_observation": False,
        },
        45, 17, 24,
    ),
}


def layout_for_task(task: str, env: str) -> str:
    if env in ("ant", "humanoid"):
        return "online"
    return "neorl" if task.startswith("neorl-") else "d4rl"


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
    return get_spec(data_cfg.env, layout_for_task(data_cfg.task, data_cfg.env))


def make_env(spec: EnvSpec, max_episode_steps: int = 1000, **extra: Any) -> gym.Env:
    with warnings.catch_warnings():
        # v4 is chosen on purpose (same dynamics as the data); its "out of date" notice is noise.
        warnings.simplefilter("ignore", DeprecationWarning)
        return gym.make(spec.gym_id, max_episode_steps=max_episode_steps, **spec.kwargs, **extra)

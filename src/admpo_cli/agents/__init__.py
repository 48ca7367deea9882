"""The agents: SAC (a hand-written fast update in sac.py and its plain reference in sac_reference.py) and BC."""

from __future__ import annotations

import torch

from ..config import AgentConfig


def agent_backend(cfg: AgentConfig, device: torch.device) -> str:
    """`auto` takes the fast update on the CPU, where it is measured ~2x the autograd one and tested equal
    to it, and the reference elsewhere until a GPU run shows the fast one correct and faster there."""
    if cfg.backend != "auto":
        return cfg.backend
    return "fast" if torch.device(device).type == "cpu" else "reference"


def make_agent(obs_dim: int, act_dim: int, cfg: AgentConfig, device: torch.device,
               total_actor_updates: int | None = None, action_scale=None):
    """SAC with the backend the config asks for; both have update/act/actor/alpha/state_dict. Both start
    from the same weights for one seed (the fast agent's initialisation) and leave torch's random stream
    where the fast agent leaves it, so a run differs between backends only by rounding. `action_scale` (the
    env's action bound per dimension) puts log pi in the env's units where cfg.entropy_space is "env"."""
    from .sac import SAC

    fast = SAC(obs_dim, act_dim, cfg, device, total_actor_updates, action_scale)
    if agent_backend(cfg, device) == "fast":
        return fast
    from .sac_reference import ReferenceSAC

    with torch.random.fork_rng(devices=[]):
        ref = ReferenceSAC(obs_dim, act_dim, cfg, total_actor_updates, device, action_scale)
    ref.start_from(fast.actor.state_dict(), fast.critic.weights, fast.critic.biases, fast.critic_target.weights,
                   fast.critic_target.biases)
    return ref

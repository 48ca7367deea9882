"""Termination functions on the next observation, in torch and batched.

Sources: the authors' code (HxLyn3/ADMPO, its static termination functions) and the environments
themselves (gymnasium v4 MuJoCo; NeoRL's observations keep the x position in front).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .specs import EnvSpec

TerminationFn = Callable[[torch.Tensor], torch.Tensor]


def never(o: torch.Tensor) -> torch.Tensor:
    """No next state ends an episode (roll-outs that measure the model, not a task)."""
    return torch.zeros(o.shape[0], dtype=torch.bool, device=o.device)


def _finite(o: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(o).all(-1)


def hopper_d4rl(o: torch.Tensor) -> torch.Tensor:
    z, angle = o[..., 0], o[..., 1]
    healthy = _finite(o) & (o[..., 1:].abs() < 100).all(-1) & (z > 0.7) & (angle.abs() < 0.2)
    return ~healthy


def walker2d_d4rl(o: torch.Tensor) -> torch.Tensor:
    z, angle = o[..., 0], o[..., 1]
    healthy = (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)
    return ~healthy


def halfcheetah_d4rl(o: torch.Tensor) -> torch.Tensor:
    # The env never terminates; the authors' divergence guard stops imagined rows that blow up. D4RL's
    # observation has no x position, so |obs| < 100 holds in every ordinary episode.
    return ~(_finite(o) & (o.abs() < 100).all(-1))


def halfcheetah_neorl(o: torch.Tensor) -> torch.Tensor:
    # Never done, as the env and the authors' `neorl_halfcheetah`: NeoRL's observation starts with the
    # x position, which passes 100 in an ordinary episode (the D4RL guard would cut those roll-outs short).
    return torch.zeros(o.shape[:-1], dtype=torch.bool, device=o.device)


def hopper_neorl(o: torch.Tensor) -> torch.Tensor:
    # obs[0] is the x position (never part of the test)
    z, angle = o[..., 1], o[..., 2]
    healthy = _finite(o) & (o[..., 2:].abs() < 100).all(-1) & (z > 0.7) & (angle.abs() < 0.2)
    return ~healthy


def walker2d_neorl(o: torch.Tensor) -> torch.Tensor:
    # obs[0] is the x position (never part of the test); the guard covers the joints and velocities.
    z, angle = o[..., 1], o[..., 2]
    healthy = (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0) & (o[..., 3:].abs() < 100).all(-1)
    return ~healthy


def ant_truncated(o: torch.Tensor) -> torch.Tensor:
    z = o[..., 0]
    return ~(_finite(o) & (z >= 0.2) & (z <= 1.0))


def humanoid_truncated(o: torch.Tensor) -> torch.Tensor:
    z = o[..., 0]
    return (z < 1.0) | (z > 2.0)


_FNS: dict[tuple[str, str], TerminationFn] = {
    ("hopper", "d4rl"): hopper_d4rl,
    ("walker2d", "d4rl"): walker2d_d4rl,
    ("halfcheetah", "d4rl"): halfcheetah_d4rl,
    ("hopper", "neorl"): hopper_neorl,
    ("walker2d", "neorl"): walker2d_neorl,
    ("halfcheetah", "neorl"): halfcheetah_neorl,
    ("ant", "online"): ant_truncated,
    ("humanoid", "online"): humanoid_truncated,
}


def termination_fn(spec: EnvSpec) -> TerminationFn:
    return _FNS[(spec.env, spec.layout)]

"""The uniformly random policy (a roll-out's or a measurement's baseline), written once."""

from __future__ import annotations

from collections.abc import Callable

import torch


def uniform_policy(act_dim: int, gen: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """observations (B, obs) -> actions uniform in [-1, 1]^act_dim, drawn from `gen` (on its device), returned
    on the observations' device."""
    return lambda o: (torch.rand(o.shape[0], act_dim, device=gen.device, generator=gen) * 2 - 1).to(o.device)

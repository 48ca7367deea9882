"""ADMPO: ADMPO-OFF (Algorithm 3: MOPO + SAC with ADM and the reward r - beta * U) and ADMPO-ON (Algorithm 2:
MBPO + SAC with ADM), as the authors' code (GitHub HxLyn3/ADMPO) configures them; the presets hold the
per-task settings (Tables 4 and 5)."""

from __future__ import annotations

from ..registry import AlgorithmSpec
from .loops import offline_loop, online_loop

ALGORITHM = AlgorithmSpec(
    name="admpo", label="ADMPO-OFF", setting="offline", command="train-off", model="adm", uncertainty="authors",
    train=offline_loop,
    also={"online": {"label": "ADMPO-ON", "uncertainty": "none", "train": online_loop}},
    description="any-step dynamics model policy optimisation (Lin et al., ICLR 2025)",
)

"""ADMPO: ADMPO-OFF (Algorithm 3: MOPO + SAC with ADM and the reward r - beta * U) and ADMPO-ON (Algorithm 2:
MBPO + SAC with ADM), as the authors' code (GitHub HxLyn3/ADMPO) configures them; the presets hold the
per-task settings (Tables 4 and 5)."""

from __future__ import annotations

from ..registry import AlgorithmSpec, lazy

ALGORITHM = AlgorithmSpec(
    name="admpo", label="ADMPO-OFF", setting="offline", command="train-off", model="adm", uncertainty="authors",
    train=lazy("admpo_cli.algos.offline:train_offline"),
    also={"online": {"label": "ADMPO-ON", "uncertainty": "none", "train": lazy("admpo_cli.algos.online:train_online")}},
    description="any-step dynamics model policy optimisation (Lin et al., ICLR 2025)",
)

"""SAC update throughput: batch 256, actor and two critics 256x256 (paper Table 3), Hopper dimensions.

A batch is one row gather from a preallocated table with column views, as in training.
Run: python benchmarks/bench_sac.py
"""

from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table

from admpo_cli.agents.sac import SAC
from admpo_cli.algos.buffers import KEYS, TransitionTable
from admpo_cli.config import AgentConfig
from admpo_cli.process import keep_heap_memory
from plain import plain_sac_step
from timing import rate, sgemm_gflops


def updates_per_s(seconds: float, auto_alpha: bool) -> float:
    torch.manual_seed(0)
    agent = SAC(11, 3, AgentConfig(auto_alpha=auto_alpha), torch.device("cpu"), 100_000)
    n = 100_000
    obs = torch.randn(n, 11)
    data = TransitionTable.of({"obs": obs, "act": torch.rand(n, 3) * 2 - 1, "rew": torch.randn(n),
                               "next_obs": obs.roll(-1, 0), "done": torch.zeros(n)})

    def step():  # as the training loop samples: one row gather, column views
        batch = data.split(data.table[torch.randint(n, (256,))])
        agent.update(*(batch[k] for k in KEYS))

    return rate(step, seconds, warmup=20)


def main() -> None:
    keep_heap_memory()  # as the CLI does
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    table = Table(title=f"SAC updates/s ({torch.get_num_threads()} threads, batch 256)")
    for c in ("alpha", "updates/s", "plain PyTorch (OfflineRL-Kit style), same run", "ratio"):
        table.add_column(c)
    for auto in (False, True):
        # alternate admpo and the plain version twice, keeping each one's best: the machine's speed drifts
        ups, ref = 0.0, 0.0
        for _ in range(2):
            ups = max(ups, updates_per_s(args.seconds / 2, auto))
            ref = max(ref, rate(plain_sac_step(), args.seconds / 2, warmup=20))
        table.add_row("learned" if auto else "fixed", f"{ups:.0f}", f"{ref:.0f}", f"{ups / ref:.2f}x")
    Console().print(table)
    Console().print(f"machine now: sgemm 1280x200x600 at {sgemm_gflops():.0f} GFLOP/s")


if __name__ == "__main__":
    main()

"""Dynamics-model throughput on this machine: gradient steps/s and k-predictions/s.

Authors' architecture (GRU 3x200, 4 residual blocks), m=5, batch 256, Hopper dimensions; the ensemble is
the MOPO/MBPO one (7 members x 4x200). Run: python benchmarks/bench_models.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from admpo_cli import kernels
from admpo_cli.config import ModelConfig
from admpo_cli.data.dataset import Transitions, WindowSampler
from admpo_cli.device import bf16_matmuls, bf16_matmuls_usable
from admpo_cli.models.factory import build_model
from admpo_cli.optim import LeanAdam
from admpo_cli.process import keep_heap_memory
from plain import plain_adm_step, plain_ensemble_step
from timing import rate, sgemm_gflops


def synthetic(n=50_000, obs_dim=11, act_dim=3, episode=1000) -> Transitions:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(n + 1, obs_dim)).astype(np.float32)
    t = np.zeros(n, bool)
    t[episode - 1 :: episode] = True
    return Transitions(obs[:-1], rng.uniform(-1, 1, (n, act_dim)), rng.normal(size=n), obs[1:], np.zeros(n, bool), t)


def grad_steps_per_s(kind: str, k_sampling: str, sampler: WindowSampler, seconds: float, fixed_k: int | None = None):
    cfg = ModelConfig(kind=kind, m=5)
    torch.manual_seed(0)
    model = build_model(kind, 11, 3, cfg).train()
    opt = LeanAdam.from_groups(model.param_groups(), 3e-4)
    gen = torch.Generator().manual_seed(0)

    def step():
        if fixed_k is not None:
            b = sampler.sample_k(fixed_k, 256)
            mean, logvar = model(b["s0"], b["actions"])
            loss = ((mean[:, -1] - b["target"][:, -1]) ** 2 * torch.exp(-logvar[:, -1]) + logvar[:, -1]).mean()
        else:  # what fitting runs
            model.train_step(sampler, 256, k_sampling, gen, opt)
            return
        opt.zero_grad()
        loss.backward()
        opt.step()

    return rate(step, seconds, warmup=5)


@torch.no_grad()
def predictions_per_s(batch: int = 10_000, seconds: float = 3.0) -> float:
    """ADM: one pass over m-step windows gives all k = 1..m predictions for each start."""
    model = build_model("adm", 11, 3, ModelConfig(m=5)).eval()
    s0, acts = torch.randn(batch, 11), torch.randn(batch, 5, 3)
    model(s0, acts)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        model(s0, acts)
        n += 1
    return n * batch * 5 / (time.perf_counter() - t0)


def main() -> None:
    keep_heap_memory()  # as the CLI does
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    sampler = WindowSampler(synthetic(), 5)
    table = Table(title=f"dynamics models ({torch.get_num_threads()} threads, batch 256, m=5, Hopper dims)")
    for c in ("model", "mode", "gradient steps/s", "k-predictions/s in training", "without fused kernels",
              "matmul_precision=bf16", "plain PyTorch, same run", "ratio"):
        table.add_column(c)
    fused = kernels.cpu_ops() is not None
    bf16 = bf16_matmuls_usable("bf16", torch.device("cpu"))
    rows = [
        ("adm", "all k per step (admpo default)", "all", None, 5, plain_adm_step),
        ("adm", "one random k per step (authors)", "one", None, 3, None),
        ("adm", "k = 5 only", "one", 5, 1, None),
        ("bootrnn", "teacher-forced window of 5", "all", None, 5, None),
        ("ensemble", "7 members, batched", "all", None, 1, plain_ensemble_step),
    ]
    for kind, label, mode, fixed, kpred, plain in rows:
        if plain is None:
            sps = grad_steps_per_s(kind, mode, sampler, args.seconds, fixed)
            table.add_row(kind, label, f"{sps:.1f}", f"{sps * 256 * kpred:,.0f}", "", "", "", "")
            continue
        # alternate the variants twice and keep each one's best: the machine's speed drifts
        sps, ref, unfused, low = 0.0, 0.0, 0.0, 0.0
        for _ in range(2):
            sps = max(sps, grad_steps_per_s(kind, mode, sampler, args.seconds / 2, fixed))
            if fused:
                with kernels.switched_off():
                    unfused = max(unfused, grad_steps_per_s(kind, mode, sampler, args.seconds / 2, fixed))
            if bf16:
                with bf16_matmuls():
                    low = max(low, grad_steps_per_s(kind, mode, sampler, args.seconds / 2, fixed))
            ref = max(ref, rate(plain(sampler), args.seconds / 2, warmup=5))
        table.add_row(kind, label, f"{sps:.1f}", f"{sps * 256 * kpred:,.0f}", f"{unfused:.1f}" if fused else "",
                      f"{low:.1f}" if bf16 else "n/a", f"{ref:.1f}", f"{sps / ref:.2f}x")
    Console(width=160).print(table)
    Console().print(f"fused CPU kernels: {'on' if fused else 'off (ADMPO_CPU_KERNELS=0 or no C++ compiler)'}; "
                    f"machine now: sgemm 1280x200x600 at {sgemm_gflops():.0f} GFLOP/s")
    Console().print(f"ADM inference, all 5 k at once (batch 10 000): {predictions_per_s():,.0f} k-predictions/s")


if __name__ == "__main__":
    main()

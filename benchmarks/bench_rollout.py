"""Roll-out throughput (Algorithm 1 with ADM uncertainty): imagined transitions per second.

Paper-scale settings by default: m=5, GRU 3x200, batch 50 000, H=10, SAC actor 256x256, Hopper dims.
Termination is disabled so every row runs all H steps (a fixed amount of work).
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from admpo_cli.agents.nets import TanhGaussianActor
from admpo_cli.models.adm import ADM
from admpo_cli.models.rollout import cast_model, rollout
from admpo_cli.process import keep_heap_memory


def run(batch: int, horizon: int, chunk: int, dtype: str, m: int, unc: str, reps: int) -> float:
    torch.manual_seed(0)
    obs_dim, act_dim = 11, 3
    model = cast_model(ADM(obs_dim, act_dim, m, 200, 3, 4, 0.1).eval(), dtype)
    actor = TanhGaussianActor(obs_dim, act_dim)
    hist_o = torch.randn(batch, m - 1, obs_dim)
    hist_a = torch.rand(batch, m - 1, act_dim) * 2 - 1
    obs = torch.randn(batch, obs_dim)

    def policy(o):
        return actor(o, with_logp=False)[0]

    def never(o):
        return torch.zeros(o.shape[0], dtype=torch.bool)

    rollout(model, policy, hist_o[:chunk], hist_a[:chunk], obs[:chunk], 2, never, unc, 1.0, "batch", chunk)
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        with torch.no_grad():
            out = rollout(model, policy, hist_o, hist_a, obs, horizon, never, unc, 1.0, "batch", chunk)
        best = max(best, len(out) / (time.perf_counter() - t0))
    return best


def planned_vs_every_k(batch: int, horizon: int, chunk: int, m: int, reps: int, dropout: bool) -> tuple[float, float]:
    """Online roll-outs (no uncertainty): the planned stepper (only the drawn k's windows, one head) against
    the cached-window stepper that computes every k. Transitions/s of each."""
    torch.manual_seed(0)
    obs_dim, act_dim = 11, 3
    model = ADM(obs_dim, act_dim, m, 200, 3, 4, 0.1)
    every_k = ADM(obs_dim, act_dim, m, 200, 3, 4, 0.1)
    every_k.load_state_dict(model.state_dict())
    every_k.planned_stepper = lambda plan, dropout_at_inference=False: None  # the plain path: all k each step
    actor = TanhGaussianActor(obs_dim, act_dim)
    hist_o, hist_a = torch.randn(batch, m - 1, obs_dim), torch.rand(batch, m - 1, act_dim) * 2 - 1
    obs = torch.randn(batch, obs_dim)

    def never(o):
        return torch.zeros(o.shape[0], dtype=torch.bool)

    best = {}
    for name, mdl in (("every k", every_k), ("planned", model)):
        best[name] = 0.0
        for r in range(reps):
            t0 = time.perf_counter()
            with torch.no_grad():
                out = rollout(mdl, lambda o: actor(o, with_logp=False)[0], hist_o, hist_a, obs, horizon, never, "none",
                              0.0, "batch", chunk, torch.Generator().manual_seed(r), dropout)
            best[name] = max(best[name], len(out) / (time.perf_counter() - t0))
    return best["every k"], best["planned"]


@torch.no_grad()
def bf16_accuracy(m: int = 5, batch: int = 2000, steps: int = 10) -> tuple[float, float]:
    """Mean |bf16 - fp32| of the predicted next states, relative to the fp32 one-step change."""
    torch.manual_seed(0)
    model = ADM(11, 3, m, 200, 3, 4, 0.1).eval()
    low = cast_model(model, "bf16")
    a, b = model.stepper(), low.stepper()
    hist_o, hist_a = torch.randn(batch, m - 1, 11), torch.rand(batch, m - 1, 3) * 2 - 1
    a.start(hist_o, hist_a)
    b.start(hist_o, hist_a)
    obs = torch.randn(batch, 11)
    errs, scale = [], []
    for _ in range(steps):
        act = torch.rand(batch, 3) * 2 - 1
        ma, _ = a.step(obs, act)
        mb, _ = b.step(obs, act)
        errs.append((ma - mb)[..., :11].abs().mean())
        scale.append((ma[..., :11] - obs[:, None]).abs().mean())
        obs = ma[:, 0, :11]
    return float(torch.stack(errs).mean()), float(torch.stack(errs).mean() / torch.stack(scale).mean())


def main() -> None:
    keep_heap_memory()  # as the CLI does
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=50000)
    ap.add_argument("--horizon", type=int, default=10)
    ap.add_argument("--m", type=int, default=5)
    ap.add_argument("--chunks", default="1000,2000,4000")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--only-planned", action="store_true", help="only the online (no uncertainty) comparison")
    args = ap.parse_args()
    for dropout in (True, False):
        full, planned = planned_vs_every_k(20000, 8, 10000, args.m, args.reps, dropout)
        Console().print(f"online roll-out, no uncertainty (20k windows, H=8, m={args.m}, dropout at inference "
                        f"{'on' if dropout else 'off'}): every k {full:,.0f} transitions/s, planned {planned:,.0f} "
                        f"transitions/s: {planned / full:.2f}x")
    if args.only_planned:
        return
    table = Table(title=f"roll-out throughput ({torch.get_num_threads()} threads, batch {args.batch}, "
                  f"H={args.horizon}, m={args.m})")
    for c in ("dtype", "uncertainty", "chunk", "transitions/s"):
        table.add_column(c)
    for dtype in ("fp32", "bf16"):
        for chunk in [int(c) for c in args.chunks.split(",")]:
            for unc in ("authors", "paper"):
                tps = run(args.batch, args.horizon, chunk, dtype, args.m, unc, args.reps)
                table.add_row(dtype, unc, str(chunk), f"{tps:,.0f}")
    Console().print(table)
    err, rel = bf16_accuracy(args.m)
    Console().print(f"bf16 vs fp32 predicted next state (untrained model, random inputs): mean |diff| {err:.2e}, "
                    f"{100 * rel:.2f} % of the mean predicted change")


if __name__ == "__main__":
    main()

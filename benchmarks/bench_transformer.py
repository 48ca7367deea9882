"""The Transformer ADM beside the GRU ADM, in the same run: all-k training steps/s (Eq. 2, batch 256, m 5,
width 200, 3 layers) and roll-out transitions/s (Algorithm 1 with the authors' uncertainty, H 10), and the
Transformer's KV-cached roll-out step against its re-run-every-window reference. Ratios are the figures;
the absolute rates drift with the machine (sgemm printed)."""

from __future__ import annotations

import argparse

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from admpo_cli.data.dataset import Transitions, WindowSampler
from admpo_cli.models.adm import ADM
from admpo_cli.models.adm_transformer import ADMTransformer, ReferenceTransformerStepper
from admpo_cli.models.rollout import rollout
from admpo_cli.optim import LeanAdam
from admpo_cli.process import keep_heap_memory
from timing import rate, sgemm_gflops


def _data(n: int = 20_000, obs: int = 11, act: int = 3) -> Transitions:
    rng = np.random.default_rng(0)
    ends = np.zeros(n, bool)
    ends[999::1000] = True
    return Transitions(rng.normal(size=(n, obs)).astype(np.float32), rng.uniform(-1, 1, (n, act)).astype(np.float32),
                       rng.normal(size=n).astype(np.float32), rng.normal(size=(n, obs)).astype(np.float32),
                       np.zeros(n, bool), ends)


def models(m: int, width: int, layers: int):
    torch.manual_seed(0)
    return {"ADM (GRU)": ADM(11, 3, m, width, layers, 4, 0.1),
            "ADM (Transformer)": ADMTransformer(11, 3, m, width, layers, 4, 4, 0.1)}


def train_rate(model, data, seconds: float) -> float:
    sampler = WindowSampler(data, model.m, seed=0)
    opt = LeanAdam.from_groups(model.param_groups(), 3e-4)
    gen = torch.Generator().manual_seed(0)
    model.train()
    return rate(lambda: model.train_step(sampler, 256, "all", gen, opt), seconds)


def rollout_rate(model, batch: int, horizon: int, seconds: float, reference: bool = False) -> float:
    model.eval()
    m = model.m
    hist_o, hist_a = torch.randn(batch, m - 1, 11), torch.rand(batch, m - 1, 3) * 2 - 1
    obs = torch.randn(batch, 11)
    policy = lambda o: torch.tanh(o[:, :3])  # noqa: E731
    never = lambda o: torch.zeros(o.shape[0], dtype=torch.bool)  # noqa: E731
    if reference:
        model.stepper = lambda dropout_at_inference=False: ReferenceTransformerStepper(model, dropout_at_inference)

    def once():
        with torch.no_grad():
            rollout(model, policy, hist_o, hist_a, obs, horizon, never, "authors", 1.0, "batch", 1000)

    try:
        return rate(once, seconds, warmup=1) * batch * horizon
    finally:
        model.__dict__.pop("stepper", None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--horizon", type=int, default=10)
    args = p.parse_args()
    keep_heap_memory()
    console = Console()
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, sgemm {sgemm_gflops():.0f} GFLOP/s")
    data = _data()
    mods = models(5, 200, 3)
    table = Table(title="Transformer ADM vs GRU ADM (m 5, width 200, 3 layers; same run)")
    for col in ("model", "train steps/s (all k)", "roll-out transitions/s"):
        table.add_column(col, justify="right")
    res = {}
    for name, mdl in mods.items():
        res[name] = (train_rate(mdl, data, args.seconds), rollout_rate(mdl, args.batch, args.horizon, args.seconds))
        table.add_row(name, f"{res[name][0]:.1f}", f"{res[name][1]:,.0f}")
    g, t = res["ADM (GRU)"], res["ADM (Transformer)"]
    table.add_row("Transformer / GRU", f"{t[0] / g[0]:.2f}x", f"{t[1] / g[1]:.2f}x")
    console.print(table)
    ref = rollout_rate(mods["ADM (Transformer)"], args.batch, args.horizon, args.seconds, reference=True)
    console.print(f"Transformer roll-out: KV-cached step {t[1]:,.0f}/s, reference (every window re-run) "
                  f"{ref:,.0f}/s: {t[1] / ref:.2f}x")


if __name__ == "__main__":
    main()

"""ADMPO-ON on the `hopper-online` preset: where the time goes, for the published protocol and for `--budget cpu`.

1. `refit`: one faithful re-fit (the authors' protocol: a fresh ADM, one k per minibatch, (N_train // 256) * m
   minibatches an epoch, until 25 epochs without improvement, hold-out the last 500) on 5k, 25k and 50k real
   Hopper transitions: seconds, epochs, gradient steps, hold-out MSE; and the `cpu` budget's re-fit beside it.
2. `phases`: a slice of the preset at the `cpu` budget (its 5000 warm-up steps, then `--slice` learning env
   steps: re-fits, roll-outs of 100 000 start windows, UTD-20 SAC updates) with the loop's own phase timers;
   from the measured rates it estimates the whole 50k-step run at the `cpu` budget and, with the re-fit times
   of part 1 (interpolated in N, 200 re-fits on 5k..55k transitions), at the faithful protocol. Everything but
   the re-fits is the same in both (same env steps, roll-outs, SAC).
3. `refits` / `ksampling`: warm_start vs from_scratch, one k vs all k, at equal time (the evidence for the
   `cpu` budget's choices).

    python benchmarks/bench_online.py [--slice 500] [--sizes 5000,25000,50000] [--only refit|phases|refits|ksampling]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from admpo_cli.agents.nets import TanhGaussianActor
from admpo_cli.algos.model_buffer import RolloutSettings
from admpo_cli.algos.online import fit_dynamics, rollout_length, train_online
from admpo_cli.algos.real_env import RealData
from admpo_cli.algos.summary import read_rows
from admpo_cli.config import resolve
from admpo_cli.data.dataset import Transitions
from admpo_cli.data.simulate import collect
from admpo_cli.envs.specs import spec_for
from admpo_cli.models.factory import build_model
from admpo_cli.models.fit import fit
from admpo_cli.models.rollout import rollout
from admpo_cli.process import keep_heap_memory, seed_everything
from admpo_cli.rundir import RunDir
from timing import sgemm_gflops


def _prefix(data: Transitions, n: int) -> Transitions:
    return Transitions(data.observations[:n], data.actions[:n], data.rewards[:n], data.next_observations[:n],
                       data.terminals[:n], data.timeouts[:n], source="bench")


class _TimeUp(Exception):
    pass


LOWER_BOUND = [False]  # a faithful re-fit was stopped: its time, and the estimate from it, are lower bounds


def refit(sizes: list[int], console: Console, limit_s: float = 0.0) -> dict[int, float]:
    """Seconds of one faithful re-fit at each size (and of the cpu budget's), on random-policy Hopper data. A
    faithful fit still running after `limit_s` (0 = none) is stopped and reported as a lower bound."""
    faithful, cpu = resolve("hopper-online"), resolve("hopper-online", budget="cpu")
    spec = spec_for(faithful.data)
    data, _, _ = collect(spec, max(sizes), None, seed=0)
    table = Table(title="one re-fit of hopper-online's ADM (random-policy Hopper data)")
    for col in ("real transitions", "protocol", "s", "epochs (best)", "gradient steps", "steps/s",
                "hold-out MSE"):
        table.add_column(col, justify="right")
    out = {}
    for n in sizes:
        for name, cfg in (("faithful", faithful), ("cpu budget", cpu)):
            seed_everything(0)
            rows: list[dict] = []
            t0 = time.perf_counter()

            def on_epoch(row: dict, t0=t0, rows=rows) -> None:
                rows.append(row)
                if limit_s and time.perf_counter() - t0 > limit_s:
                    raise _TimeUp

            model = build_model(cfg.model.kind, spec.obs_dim, spec.act_dim, cfg.model)
            stopped = False
            try:
                fit(model, _prefix(data, n), cfg.model, torch.device("cpu"), n, on_epoch=on_epoch)
            except _TimeUp:
                stopped = True
            s = time.perf_counter() - t0
            per_epoch = cfg.model.steps_per_epoch or (n - min(int(0.2 * n), cfg.model.holdout_max)) // 256 * cfg.model.m
            steps = per_epoch * len(rows)
            best = min(rows, key=lambda r: r["holdout_mse"])
            if name == "faithful":
                out[n] = s
                LOWER_BOUND[0] |= stopped
            cells = (f"{n:,}", name, f"{'>= ' if stopped else ''}{s:.0f}",
                     f"{len(rows)} ({best['epoch']}){' stopped, not converged' if stopped else ''}", f"{steps:,}",
                     f"{steps / s:.0f}", f"{best['holdout_mse']:.4f}")
            table.add_row(*cells)
            console.print("  ".join(cells))  # as it goes: the faithful re-fits take minutes each
    console.print(table)
    return out


def phases(slice_steps: int, refit_s: dict[int, float], console: Console) -> None:
    """A slice at the cpu budget; whole-run estimates for the cpu budget and (with `refit_s`) the protocol."""
    full = resolve("hopper-online")
    cfg = resolve("hopper-online", None, [f"train.total_steps={slice_steps}", "eval.episodes=1",
                                          f"eval.every={slice_steps}"], budget="cpu")
    t, warm = cfg.train, cfg.train.warmup_steps
    seed_everything(0)
    with tempfile.TemporaryDirectory() as d:
        rd = RunDir.create_or_open(Path(d) / "r", cfg)
        t0 = time.perf_counter()
        train_online(cfg, rd, torch.device("cpu"))
        wall = time.perf_counter() - t0
        row = read_rows(rd.file("metrics.csv"))[-1]
    ph = {k: float(row[f"{k}_s"]) for k in ("env", "fit", "rollout", "sac")}
    fits = (slice_steps - 1) // t.model_update_interval + 1
    env_rate = (warm + slice_steps) / ph["env"]
    sac_rate = slice_steps * t.utd / ph["sac"]
    fit_s = ph["fit"] / fits
    lengths_slice = [rollout_length(t.rollout_schedule, i * t.model_update_interval) for i in range(fits)]
    # a roll-out costs a + b * length: b (seconds per imagined step of 100k windows) timed directly at two
    # lengths with no row terminating (an upper bound: real roll-outs lose rows), a from the slice's roll-outs
    b = rollout_step_seconds(cfg)
    a = max(0.0, (ph["rollout"] - b * sum(lengths_slice)) / fits)
    total_steps = full.train.total_steps
    its = range(0, total_steps, t.model_update_interval)
    common = {"env steps": (warm + total_steps) / env_rate,
              "roll-outs": len(its) * a + sum(rollout_length(t.rollout_schedule, i) for i in its) * b,
              "SAC updates": total_steps * t.utd / sac_rate}
    cpu_est = {**common, "model fitting": len(its) * fit_s}
    sizes = sorted(refit_s)
    faithful_est = None
    if len(sizes) >= 2:  # seconds of a re-fit on N transitions, interpolated (and extrapolated) linearly in N
        ns = [warm + i for i in its]
        fit_total = float(np.sum(np.interp(ns, sizes, [refit_s[n] for n in sizes])))
        slope = (refit_s[sizes[-1]] - refit_s[sizes[-2]]) / (sizes[-1] - sizes[-2])
        fit_total += sum(slope * (n - sizes[-1]) for n in ns if n > sizes[-1])
        faithful_est = {**common, "model fitting": fit_total}
    table = Table(title=f"hopper-online: a slice of {slice_steps} learning env steps at --budget cpu after the "
                        f"{warm}-step warm-up ({wall:.0f} s); the whole {total_steps}-step run estimated")
    for col in ("phase", "slice s", "rate in the slice", "cpu budget (est.)", "share", "protocol (est.)", "share"):
        table.add_column(col, justify="right")
    rates = {"env steps": f"{env_rate:.0f} steps/s", "model fitting": f"{fit_s:.1f} s / re-fit ({fits} re-fits)",
             "roll-outs": f"{a:.1f} s + {b:.1f} s per imagined step of {cfg.rollout.batch_size // 1000}k windows",
             "SAC updates": f"{sac_rate:.0f} updates/s"}
    slice_s = {"env steps": ph["env"], "model fitting": ph["fit"], "roll-outs": ph["rollout"], "SAC updates": ph["sac"]}
    tot_c = sum(cpu_est.values())
    tot_f = sum(faithful_est.values()) if faithful_est else None
    for k in ("env steps", "model fitting", "roll-outs", "SAC updates"):
        f_cells = (f"{faithful_est[k] / 3600:.2f} h", f"{100 * faithful_est[k] / tot_f:.0f} %") if tot_f else (
            "-", "-")
        table.add_row(k, f"{slice_s[k]:.1f}", rates[k], f"{cpu_est[k] / 3600:.2f} h",
                      f"{100 * cpu_est[k] / tot_c:.0f} %", *f_cells)
    table.add_row("total", f"{sum(slice_s.values()):.1f}", "", f"{tot_c / 3600:.2f} h", "100 %",
                  f"{tot_f / 3600:.2f} h" if tot_f else "-", "100 %" if tot_f else "-")
    console.print(table)
    if faithful_est and LOWER_BOUND[0]:
        console.print("protocol estimate: a lower bound (a faithful re-fit was stopped before it converged)")
    console.print(f"machine now: sgemm 1280x200x600 at {sgemm_gflops():.0f} GFLOP/s (these machines drift by up to 4x)")


def rollout_step_seconds(cfg) -> float:
    """Seconds per imagined step of a full roll-out batch (the preset's ADM and SAC actor sizes, dropout at
    inference as the run, no termination): the slope between lengths 2 and 6."""
    spec = spec_for(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg.model.kind, spec.obs_dim, spec.act_dim, cfg.model)
    actor = TanhGaussianActor(spec.obs_dim, spec.act_dim, cfg.agent.hidden)
    n, m = cfg.rollout.batch_size, model.context
    hist_o, hist_a = torch.randn(n, m - 1, spec.obs_dim), torch.rand(n, m - 1, spec.act_dim) * 2 - 1
    obs = torch.randn(n, spec.obs_dim)
    ro = RolloutSettings.of(cfg)
    times = {}
    for length in (2, 6):
        t0 = time.perf_counter()
        with torch.no_grad():
            rollout(model, lambda o: actor(o, with_logp=False)[0], hist_o, hist_a, obs, length,
                    lambda o: torch.zeros(o.shape[0], dtype=torch.bool), ro.uncertainty, ro.beta, ro.k_mode,
                    ro.chunk_size, torch.Generator().manual_seed(length), ro.dropout)
        times[length] = time.perf_counter() - t0
    return max(times[6] - times[2], 0.0) / 4


def refits(n_refits: int, console: Console) -> None:
    """from_scratch vs warm_start, the same gradient steps per re-fit, on growing prefixes of one dataset."""
    base = resolve("hopper-online", budget="cpu")
    spec = spec_for(base.data)
    data, _, _ = collect(spec, 2000 * n_refits, None, seed=0)
    table = Table(title="model re-fits at equal time (hopper-online's ADM, 500 gradient steps each): hold-out MSE")
    table.add_column("transitions", justify="right")
    for mode in ("from_scratch", "warm_start"):
        table.add_column(mode, justify="right")
        table.add_column(f"{mode} s", justify="right")
    results = {}
    for mode in ("from_scratch", "warm_start"):
        cfg = replace(base, train=replace(base.train, model_refit=mode))
        seed_everything(0)
        model, opt, rows = None, None, []
        for i in range(1, n_refits + 1):
            real = RealData(len(data), spec.obs_dim, spec.act_dim, torch.device("cpu"))
            n = 2000 * i
            for j in range(n):
                real.add(data.observations[j], data.actions[j], float(data.rewards[j]), data.next_observations[j],
                         bool(data.terminals[j]), bool(data.timeouts[j]))
            model, opt, info = fit_dynamics(cfg, model, opt, real.transitions(), torch.device("cpu"), 0)
            rows.append((n, info["model_holdout_mse"], info["model_fit_s"]))
        results[mode] = rows
    for i in range(n_refits):
        n = results["from_scratch"][i][0]
        table.add_row(str(n), *[x for mode in ("from_scratch", "warm_start")
                                for x in (f"{results[mode][i][1]:.4f}", f"{results[mode][i][2]:.1f}")])
    console.print(table)
    last = {m: np.mean([r[1] for r in results[m][-3:]]) for m in results}
    console.print(f"mean hold-out MSE of the last 3 re-fits: from_scratch {last['from_scratch']:.4f}, "
                  f"warm_start {last['warm_start']:.4f}")


def ksampling(console: Console) -> None:
    """ADM's training minibatches: all k in one pass (Eq. 2, `model.k_sampling=all`) vs the authors' one k per
    minibatch (`one`), warm-started re-fits on 2k/4k/6k random Hopper transitions: hold-out MSE (mean over
    k) and seconds per re-fit, `one` at the same gradient steps and at about the same time."""
    base = resolve("hopper-online", budget="cpu")
    spec = spec_for(base.data)
    data, _, _ = collect(spec, 6000, None, seed=0)
    table = Table(title="hopper-online's ADM: k sampling at equal time (warm-started re-fits, 5 epochs each)")
    for col in ("k_sampling", "steps/epoch", "MSE @2k", "MSE @4k", "MSE @6k", "s / re-fit"):
        table.add_column(col, justify="right")
    for mode, steps in (("all", 100), ("one", 100), ("one", 170)):
        cfg = replace(base, model=replace(base.model, k_sampling=mode, steps_per_epoch=steps))
        seed_everything(0)
        model, opt, mses, secs = None, None, [], []
        for n in (2000, 4000, 6000):
            real = RealData(n, spec.obs_dim, spec.act_dim, torch.device("cpu"))
            for j in range(n):
                real.add(data.observations[j], data.actions[j], float(data.rewards[j]), data.next_observations[j],
                         bool(data.terminals[j]), bool(data.timeouts[j]))
            model, opt, info = fit_dynamics(cfg, model, opt, real.transitions(), torch.device("cpu"), 0)
            mses.append(info["model_holdout_mse"])
            secs.append(info["model_fit_s"])
        table.add_row(mode, str(steps), *[f"{x:.4f}" for x in mses], f"{np.mean(secs):.1f}")
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slice", type=int, default=500, help="learning env steps timed after the warm-up")
    ap.add_argument("--sizes", default="5000,25000,50000", help="real transitions of the faithful re-fits timed")
    ap.add_argument("--limit", type=float, default=0.0, help="stop a faithful re-fit after this many seconds")
    ap.add_argument("--known", default="", help="re-fit seconds measured before, e.g. 5000=117,25000=1500")
    ap.add_argument("--refits", type=int, default=5)
    ap.add_argument("--only", choices=["refit", "phases", "refits", "ksampling"], default=None)
    a = ap.parse_args()
    keep_heap_memory()
    torch.set_num_threads(2)
    console = Console()
    refit_s = {int(k): float(v) for k, v in (x.split("=") for x in a.known.split(",") if x)}
    if a.only in (None, "refit"):
        refit_s.update(refit([int(x) for x in a.sizes.split(",")], console, a.limit))
    if a.only in (None, "phases"):
        phases(a.slice, refit_s, console)
    if a.only == "refits":
        refits(a.refits, console)
    if a.only == "ksampling":
        ksampling(console)


if __name__ == "__main__":
    main()

"""The README's fit study on Hopper medium data (issue 29): ADMPO-OFF with the authors' one-k fit and with the
all-k fit at the same number of model updates, MOPO as published and BC, 2 seeds, at hopper-medium's
`cpu-study` budget. Runs them (`run`, one lane per seed with one torch thread each) and draws the README's
table and figure from the run directories (`figure`).

    python scripts/fit_study.py run --data data/hopper-medium.hdf5 --out study   # ~1 h on 2 cores
    python scripts/fit_study.py figure --out study                               # table + docs/fit-study.png

The data: `admpo collect --env hopper --quality medium --steps 50000 --noise --out data/hopper-medium.hdf5`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

VARIANTS = {  # run name -> extra CLI arguments
    "admpo-onek": [],
    "admpo-allk": ["--set", "model.k_sampling=all"],
    "mopo": ["--algo", "mopo"],
    "bc": None,  # train-bc
}


def run(data: Path, out: Path, seeds: list[int]) -> None:
    admpo = str(Path(sys.executable).with_name("admpo"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def lane(seed: int) -> None:
        for name, extra in VARIANTS.items():
            cmd = [admpo, "train-bc" if extra is None else "train-off", "--preset", "hopper-medium", "--budget",
                   "cpu-study", "--dataset", str(data), "--seed", str(seed), "--run", str(out / f"{name}-s{seed}"),
                   *(extra or [])]
            subprocess.run(cmd, check=True, env=env)

    with ThreadPoolExecutor(len(seeds)) as pool:
        list(pool.map(lane, seeds))


def figure(out: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    rows, curves = [], {}
    for d in sorted(out.glob("*-s*")):
        s = json.loads((d / "summary.json").read_text())
        name = d.name.rsplit("-s", 1)[0]
        fit = json.loads((d / "model" / f"{s['model']}.json").read_text()) if s.get("model") else {}
        rows.append({"variant": name, "label": s["label"], "seed": s["seed"], "final": s["final_score"],
                     "best": s["best_score"], "fit_steps": fit.get("gradient_steps"),
                     "holdout_mse": float(np.mean(fit["holdout_mse_per_k"])) if fit else None})
        curves.setdefault(name, []).append(pd.read_csv(d / "metrics.csv"))
    df = pd.DataFrame(rows)
    table = df.groupby("variant").agg(label=("label", "first"), final=("final", "mean"), final_sd=("final", "std"),
                                      seeds=("final", list), best=("best", "mean"), fit_steps=("fit_steps", "first"),
                                      holdout_mse=("holdout_mse", "mean"))
    print(table.to_string())
    panels = [("normalised score", "score_mean"), ("mean Q of SAC's batches", "q_mean"),
              ("imagined reward r (before the penalty)", "imagined_reward_mean"), ("penalty β·U", "penalty_mean"),
              ("share of imagined rows that terminated", "imagined_done_frac")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.4))
    for ax, (title, col) in zip(axes, panels, strict=True):
        for i, (name, frames) in enumerate(sorted(curves.items())):
            frames = [f for f in frames if col in f and pd.to_numeric(f[col], errors="coerce").notna().any()]
            if not frames:
                continue
            for j, f in enumerate(frames):
                ax.plot(f["step"] / 1000, pd.to_numeric(f[col], errors="coerce"), color=f"C{i}",
                        alpha=0.9 if j == 0 else 0.5, label=name if j == 0 else None)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("SAC updates (thousands)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Hopper medium (50k transitions collected here), cpu-study budget: each seed a line", fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["run", "figure"])
    p.add_argument("--data", type=Path, default=Path("data/hopper-medium.hdf5"))
    p.add_argument("--out", type=Path, default=Path("study"))
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--png", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "fit-study.png")
    a = p.parse_args()
    if a.what == "run":
        run(a.data, a.out, [int(s) for s in a.seeds.split(",")])
    else:
        figure(a.out, a.png)


if __name__ == "__main__":
    main()

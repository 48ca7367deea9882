"""What thread-count invariance costs: MKL's strict CNR mode (admpo's default, `MKL_CBWR=AUTO,STRICT`) against
MKL's own choice (`MKL_CBWR=AUTO`), on SAC updates (batch 256, 256x256, Hopper dimensions) and ADM fitting steps
(the authors' sizes: GRU 3x200, m 5, batch 256, one k per minibatch). MKL reads the mode once per process, so
each setting runs in its own process, alternating, several rounds; the ratio of medians is reported.

Run: python benchmarks/bench_cnr.py [--rounds 3] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, torch
from admpo_cli.process import keep_heap_memory, strict_cnr
sys.path.insert(0, "benchmarks")
from bench_sac import updates_per_s
from timing import rate
keep_heap_memory()
seconds = float(sys.argv[1])
from admpo_cli.data.dataset import Transitions, WindowSampler
from admpo_cli.models.adm import ADM
from admpo_cli.optim import LeanAdam
import numpy as np
rng = np.random.default_rng(0)
n = 20000
obs = rng.normal(size=(n, 11)).astype(np.float32)
ends = np.zeros(n, bool); ends[999::1000] = True
data = Transitions(obs, rng.uniform(-1, 1, (n, 3)).astype(np.float32), rng.normal(size=n).astype(np.float32),
                   np.roll(obs, -1, 0), np.zeros(n, bool), ends)
torch.manual_seed(0)
model = ADM(11, 3, 5)
model.norm.fit(torch.as_tensor(obs), torch.as_tensor(data.actions))
sampler = WindowSampler(data, 5, None, torch.device("cpu"), 0)
opt = LeanAdam.from_groups(model.param_groups(), 3e-4)
gen = torch.Generator().manual_seed(0)
model.train()
fit = rate(lambda: model.train_step(sampler, 256, "one", gen, opt), seconds, warmup=5)
print(json.dumps({"cnr": strict_cnr(), "sac": updates_per_s(seconds, True), "fit": fit}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    a = ap.parse_args()
    results: dict[str, list[dict]] = {"AUTO,STRICT": [], "AUTO": []}
    for _ in range(a.rounds):
        for mode in results:
            env = {**os.environ, "MKL_CBWR": mode}
            out = subprocess.run([sys.executable, "-c", CHILD, str(a.seconds)], env=env, capture_output=True,
                                 text=True, check=True)
            results[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("sac", "fit")} for m, rs in results.items()}
    for m, rs in results.items():
        print(f"MKL_CBWR={m:12s} (strict CNR {rs[0]['cnr']}): SAC {med[m]['sac']:.0f} updates/s, "
              f"ADM fit {med[m]['fit']:.1f} steps/s")
    print(f"strict CNR / MKL's choice: SAC {med['AUTO,STRICT']['sac'] / med['AUTO']['sac']:.2f}x, "
          f"ADM fit {med['AUTO,STRICT']['fit'] / med['AUTO']['fit']:.2f}x")


if __name__ == "__main__":
    main()

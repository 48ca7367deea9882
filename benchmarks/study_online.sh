#!/usr/bin/env bash
# Sample efficiency on Hopper at a named reduced budget: ADMPO-ON, MBPO (as its authors ran it) and SAC
# (CleanRL's) at equal env steps, 2 seeds each, through `admpo sweep` (two runs at a time, one torch thread
# each: two processes that each use both cores slow each other).
#
# The budget is `hopper-online`'s `cpu-5k` (see `admpo presets show hopper-online`): the 5000 random warm-up
# steps, then 5000 learning env steps; capped warm-started re-fits (5 epochs of 170 minibatches) and roll-outs
# of 10 000 start windows for both model-based algorithms; everything else each algorithm's protocol (UTD 20
# for ADMPO-ON and MBPO, 1 for SAC). Reports label every run "(reduced budget: cpu-5k)".
#
#   bash benchmarks/study_online.sh [OUT]      then   admpo report OUT --out OUT-report
set -euo pipefail
OUT=${1:-runs/study-online}
ADMPO=${ADMPO:-.venv/bin/admpo}
"$ADMPO" sweep --presets hopper-online --algos admpo,mbpo,sac --seeds 0-1 --budget cpu-5k --jobs 2 --out "$OUT"

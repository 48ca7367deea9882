#!/usr/bin/env bash
# Sample efficiency on Hopper at a reduced budget: ADMPO-ON, MBPO and SAC at equal env steps, 2 seeds each,
# two runs at a time with one torch thread each (two processes that each use both cores slow each other).
#
# The budget (same for both model-based algorithms; SAC keeps its published UTD 1): 10 000 env steps with
# 2 000 warm-up steps, UTD 10, 10 000 start windows a roll-out, length 1 -> 15 over 0 -> 50k env steps
# (Table 4's schedule, so 1 -> 3 here), 200 gradient steps a re-fit. Not a paper setting: the paper's is
# 50k env steps at UTD 20 with 100k windows, days on 2 CPU cores.
#
#   bash benchmarks/study_online.sh [OUT]      then   admpo report OUT --out OUT-report
set -euo pipefail
OUT=${1:-runs/study-online}
ADMPO=${ADMPO:-.venv/bin/admpo}
COMMON=(--preset hopper-online --steps 10000
        --set train.warmup_steps=2000 --set eval.every=1000 --set eval.episodes=5)
MODEL=(--set train.utd=10 --set rollout.batch_size=10000 --set model.steps_per_epoch=40
       --set "train.rollout_schedule=[1, 15, 0, 50000]" --set train.model_update_interval=250
       --set train.model_retain_rollouts=4)
run() {  # algo seed extra...
  local algo=$1 seed=$2; shift 2
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$ADMPO" train-on "${COMMON[@]}" --algo "$algo" --seed "$seed" \
    --run "$OUT/$algo-s$seed" "$@" > "$OUT/$algo-s$seed.log" 2>&1
}
mkdir -p "$OUT"
run admpo 0 "${MODEL[@]}" & run mbpo 0 "${MODEL[@]}" & wait
run admpo 1 "${MODEL[@]}" & run mbpo 1 "${MODEL[@]}" & wait
run sac 0 & run sac 1 & wait
echo "done: $OUT"

#!/usr/bin/env bash
# The quickstart runs at seed 0 on one core, then one line per output file with its sha256 (time columns
# dropped): run it before and after a refactor and diff the two listings. Usage:
#   benchmarks/quickstart_fingerprint.sh OUT_DIR > fingerprint.txt
set -euo pipefail
out=${1:?usage: quickstart_fingerprint.sh OUT_DIR}
admpo=(${ADMPO:-.venv/bin/admpo})
one=(taskset -c 0)
mkdir -p "$out"
q() { "${one[@]}" "${admpo[@]}" "$@" >>"$out/log.txt" 2>&1; }
q train-off --preset quickstart-hopper --run "$out/admpo" --seed 0
q train-off --preset quickstart-hopper --run "$out/mopo" --algo mopo --seed 0
q train-off --preset quickstart-hopper --run "$out/ablation" --model ensemble --seed 0
q train-bc --preset quickstart-hopper --run "$out/bc" --seed 0
q fit-model --run "$out/admpo" --model ensemble
q fit-model --run "$out/admpo" --model bootrnn
q eval-compounding --run "$out/admpo"
q eval-uncertainty --run "$out/admpo"
q train-on --preset quickstart-hopper-online --run "$out/online" --seed 0
q train-on --preset quickstart-hopper-online --run "$out/online-mbpo" --algo mbpo --seed 0
q train-on --preset quickstart-hopper-online --run "$out/online-sac" --algo sac --seed 0
q train-off --preset quickstart-walker2d --run "$out/walker" --seed 0
# numbers only: drop wall-clock columns and fields, then hash
for f in $(cd "$out" && find . -name 'metrics.csv' -o -name 'fit.csv' -o -name 'compounding.csv' \
           -o -name 'uncertainty.csv' | sort); do
  python3 - "$out/$f" "$f" <<'PY'
import csv, hashlib, sys
rows = list(csv.reader(open(sys.argv[1])))
head = rows[0]
clock = lambda h: h in ("time", "seconds") or h.endswith(("_s", "tps"))  # wall-clock columns  # noqa: E731
keep = [i for i, h in enumerate(head) if not clock(h)]
text = "\n".join(",".join(r[i] for i in keep if i < len(r)) for r in rows)
print(sys.argv[2], hashlib.sha256(text.encode()).hexdigest()[:16], len(rows) - 1, "rows")
PY
done

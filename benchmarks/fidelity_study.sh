#!/usr/bin/env bash
# The fidelity study (docs/results/fidelity/) at default scale (cheetah-vel, standard split,
# 2 CPU cores): learning curves of MACAW and MT+FT (3 seeds, 10k meta-steps) and the ablation
# of each authors'-code detail (3 seeds, 3000 meta-steps). Needs the default cheetah-vel buffers:
#   snakemake --cores 2 results/splits/cheetah-vel/standard.json \
#     $(for t in $(seq -w 0 39); do echo results/buffers/cheetah-vel/task$t.h5; done)
# Runs land in results/study/; `macaw summary` then aggregates them. Sequential on purpose:
# two torch jobs on 2 cores run 5-20x slower. The curves alone, longer (20k steps,
# docs/results/curves_20k/):
#   OUT=results/study20k CURVE_STEPS=20000 ABLATIONS=0 benchmarks/fidelity_study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/study}
SEEDS=${SEEDS:-"0 1 2"}
CURVE_STEPS=${CURVE_STEPS:-10000}   # MACAW and MT+FT
ABLATIONS=${ABLATIONS:-1}          # 0: the curves only
BASE='"window_episodes": 50, "inner_window": "good", "outer_window": "good", "eval_every": 500, "checkpoint_every": 500'
run() {  # name method seed steps extra-json
  local dir="$OUT/$1/seed$3"
  [ -f "$dir/eval.csv" ] && grep -q "^$4," "$dir/eval.csv" && return 0
  echo "$(date -u +%H:%M:%S) start $1 seed $3 ($4 steps)"
  /usr/bin/time -f "$1 seed$3: %e s" macaw meta-train --family cheetah-vel \
    --split results/splits/cheetah-vel/standard.json --buffers-dir results/buffers/cheetah-vel \
    --method "$2" --seed "$3" --threads 2 --no-progress --run-dir "$dir" \
    --params "{$BASE, \"steps\": $4 $5}"
}
for seed in $SEEDS; do
  run macaw macaw "$seed" "$CURVE_STEPS" ""
  run mt_ft mt_ft "$seed" "$CURVE_STEPS" ""
  [ "$ABLATIONS" = 1 ] || continue
  run macaw-uniform-init macaw "$seed" 3000 ', "macaw": {"wt_init": "uniform"}'
  run macaw-no-bootstrap macaw "$seed" 3000 ', "macaw": {"bootstrap": false}'
  run macaw-stride1 macaw "$seed" 3000 ', "outer_stride": 1, "inner_stride": 1'
  run macaw-window-all macaw "$seed" 3000 ', "inner_window": "all", "outer_window": "all"'
done
echo "$(date -u +%H:%M:%S) done"

#!/bin/bash
# docs/results/walker_tasks20/: the default's 5 walker training tasks (split train5.json there:
# train [0, 1, 3, 4, 5], the standard test tasks) meta-trained on the 20-task build's buffers,
# with exactly the parameters Snakemake gave the standard runs. Run from the checkout that built
# them, after copying docs/results/walker_tasks20/train5.json to results/splits/walker-params/.
set -euo pipefail
P='{"steps": 2000, "eval_every": 250, "checkpoint_every": 250, "eval_episodes": 3, "window_episodes": 50, "inner_window": "good", "outer_window": "good", "outer_stride": 7, "inner_stride": 7, "macaw": {}, "mt_ft": {"value_lr": 1e-05, "adapt_value_lr": 1e-05}}'
run() {  # METHOD SEED
  mkdir -p results/logs/train5
  macaw meta-train --family walker-params --split results/splits/walker-params/train5.json \
    --buffers-dir results/buffers/walker-params --method "$1" --seed "$2" --params "$P" --threads 2 \
    --run-dir "results/runs/walker-params/train5/$1/seed$2" --restart-on-config-change \
    > "results/logs/train5/$1_seed$2.log" 2>&1
}
for s in 0 1 2; do run macaw "$s"; run mt_ft "$s"; done

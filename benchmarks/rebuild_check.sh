#!/usr/bin/env bash
# Behaviour unchanged by a refactor: re-run three validity runs that older code made on this
# machine's default cheetah-vel data (sparse3 MACAW and MT+FT, seed 0; Meta-BC's memorisation
# check, seed 0), with the current code and the same single torch thread, and compare their
# eval.csv and train.csv byte for byte. Run from the checkout that holds the validity study's
# runs (results/studies/validity/, docs/results/validity/README.md); writes results/rebuild_check/.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${OLD:-results/studies/validity}
NEW=results/rebuild_check
P='{"steps": 2000, "eval_every": 250, "checkpoint_every": 250, "eval_episodes": 3, "window_episodes": 50, "inner_window": "good", "outer_window": "good", "outer_stride": 7, "inner_stride": 7, "macaw": {}}'
run() {  # METHOD SPLIT_FILE OLD_RUN NEW_RUN [extra args]
  macaw meta-train --family cheetah-vel --split "$2" --buffers-dir results/buffers/cheetah-vel \
    --method "$1" --seed 0 --threads 1 --no-progress --run-dir "$NEW/$4" --params "$P" "${@:5}" \
    > "$NEW/$1.log" 2>&1
  for f in eval.csv train.csv; do
    if cmp -s "$NEW/$4/$f" "$OLD/$3/$f"; then echo "$1 $f: identical"; else echo "$1 $f: DIFFERS"; fi
  done
}
mkdir -p "$NEW"
run macaw results/splits/cheetah-vel/sparse3.json sparse3/macaw/seed0 sparse3/macaw/seed0
run mt_ft results/splits/cheetah-vel/sparse3.json sparse3/mt_ft/seed0 sparse3/mt_ft/seed0
run meta_bc "$OLD/splits/sparse3-memorise.json" sparse3/meta_bc-memorise/seed0 \
  sparse3/meta_bc-memorise/seed0 --memorisation-check

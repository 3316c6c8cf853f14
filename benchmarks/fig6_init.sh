#!/usr/bin/env bash
# Fig. 6 before / after the authors' WT initialisation (docs/results/fig6_init/): the default
# few-shot study (`snakemake results/fig6.pdf`, WT with the authors' init, No-WT equal width /
# params, 3 seeds) plus the WT model with our earlier z ~ U(-1, 1) init, on the same tasks and seeds.
# Writes docs/results/fig6_init/{fig6_init.pdf,fig6_init.csv}.
set -euo pipefail
cd "$(dirname "$0")/.."
snakemake --cores 2 results/fig6.pdf
PARAMS=$(python -c "import json, yaml; print(json.dumps(yaml.safe_load(open('config/config.yaml'))['fewshot']['params']))")
OUT=docs/results/fig6_init
mkdir -p "$OUT" results/fewshot/wt_uniform
RUNS=()
for seed in 0 1 2; do
  csv=results/fewshot/wt_uniform/seed$seed.csv
  [ -f "$csv" ] || macaw fewshot --variant wt --seed "$seed" --threads 2 --no-progress \
    --params "$(python -c "import json,sys; p=json.loads(sys.argv[1]); p['wt_init']='uniform'; print(json.dumps(p))" "$PARAMS")" \
    --out "$csv"
  RUNS+=(--run "WT, z ~ U(-1, 1) init (before)" "$seed" "$csv")
  for v in wt nowt_width nowt_params; do
    label=$(python -c "from macaw.fewshot import VARIANT_LABELS as L; print(L['$v'])")
    RUNS+=(--run "$label" "$seed" "results/fewshot/$v/seed$seed.csv")
  done
done
macaw plot-fig6 "${RUNS[@]}" --pdf "$OUT/fig6_init.pdf" --csv "$OUT/fig6_init.csv"

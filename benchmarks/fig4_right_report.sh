#!/usr/bin/env bash
# Fig. 4 right at the default scale, 3 seeds, from an empty results/: build it, then copy the
# small files that back the README's numbers to docs/results/fig4_right/ (figure, CSV, every
# run's eval.csv and config.yaml, a summary with IQM / 95 % CIs / P(MACAW better) per split).
#
#   benchmarks/fig4_right_report.sh build     # snakemake results/fig4_right.pdf --cores 8, timed
#   benchmarks/fig4_right_report.sh collect   # results/ -> docs/results/fig4_right/
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs/results/fig4_right}
RUNS=results/runs/cheetah-vel

case "${1:-}" in
build)
    start=$(date +%s)
    snakemake results/fig4_right.pdf --cores 8
    echo "wall clock: $(( $(date +%s) - start )) s"
    ;;
collect)
    mkdir -p "$OUT/runs"
    cp results/fig4_right.pdf results/fig4_right.csv "$OUT/"
    args=()
    for split in standard sparse20 sparse10 sparse5 sparse3; do
        for method in macaw mt_ft pearl; do
            case $method in macaw) label=MACAW ;; mt_ft) label="Offline MT+FT" ;;
                            pearl) label="Offline PEARL" ;; esac
            for dir in "$RUNS/$split/$method"/seed*; do
                seed=${dir##*seed}
                dest="$OUT/runs/$split/$method/seed$seed"
                mkdir -p "$dest"
                cp "$dir/eval.csv" "$dir/config.yaml" "$dest/"
                args+=(--run cheetah-vel "$split" "$label" "$seed" "$dir/eval.csv")
            done
        done
    done
    macaw summary "${args[@]}" --last 3 --csv "$OUT/summary.csv" --md "$OUT/summary.md"
    ;;
*)
    echo "usage: $0 build|collect" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# One figure at the default scale: build it (timed), then copy the small files that back the
# README's numbers to docs/results/<figure>/ (the figure and its CSV, every run's eval.csv and
# config.yaml, a summary with IQM / mean / 95 % CIs / adaptation gain / P(MACAW better)).
#
#   benchmarks/figure_report.sh build     FIGURE [--configfile FILE] # snakemake results/FIGURE.pdf
#   benchmarks/figure_report.sh collect   FIGURE                     # results/ -> $OUT, summarise
#   benchmarks/figure_report.sh summarise FIGURE                     # $OUT/runs -> $OUT/summary.*
#
# collect copies the figure's runs (each seed found) to OUT (default docs/results/FIGURE), then
# summarises them; summarise re-derives the summary from the copied runs alone (the committed
# eval.csv files), e.g. after a change to `macaw summary`. The runs are the figure's entry in the
# results registry (macaw/results.py) under CONFIGFILE (default config/config.yaml), or, when
# any of FAMILIES / SPLITS / METHODS is set, their product (defaults cheetah-vel, standard,
# "macaw mt_ft"); e.g. Fig. 3 on two families:
#   FAMILIES="ant-dir walker-params" METHODS="macaw pearl mt_ft meta_bc" \
#       benchmarks/figure_report.sh collect fig3
# A run of Fig. 4 left's other data windows is METHOD-WINDOW (macaw-bad); it is summarised
# under the split "standard, bad data", so that P(MACAW better) compares methods on the same
# window.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}; figure=${2:-}
[[ -n $figure ]] || { echo "usage: $0 build|collect|summarise FIGURE [snakemake args]" >&2; exit 2; }
shift 2
OUT=${OUT:-docs/results/$figure}

runs() {  # FAMILY/SPLIT/METHOD of every run: FAMILIES x SPLITS x METHODS when one is set,
          # else the figure's runs in the results registry (macaw/results.py)
    local family split method
    if [[ -n ${FAMILIES:-}${SPLITS:-}${METHODS:-} ]]; then
        for family in ${FAMILIES:-cheetah-vel}; do
            for split in ${SPLITS:-standard}; do
                for method in ${METHODS:-macaw mt_ft}; do echo "$family/$split/$method"; done
            done
        done
    else
        python -m macaw.results --runs "$figure" --config "${CONFIGFILE:-config/config.yaml}"
    fi
}

run_dirs() {  # FAMILY/SPLIT/METHOD/seedN of every run found under $1
    local run dir
    while read -r run; do
        for dir in "$1/$run"/seed*; do
            if [[ -d $dir ]]; then echo "${dir#"$1"/}"; fi
        done
    done < <(runs)
}

case $mode in
build)
    start=$(date +%s)
    snakemake "results/$figure.pdf" --cores 8 "$@"
    echo "wall clock: $(( $(date +%s) - start )) s"
    ;;
collect)
    mkdir -p "$OUT/runs"
    cp "results/$figure.pdf" "results/$figure.csv" "$OUT/"
    while read -r run; do
        mkdir -p "$OUT/runs/$run"
        cp "results/runs/$run/eval.csv" "results/runs/$run/config.yaml" "$OUT/runs/$run/"
    done < <(run_dirs results/runs)
    exec "$0" summarise "$figure"
    ;;
summarise)
    args=()
    declare -A labels=()
    while IFS=/ read -r family split method seed; do
        base=${method%%-*}
        [[ -v "labels[$base]" ]] || labels[$base]=$(python -c \
            "from macaw.algos.registry import labels; print(labels()['$base'])")
        where=$split
        [[ $method == "$base" ]] || where="$split, ${method#*-} data"
        args+=(--run "$family" "$where" "${labels[$base]}" "${seed#seed}"
               "$OUT/runs/$family/$split/$method/$seed/eval.csv")
    done < <(run_dirs "$OUT/runs")
    (( ${#args[@]} )) || { echo "no runs of $figure under $OUT/runs" >&2; exit 1; }
    common=()    # Fig. 4 right: its sparse splits again, on the test tasks they all share
    [[ $figure != fig4_right ]] ||
        read -ra common < <(echo --common-splits $(runs | cut -d/ -f2 | grep '^sparse' | sort -u))
    macaw summary "${args[@]}" "${common[@]}" --last 3 --csv "$OUT/summary.csv" \
        --md "$OUT/summary.md"
    ;;
*)
    echo "usage: $0 build|collect|summarise FIGURE [snakemake args]" >&2
    exit 2
    ;;
esac

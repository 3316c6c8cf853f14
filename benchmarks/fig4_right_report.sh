#!/usr/bin/env bash
# Fig. 4 right at the default scale: benchmarks/figure_report.sh for fig4_right (its splits and
# methods from macaw/results.py); docs/results/fig4_right/README.md has the commands that made the
# files there.
#
#   benchmarks/fig4_right_report.sh build     # snakemake results/fig4_right.pdf --cores 8, timed
#   benchmarks/fig4_right_report.sh collect   # results/ -> docs/results/fig4_right/
#   benchmarks/fig4_right_report.sh summarise # docs/results/fig4_right/runs -> its summary
set -euo pipefail
exec "$(dirname "$0")/figure_report.sh" "${1:-}" fig4_right "${@:2}"

#!/usr/bin/env bash
# Run by `snakemake --sdm conda` inside the environment of workflow/envs/macaw.yaml, once, from the
# repository root: install this project and the dependencies pyproject.toml lists.
set -euo pipefail
test -f pyproject.toml || { echo "macaw.post-deploy.sh: run from the repository root" >&2; exit 1; }
python -m pip install -e ".[cluster]"

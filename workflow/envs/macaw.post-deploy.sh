#!/usr/bin/env bash
# Run by `snakemake --sdm conda` inside the environment of workflow/envs/macaw.yaml, once, from the
# working directory: install this project and the dependencies pyproject.toml lists. The working
# directory is the repository root, or a folder inside it (`--directory .test`, the catalog's
# test run), so the nearest pyproject.toml above it is this project's.
set -euo pipefail
while [ ! -f pyproject.toml ] && [ "$PWD" != / ]; do cd ..; done
test -f pyproject.toml || { echo "macaw.post-deploy.sh: run inside the repository" >&2; exit 1; }
python -m pip install -e ".[cluster]"

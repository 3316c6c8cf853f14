"""dvc.yaml's deps are complete: every module a stage's code imports is one of its deps.

Derived by importing, not from a list kept here: for each stage, the Python modules it names
in its deps (plus ``macaw/cli.py``, through which every rule runs) are imported in a fresh
interpreter, and every ``macaw`` module that import loads must lie under one of the stage's
deps. So adding ``from macaw.x import y`` to a stage's code without adding ``macaw/x.py`` to
the stage fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _module_names(dep: str) -> list[str]:
    path = REPO / dep
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.suffix == ".py" else []
    names = []
    for f in files:
        parts = list(f.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _imported_files(modules: list[str]) -> list[str]:
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(getattr(v, '__file__', None) or '' for k, v in "
            "sys.modules.items() if k == 'macaw' or k.startswith('macaw.'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True, env={"MPLBACKEND": "Agg", "PATH": ""})
    return [str(Path(f).resolve().relative_to(REPO)) for f in json.loads(out.stdout) if f]


def _workflow_modules() -> list[str]:
    """The ``macaw`` modules the workflow's rule files import at their top level (the
    registries and config helpers that decide the DAG when Snakemake parses it)."""
    import re

    return sorted({m for f in sorted((REPO / "workflow").rglob("*.smk"))
                   for m in re.findall(r"^from (macaw[\w.]*) import", f.read_text(), re.M)})


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_a_stage_imports_is_a_dep(stage):
    deps = [d for d in STAGES[stage]["deps"] if not d.startswith("results/")]
    entries = [m for d in deps + ["macaw/cli.py"] for m in _module_names(d)]
    if "workflow/Snakefile" in deps:
        entries += _workflow_modules()
    assert entries, f"stage {stage} names no Python module in its deps"
    imported = _imported_files(entries)
    covered = [d.rstrip("/") for d in deps]
    missing = sorted(f for f in imported if f != "macaw/__init__.py" and not any(
        f == d or f.startswith(d + "/") for d in covered))
    assert not missing, f"dvc.yaml stage {stage!r}: deps lack modules its code imports: {missing}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_snakemake_stage_depends_on_the_workflow_it_runs(stage):
    if not STAGES[stage]["cmd"].startswith("snakemake"):
        pytest.fail(f"stage {stage} does not run snakemake; extend this test")
    deps = set(STAGES[stage]["deps"])
    assert {"workflow/Snakefile", "workflow/rules/common.smk", "macaw/cli.py"} <= deps, \
        f"dvc.yaml stage {stage!r}: deps {sorted(deps)}"

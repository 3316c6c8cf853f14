"""`dvc repro` on the smoke config in a temporary repository, then a round trip of every
output through a local DVC remote (push, delete, pull, identical hashes, and Snakemake finds
nothing to do once the pulled files are touched), then two experiments that differ in one param
compared with `dvc metrics diff` and `dvc plots diff`."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, repo_env

pytestmark = pytest.mark.workflow
PROJECT_FILES = ("workflow", "config", "macaw", "dvc.yaml", "environment.yml")


def run(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=repo_env(), text=True, capture_output=True,
                          timeout=1800)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def tracked_outputs(work: Path) -> list[Path]:
    stages = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
    outs = [next(iter(o)) if isinstance(o, dict) else o
            for stage in stages.values() for o in stage["outs"]]
    return [work / o for o in outs]


def test_dvc_repro_and_remote_round_trip(tmp_path):
    work = tmp_path / "repo"
    work.mkdir()
    for name in PROJECT_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, work / name)
    # The smoke scale stands in for the default config that dvc.yaml reads its params from.
    shutil.copy(work / "config" / "smoke.yaml", work / "config" / "config.yaml")
    shutil.copy(REPO / ".gitignore", work / ".gitignore")
    run(work, "git", "init", "-q")
    run(work, "git", "config", "user.email", "ci@example.invalid")
    run(work, "git", "config", "user.name", "ci")
    run(work, "dvc", "init", "-q")
    run(work, "dvc", "config", "core.analytics", "false")
    run(work, "dvc", "repro")

    outs = tracked_outputs(work)
    figures = {f"{name}.{ext}" for name in ("fig3", "fig4_left", "fig4_center", "fig4_right",
                                            "fig5", "fig6", "fig7", "fig8", "fig9")
               for ext in ("pdf", "csv")} | {"table1.csv", "table1.md", "summary.csv",
                                              "summary.md", "diagnostics.pdf",
                                              "diagnostics.csv"}
    assert {o.name for o in outs} == {"behaviour", "buffers", "splits", "runs", "online",
                                      "fewshot"} | figures
    assert len(list((work / "results" / "buffers").glob("*/task*.h5"))) == 15  # ml45: 4
    before = {o.name: tree_hashes(o) if o.is_dir() else hashlib.md5(o.read_bytes()).hexdigest()
              for o in outs}
    # summary.json is the figures stage's metrics file: `dvc metrics show` reads it.
    assert "MACAW" in run(work, "dvc", "metrics", "show")
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"buffers", "splits", "meta_train", "fewshot", "figures"}
    assert lock["stages"]["buffers"]["params"]["config/config.yaml"]["seed"] == 0

    # Nothing changed since repro: every stage is up to date.
    assert "up to date" in run(work, "dvc", "status").lower()

    remote = tmp_path / "remote"
    run(work, "dvc", "remote", "add", "-d", "local", str(remote))
    run(work, "dvc", "push")
    assert any(p.is_file() for p in remote.rglob("*"))

    # A fresh machine: no results, no DVC cache, no Snakemake metadata.
    shutil.rmtree(work / "results")
    shutil.rmtree(work / ".dvc" / "cache")
    shutil.rmtree(work / ".snakemake")
    run(work, "dvc", "pull")
    after = {o.name: tree_hashes(o) if o.is_dir() else hashlib.md5(o.read_bytes()).hexdigest()
             for o in outs}
    assert after == before
    # The pulled files' mtimes are the order DVC wrote them in, not the DAG's (docs/usage.md
    # "DVC"): `snakemake --touch` puts them in order, and then nothing is out of date.
    run(work, "snakemake", "--touch", "--cores", "1")
    assert "Nothing to be done" in run(work, "snakemake", "-n", "--cores", "1")
    assert {o.name: tree_hashes(o) if o.is_dir() else hashlib.md5(o.read_bytes()).hexdigest()
            for o in outs} == before

    # Two experiments that differ in one param (the number of last evaluations a final score
    # averages): only the figures stage reruns, and the diffs show the summary and Fig. 4 right.
    run(work, "git", "add", "-A")
    run(work, "git", "commit", "-qm", "smoke")
    for name, last in (("last1", 1), ("last2", 2)):
        run(work, "dvc", "exp", "run", "-n", name, "-S",
            f"config/config.yaml:meta_training.final_evals={last}")
    diff = json.loads(run(work, "dvc", "metrics", "diff", "last1", "last2", "--json"))
    changed = diff["results/summary.json"]
    assert changed and all(v["old"] != v["new"] for v in changed.values())
    plots = json.loads(run(work, "dvc", "plots", "diff", "last1", "last2", "--json"))
    sparsity = next(v for k, v in plots["data"].items() if "Fig. 4 right" in k)
    rows = [row for plot in sparsity for row in plot["content"]["data"]["values"]]
    by_rev = {rev: sorted(r["mean_return"] for r in rows if r["rev"] == rev)
              for rev in ("last1", "last2")}
    assert all(by_rev.values()) and by_rev["last1"] != by_rev["last2"]

"""The SLURM profile against a real SLURM: a single-node cluster on localhost
(tests/slurm/start-cluster.sh, which .ci/run starts) runs a subset of the smoke DAG through
Snakemake's SLURM executor plugin with `--profile profiles/slurm`, the account the only line
changed; `sacct` then says where each job ran and what it asked for."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
import yaml

from conftest import REPO, repo_env
from macaw.resources import behaviour_mem_mb
from test_workflow import copy_workflow, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]
ACCOUNT = "macaw"            # made by tests/slurm/start-cluster.sh
START = "bash tests/slurm/start-cluster.sh"


def cluster_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%P %t"], capture_output=True, text=True)
    return proc.returncode == 0 and "gpu" in proc.stdout


@pytest.fixture(scope="module")
def slurm_build(tmp_path_factory):
    """Walker-params at smoke scale, seed 0, through SLURM: behaviour, 2 buffer exports, the
    split, the four Fig. 3 meta-training runs and the figure."""
    if not cluster_up():
        if os.environ.get("CI"):
            pytest.fail(f"no SLURM cluster under CI: .ci/run must run `{START}` first")
        pytest.skip(f"no SLURM cluster here; start one (as root) with `{START}`")
    work = copy_workflow(tmp_path_factory.mktemp("slurm"))
    profile = work / "profiles" / "slurm" / "config.yaml"
    text = profile.read_text()
    assert 'slurm_account: "your_account"' in text
    profile.write_text(text.replace('slurm_account: "your_account"', f'slurm_account: "{ACCOUNT}"'))
    smoke = yaml.safe_load((work / "config" / "smoke.yaml").read_text())
    walker = {"families": {"walker-params": smoke["families"]["walker-params"]},
              "meta_training": {"seeds": [0], "online_seeds": [0],
                                "method_seeds": {"macaw_nowt_params": [0]}}}
    (work / "config" / "walker.yaml").write_text(yaml.safe_dump(walker))
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    start = time.monotonic()
    snakemake(work, "results/fig3.pdf", "--profile", "profiles/slurm", "--jobs", "4",
              "--latency-wait", "10", "--configfile", "config/smoke.yaml", "config/walker.yaml")
    wall = time.monotonic() - start
    sacct = subprocess.run(
        ["sacct", "-X", "-P", "-n", "-S", since, "-o", "Comment%200,Partition,Account,ReqTRES%200,State"],
        capture_output=True, text=True, check=True, env=repo_env()).stdout
    jobs = [dict(zip(("comment", "partition", "account", "tres", "state"), line.split("|")))
            for line in sacct.splitlines() if line.startswith("rule_")]
    print(f"SLURM build: {len(jobs)} jobs in {wall:.0f} s")
    return work, smoke, jobs


def _tres(job) -> dict[str, str]:
    return dict(item.split("=", 1) for item in job["tres"].split(",") if "=" in item)


def test_the_figure_is_built_through_slurm(slurm_build):
    work, _, jobs = slurm_build
    assert (work / "results" / "fig3.pdf").stat().st_size > 0
    rules = sorted(j["comment"].split("_wildcards")[0] for j in jobs)
    assert rules.count("rule_meta_train") == 4 and rules.count("rule_train_behaviour") == 1
    assert rules.count("rule_export_buffer") == 2 and "rule_curves_figure" in rules
    assert all(j["state"] == "COMPLETED" and j["account"] == ACCOUNT for j in jobs), jobs


def test_meta_training_goes_to_the_gpu_partition_with_a_gpu(slurm_build):
    _, _, jobs = slurm_build
    for job in jobs:
        if job["comment"].startswith("rule_meta_train"):
            assert job["partition"] == "gpu" and _tres(job).get("gres/gpu") == "1", job
        else:
            assert job["partition"] == "cpu" and "gres/gpu" not in _tres(job), job


def test_behaviour_gets_its_threads_and_the_memory_its_data_needs(slurm_build):
    _, smoke, jobs = slurm_build
    behaviour = next(j for j in jobs if j["comment"].startswith("rule_train_behaviour"))
    spec = smoke["families"]["walker-params"]
    want = behaviour_mem_mb("walker-params", len(spec["tasks"]), spec["behaviour"]["steps"])
    tres = _tres(behaviour)
    assert tres["cpu"] == "8"                                   # profiles/slurm set-threads
    assert tres["mem"] == f"{want}M", tres

"""The Snakemake workflow catalog's conventions (docs/usage.md "Workflow conventions"): the
catalog's test config is CI's smoke config and complete on its own, every rule keeps its log
the same one way, and the rule files are snakefmt-clean. Seconds: nothing here runs a job."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import pytest
import yaml
from snakemake.utils import update_config

from conftest import REPO

RULE_FILES = [REPO / "workflow" / "Snakefile",
              *sorted((REPO / "workflow" / "rules").glob("*.smk"))]


def test_the_catalogs_test_config_is_cis_smoke_config():
    assert (REPO / ".test" / "config" / "config.yaml").samefile(REPO / "config" / "smoke.yaml")


def test_the_smoke_config_is_complete_on_its_own():
    """`snakemake --directory .test` reads .test/config/config.yaml alone, where CI's
    `--configfile config/smoke.yaml` merges it over config/config.yaml (its `families`
    replacing the default's): both must give the same config, so smoke.yaml has every key."""
    smoke = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    merged = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(merged, copy.deepcopy(smoke))
    merged["families"] = smoke["families"]
    assert merged == smoke


def test_every_rule_tees_its_output_into_its_log():
    """One way to keep logs: `CMD 2>&1 | tee {log}` (the terminal shows the job's output and the
    log keeps it; Snakemake's `set -o pipefail` keeps CMD's exit status)."""
    for path in RULE_FILES:
        text = path.read_text()
        for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n|\n)+)", text, re.M):
            if "    shell:" not in body:
                continue
            assert "    log:" in body, f"{path.name}: rule {rule} has no log"
            shell = body.split("    shell:", 1)[1]
            assert shell.rstrip().endswith('2>&1 | tee {log}"'), f"{path.name}: rule {rule}"
            assert "> {log}" not in shell, f"{path.name}: rule {rule}"


def test_the_rule_files_are_snakefmt_clean():
    pytest.importorskip("snakefmt")
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *map(str, RULE_FILES)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr

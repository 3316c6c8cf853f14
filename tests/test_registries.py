"""The two registries: a figure is one entry of macaw/results.py, a method (even a baseline with
a config section of its own) one entry of macaw/algos/registry.py; dvc.yaml agrees with the
results registry; the registries and `macaw --help` import no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import yaml

from conftest import REPO, repo_env
from macaw.results import RESULTS, dvc_plots, get_result, missing_family, runs

FAMILIES = {"cheetah-vel": {"splits": ["standard", "sparse5", "sparse3"]},
            "ant-dir": {"splits": ["standard"]}}


def test_runs_follow_the_entry_panels_windows_and_splits():
    fig4_left = runs(get_result("fig4_left"), FAMILIES, lambda f, s: 0, "good")
    assert [(r.panel, r.run_method) for r in fig4_left] == [
        ("bad data", "macaw-bad"), ("bad data", "macaw_noadv-bad"),
        ("medium data", "macaw-medium"), ("medium data", "macaw_noadv-medium"),
        ("good data", "macaw"), ("good data", "macaw_noadv")]
    # Fig. 4 right: only the config's splits, panels sized by the split's training tasks.
    right = runs(get_result("fig4_right"), FAMILIES, lambda f, s: {"standard": 35}.get(s, 3),
                 "good")
    assert [(r.panel, r.split, r.method) for r in right][::3] == [
        ("35", "standard", "macaw"), ("3", "sparse5", "macaw"), ("3", "sparse3", "macaw")]
    fig3 = runs(get_result("fig3"), FAMILIES, lambda f, s: 0, "good")
    assert [r.family for r in fig3] == ["cheetah-vel"] * 4 + ["ant-dir"] * 4
    assert runs(get_result("fig7"), FAMILIES, lambda f, s: 0, "good") == []
    assert missing_family(get_result("fig7"), FAMILIES) == "ml45"
    assert missing_family(get_result("fig3"), {"ml45": {}}).startswith("one of cheetah-dir")


def test_dvc_yaml_agrees_with_the_results_registry():
    """Every registered plot is dvc.yaml's, and the figures stage builds and outputs exactly the
    registry's results of that stage (fig6 is the few-shot stage's)."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    plots = [{k: v for k, v in next(iter(p.values())).items() if k in ("x", "y")}
             for p in dvc["plots"]]
    assert sorted(map(json.dumps, plots)) == sorted(map(json.dumps, dvc_plots()))
    for stage in ("figures", "fewshot"):
        expected = {f"results/{r.id}.{ext}" for r in RESULTS.values() if r.dvc_stage == stage
                    for ext in r.outputs}
        declared = dvc["stages"][stage]["outs"] + dvc["stages"][stage].get("metrics", [])
        outs = {o if isinstance(o, str) else next(iter(o)) for o in declared}
        assert expected <= outs, expected - outs
        targets = {f"results/{r.id}" for r in RESULTS.values() if r.dvc_stage == stage}
        assert {t.rsplit(".", 1)[0] for t in dvc["stages"][stage]["cmd"].split()
                if t.startswith("results/")} == targets


def test_a_curve_figure_is_one_registry_entry(tmp_path):
    """One entry appended to macaw/results.py (in a copy of the project): `rule all` asks for
    the figure, its runs (here Meta-BC on the medium window, which no other figure has) are
    meta-trained, plot-curves draws them with its title, and they enter the summary."""
    for name in ("workflow", "config", "macaw"):
        shutil.copytree(REPO / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "macaw" / "results.py", "a") as f:
        f.write(textwrap.dedent('''
            RESULTS["fig_new"] = Result("fig_new", "curves", "A new figure", ABLATIONS,
                                        ("cheetah-vel",), ("macaw", "meta_bc"), panel="window",
                                        windows=("medium",), summary=True)
            '''))
    env = {**repo_env(), "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(["snakemake", "-n", "-p", "--forceall", "--configfile",
                           "config/smoke.yaml"], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    plot = [line for line in lines if "macaw plot-curves" in line and "'A new figure'" in line]
    assert len(plot) == 1, proc.stdout[-3000:]
    assert "results/fig_new.pdf" in plot[0] and "--run 'medium data' Meta-BC 0" in plot[0]
    for method in ("macaw-medium", "meta_bc-medium"):
        assert f"results/runs/cheetah-vel/standard/{method}/seed0/eval.csv" in plot[0]
    assert any("macaw meta-train" in line and "meta_bc-medium" in line for line in lines)
    summary = [line for line in lines if "macaw summary" in line]
    assert len(summary) == 1 and "standard 'Meta-BC (medium data)' 0" in summary[0]


NEW_BASELINE = '''
from macaw.algos.mt_ft import MTFT, MTFTConfig
from macaw.fields import PositiveInt, config_class


@config_class
class NewConfig(MTFTConfig):
    """A new baseline's hyperparameters: MT+FT's and one of its own."""

    note: PositiveInt = 1
    """A field no other section has."""


class NewBaseline(MTFT):
    """A new baseline's learner."""
'''

ADD_AND_RUN = '''
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from macaw.algos import registry
registry.METHODS["new_base"] = registry.MethodSpec(
    "new_base", "New baseline", "new_base", learner="newbase:NewBaseline",
    config="newbase:NewConfig")
from macaw import schema
from macaw.meta_train import MetaTrainConfig, run_meta_training

base = {"family": "cheetah-vel", "method": "new_base", "steps": 2, "eval_every": 2,
        "checkpoint_every": 2, "tasks_per_batch": 1, "outer_batch": 32, "eval_batch": 32, "device": "cpu",
        "outer_stride": 2, "inner_stride": 2}
cfg = MetaTrainConfig.from_dict({**base, "new_base": {"width": 8, "note": 3}})
try:
    MetaTrainConfig.from_dict({**base, "new_base": {"nope": 3}})
    refused = ""
except ValueError as err:
    refused = str(err)
run_dir = Path(sys.argv[1]) / "run"
run_meta_training(cfg, [Path(sys.argv[2])], [Path(sys.argv[3])], run_dir, progress=False)
params = schema.build_schema()["definitions"]["meta_params"]["properties"]
print(json.dumps({"refused": refused,
                  "schema": sorted(params["new_base"]["properties"]),
                  "label": registry.labels()["new_base"]}))
'''


def test_a_baseline_with_its_own_section_is_one_registry_entry(tiny_buffers, tmp_path):
    """A new module and one registry entry, nothing else: the run config gets the section
    (checked against the new config class), the schema lists its fields, the run trains."""
    (tmp_path / "newbase.py").write_text(NEW_BASELINE)
    proc = subprocess.run([sys.executable, "-c", ADD_AND_RUN, str(tmp_path),
                           str(tiny_buffers[3]), str(tiny_buffers[11])],
                          env=repo_env(), text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "section 'new_base': unknown field(s) ['nope']" in out["refused"]
    assert "note" in out["schema"] and "width" in out["schema"]
    assert out["label"] == "New baseline"
    resolved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert resolved["new_base"] == {"width": 8, "note": 3}
    assert resolved["resolved_algorithm"]["note"] == 3
    assert sorted(set(pd.read_csv(tmp_path / "run" / "eval.csv").step)) == [0, 2]


def test_the_registries_and_macaw_help_import_no_torch():
    """`macaw --help` and the registries the workflow reads stay light (torch takes seconds
    to import); the workflow's config check imports the config classes, and torch with them."""
    code = ("import sys, macaw.results, macaw.algos.registry, macaw.cli\n"
            "try:\n    macaw.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], env=repo_env(), text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"

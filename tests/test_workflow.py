"""The Snakemake DAG end to end at smoke scale, lint, and config validation.

Each test runs the workflow in a temporary copy of the project files, so a developer's own
``results/`` is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, repo_env
from macaw.resources import behaviour_mem_mb
from test_export import check_buffer_independently

WORKFLOW_FILES = ("workflow", "config", "profiles", "environment.yml")
pytestmark = pytest.mark.workflow


def copy_workflow(dest: Path) -> Path:
    for name in WORKFLOW_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


def snakemake(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["snakemake", *args], cwd=cwd, env=repo_env(), text=True,
                          capture_output=True, timeout=1800)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """The whole smoke DAG (default target) from an empty results/."""
    work = copy_workflow(tmp_path_factory.mktemp("smoke"))
    snakemake(work, "--cores", "2", "--configfile", "config/smoke.yaml")
    return work


def test_smoke_dag_builds_fig8_and_valid_buffers(smoke_run):
    results = smoke_run / "results"
    assert (results / "fig8.pdf").read_bytes()[:5] == b"%PDF-"
    curves = pd.read_csv(results / "fig8.csv")
    buffers = sorted((results / "buffers").glob("*/task*.h5"))
    # smoke.yaml: cheetah-vel 5 tasks, cheetah-dir 2, ant-dir 2, walker-params 2, ml45 4
    # (ml45 goes to Fig. 9, not Fig. 8).
    assert len(buffers) == 15
    assert curves.groupby("family").task_id.nunique().to_dict() == {
        "ant-dir": 2, "cheetah-dir": 2, "cheetah-vel": 5, "walker-params": 2}
    for path in buffers:
        check_buffer_independently(path, gamma=0.99)
    # Fig. 8's CSV holds exactly the episodes of the buffers: 3 per cheetah task (600 steps).
    assert (curves[curves.family == "cheetah-vel"].groupby("task_id").size() == 3).all()


def test_smoke_dag_builds_fig9_from_the_ml45_buffers(smoke_run):
    results = smoke_run / "results"
    assert (results / "fig9.pdf").read_bytes()[:5] == b"%PDF-"
    fig9 = pd.read_csv(results / "fig9.csv")
    # smoke.yaml: ml45 tasks [0, 1, 45, 46], 1000 steps = two 500-step episodes each.
    assert fig9.groupby(["task_id", "role"]).size().to_dict() == {
        (0, "train"): 2, (1, "train"): 2, (45, "test"): 2, (46, "test"): 2}
    for task, rows in fig9.groupby("task_id"):
        with h5py.File(results / f"buffers/ml45/task{task:02d}.h5") as f:
            np.testing.assert_array_equal(rows.success, f["episode_successes"][()])
            np.testing.assert_allclose(rows["return"], f["episode_returns"][()], rtol=1e-6)
    split = json.loads((results / "splits" / "ml45" / "standard.json").read_text())
    assert (split["train"], split["test"]) == ([0, 1], [45, 46])


def test_smoke_dag_writes_every_split(smoke_run):
    splits = smoke_run / "results" / "splits"
    vel = {p.stem: json.loads(p.read_text()) for p in (splits / "cheetah-vel").glob("*.json")}
    assert sorted(vel) == sorted(["standard", "sparse20", "sparse10", "sparse5", "sparse3",
                                  "extrapolation"])
    # smoke cheetah-vel tasks are [0, 2, 7, 16, 26]
    assert vel["standard"]["test"] == [2, 7, 26] and vel["standard"]["train"] == [0, 16]
    assert vel["sparse20"]["test"] == [7]
    assert vel["extrapolation"] == {**vel["extrapolation"], "train": [0, 2, 7, 16], "test": [26]}
    cheetah_dir = json.loads((splits / "cheetah-dir" / "standard.json").read_text())
    assert cheetah_dir["train"] == cheetah_dir["test"] == [0, 1]


def test_smoke_dag_builds_the_macaw_figures(smoke_run):
    results = smoke_run / "results"
    left = pd.read_csv(results / "fig4_left.csv")
    assert sorted(left.panel.unique()) == ["bad data", "good data", "medium data"]
    assert sorted(left.label.unique()) == ["MACAW", "MAML+AWR (no L_ADV)"]
    # smoke.yaml: 2 seeds, 4 steps evaluated every 2 -> steps 0, 2, 4 per run.
    assert (left.groupby(["panel", "label"]).seed.nunique() == 2).all()
    assert sorted(left.step.unique()) == [0, 2, 4]
    center = pd.read_csv(results / "fig4_center.csv")
    assert sorted(center.label.unique()) == ["MACAW", "No WT, equal params", "No WT, equal width"]
    fig5 = pd.read_csv(results / "fig5.csv")
    assert sorted(fig5.panel.unique()) == ["ant-dir", "cheetah-dir", "cheetah-vel", "walker-params"]
    assert sorted(fig5.label.unique()) == ["MACAW", "No WT, equal width"]   # the paper's caption
    # Each plotted value is the mean over the run's test tasks of its eval.csv.
    run = results / "runs/cheetah-vel/standard/macaw_nowt_width/seed1/eval.csv"
    raw = pd.read_csv(run)
    expected = raw.groupby("step")["return"].mean()
    plotted = center[(center.label == "No WT, equal width") & (center.seed == 1)]
    np.testing.assert_allclose(plotted.set_index("step").mean_return.sort_index(),
                               expected.sort_index())
    assert set(raw.task_id) == {2, 7, 26}
    for name in ("fig4_left", "fig4_center", "fig5"):
        assert (results / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"


def test_smoke_dag_builds_the_comparison_figures_and_table1(smoke_run):
    results = smoke_run / "results"
    fig3 = pd.read_csv(results / "fig3.csv")
    assert sorted(fig3.label.unique()) == ["MACAW", "Meta-BC", "Offline MT+FT", "Offline PEARL"]
    assert sorted(fig3.panel.unique()) == ["ant-dir", "cheetah-dir", "cheetah-vel", "walker-params"]
    assert (fig3.groupby(["panel", "label"]).seed.nunique() == 2).all()
    # Fig. 4 right: x = a split's number of training tasks. Smoke tasks [0, 2, 7, 16, 26]:
    # standard trains on 2 (0, 16), sparse20 on 4 (even ids), sparse10/5/3 on 2 (0, 16).
    right = pd.read_csv(results / "fig4_right.csv")
    splits = {p.stem: json.loads(p.read_text())
              for p in (results / "splits" / "cheetah-vel").glob("sparse*.json")}
    assert {len(s["train"]) for s in splits.values()} == {2, 4}
    assert set(right.train_tasks) == {2, 4}
    assert sorted(right.label.unique()) == ["MACAW", "Offline MT+FT", "Offline PEARL"]
    final = pd.read_csv(results / "runs/cheetah-vel/sparse20/pearl/seed0/eval.csv")
    point = right[(right.label == "Offline PEARL") & (right.seed == 0)
                  & (right.train_tasks == len(splits["sparse20"]["train"]))]
    # The final return: the mean over the last 3 evaluations (smoke: steps 0, 2, 4), on every
    # test task and on the one that every sparse split shares (7: sparse20 tests odd ids,
    # and 7 is its only test task here).
    per_step = final.groupby("step")["return"].mean()
    common = final[final.task_id == 7].groupby("step")["return"].mean()
    assert sorted(right.test_tasks.unique()) == ["all", "common"]
    by_set = point.set_index("test_tasks").mean_return
    np.testing.assert_allclose(by_set["all"], per_step.iloc[-3:].mean())
    np.testing.assert_allclose(by_set["common"], common.iloc[-3:].mean())
    table = pd.read_csv(results / "table1.csv")
    assert sorted(table.method.unique()) == ["MACAW", "Offline PEARL"]
    assert sorted(table.env_steps.unique()) == [0, 200, 400]
    assert (table[table.env_steps == 0].improvement == 0).all()
    assert "| MACAW | 400 |" in (results / "table1.md").read_text()
    for name in ("fig3", "fig4_right"):
        assert (results / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"


def test_smoke_dag_builds_fig7_success_rates_on_ml45(smoke_run):
    results = smoke_run / "results"
    assert (results / "fig7.pdf").read_bytes()[:5] == b"%PDF-"
    fig7 = pd.read_csv(results / "fig7.csv")
    assert sorted(fig7.label.unique()) == ["MACAW", "Offline MT+FT", "Offline PEARL"]
    assert fig7.panel.unique().tolist() == ["ML45 test tasks"]
    assert (fig7.groupby("label").seed.nunique() == 2).all()
    # smoke.yaml's ml45 family_params: 4 steps evaluated every 4 -> steps 0 and 4.
    assert sorted(fig7.step.unique()) == [0, 4]
    assert fig7.mean_success.between(0, 1).all()
    raw = pd.read_csv(results / "runs/ml45/standard/mt_ft/seed1/eval.csv")
    assert list(raw.columns) == ["step", "task_id", "episode", "return", "unadapted_return",
                                 "success"]
    assert set(raw.task_id) == {45, 46} and set(raw.success) <= {0.0, 1.0}
    plotted = fig7[(fig7.label == "Offline MT+FT") & (fig7.seed == 1)].set_index("step")
    np.testing.assert_allclose(plotted.mean_success.sort_index(),
                               raw.groupby("step").success.mean().sort_index())
    # The ML45 runs stay out of the MuJoCo figures.
    for name in ("fig3", "fig5"):
        assert "ML45 test tasks" not in set(pd.read_csv(results / f"{name}.csv").panel)
        assert "ml45" not in set(pd.read_csv(results / f"{name}.csv").panel)


def test_smoke_dag_builds_the_summary_and_the_diagnostics(smoke_run):
    results = smoke_run / "results"
    summary = pd.read_csv(results / "summary.csv")
    vel = summary[(summary.family == "cheetah-vel") & (summary.split == "standard")]
    assert {"MACAW", "Offline MT+FT", "Offline PEARL", "Meta-BC",
            "MACAW (bad data)"} <= set(vel.method)
    assert (vel.seeds == 2).all() and (vel.test_tasks == 3).all()
    assert vel.p_macaw_better.between(0, 1).sum() == len(vel) - 1   # all but MACAW itself
    assert (summary.iqm_low <= summary.iqm + 1e-9).all()
    assert (summary.iqm <= summary.iqm_high + 1e-9).all()
    metrics = json.loads((results / "summary.json").read_text())
    assert set(metrics["cheetah-vel"]["standard"]) == set(vel.method) | {"benchmark"}
    verdict = metrics["cheetah-vel"]["standard"]["benchmark"]
    assert isinstance(verdict["testable"], bool) and verdict["verdict"] == vel.verdict.iloc[0]
    assert "| cheetah-vel | standard | MACAW | 2 × 3 |" in (results / "summary.md").read_text()
    diag = pd.read_csv(results / "diagnostics.csv")
    assert {"adaptation_gain", "adv_coef", "policy_inner_lr",
            "heldout_value_loss_after"} <= set(diag.quantity)
    assert (results / "diagnostics.pdf").read_bytes()[:5] == b"%PDF-"


def test_rerun_has_nothing_to_do(smoke_run):
    proc = snakemake(smoke_run, "--cores", "2", "--configfile", "config/smoke.yaml", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_a_study_overlay_builds_its_runs_and_a_bad_run_fails_before_any_job(smoke_run):
    """A `studies` overlay is built by the `studies` target: each run with the family's and
    method's defaults, the study's params and its own over them; a memorisation run on its own
    training tasks, with test-time steps. A wrong field of a run fails before any job, naming
    the run."""
    study = {"studies": {"probe": {"family": "cheetah-vel", "seeds": [0],
                                   "params": {"steps": 3, "eval_every": 3},
                                   "runs": {"wide": {"method": "mt_ft",
                                                     "params": {"window_episodes": 2}},
                                            "memo": {"method": "macaw", "splits": ["sparse3"],
                                                     "memorisation_check": True,
                                                     "test_time_steps": [1, 2]}}}}}
    (smoke_run / "config" / "probe.yaml").write_text(yaml.safe_dump(study))
    snakemake(smoke_run, "--cores", "2", "studies", "--configfile", "config/smoke.yaml",
              "config/probe.yaml")
    runs = smoke_run / "results" / "studies" / "probe"
    wide = yaml.safe_load((runs / "standard/wide/seed0/config.yaml").read_text())
    assert (wide["window_episodes"], wide["steps"], wide["method"]) == (2, 3, "mt_ft")
    memo = yaml.safe_load((runs / "sparse3/memo/seed0/config.yaml").read_text())
    assert memo["memorisation_check"] and memo["test_tasks"] == memo["train_tasks"]
    assert sorted(pd.read_csv(runs / "sparse3/memo/seed0/eval.csv").step.unique()) == [0, 3]
    steps = pd.read_csv(runs / "sparse3/memo/seed0/test_time_steps.csv")
    assert sorted(steps.test_steps.unique()) == [1, 2]
    study["studies"]["probe"]["runs"]["wide"]["params"] = {"inner_window": "great"}
    (smoke_run / "config" / "bad.yaml").write_text(yaml.safe_dump(study))
    proc = snakemake(smoke_run, "-n", "studies", "--configfile", "config/smoke.yaml",
                     "config/bad.yaml", check=False)
    assert proc.returncode != 0 and "great" in proc.stdout + proc.stderr


def test_the_report_shows_every_figure_and_table_in_the_papers_sections(smoke_run, tmp_path):
    """`snakemake --report` on the smoke results: a zip whose index names every figure and table,
    with its caption and its paper section, plus the rules' runtime statistics."""
    import zipfile

    report = tmp_path / "report.zip"
    snakemake(smoke_run, "--configfile", "config/smoke.yaml", "--report", str(report))
    with zipfile.ZipFile(report) as z:
        names = z.namelist()
        text = "\n".join(z.read(n).decode("utf-8", "replace") for n in names
                         if n.endswith((".html", ".js", ".json")))
    for target in ("fig3", "fig4_left", "fig4_center", "fig4_right", "fig5", "fig6", "fig7",
                   "fig8", "fig9", "diagnostics"):
        assert any(n.endswith(f"/{target}.pdf") for n in names), target
    assert any(n.endswith("/table1.csv") for n in names)
    assert any(n.endswith("/summary.csv") for n in names)
    for category in ("1. Offline data", "2. Offline meta-RL", "3. Ablations",
                     "4. Online fine-tuning", "5. Statistics and diagnostics"):
        assert category in text, category
    assert "Paper Fig. 4, center." in text and "Paper Fig. 7." in text     # per-figure captions
    assert "{% if" not in text and "{{ snakemake" not in text               # rendered
    assert "meta_train" in text and "train_behaviour" in text               # runtime statistics


def _kill_processes_in(work: Path) -> None:
    """SIGKILL every process whose working directory is inside ``work`` (the job a killed
    Snakemake may leave running in its own process group)."""
    for proc in Path("/proc").iterdir():
        try:
            cwd = os.readlink(proc / "cwd")
        except (OSError, ValueError):
            continue
        if proc.name.isdigit() and Path(cwd).is_relative_to(work):
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_killed_build_is_rerun_by_the_readme_commands(smoke_run, tmp_path):
    """Ctrl-C (SIGINT to the foreground process group) while a meta-training job is writing its
    outputs leaves them marked incomplete. The README's plain commands must rerun that job
    (profiles/default sets rerun-incomplete), where Snakemake without the profile refuses."""
    work = tmp_path / "work"
    shutil.copytree(smoke_run, work, symlinks=True)
    # A long run, so that it is surely still running when its first eval.csv appears.
    long = (work / "config" / "smoke.yaml").read_text().replace("    steps: 4\n",
                                                                "    steps: 100000\n", 1)
    (work / "config" / "long.yaml").write_text(long)
    run = work / "results" / "runs" / "cheetah-vel" / "standard" / "mt_ft" / "seed0"
    shutil.rmtree(run)
    target = str((run / "eval.csv").relative_to(work))
    args = (target, "--cores", "1", "--configfile", "config/long.yaml")
    # SIGINT back to its default in the child: a test run started in the background by a
    # non-interactive shell (`nohup pytest &`) inherits SIGINT ignored, and the kill would not land.
    proc = subprocess.Popen(["snakemake", *args], cwd=work, env=repo_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 600
        while not (run / "eval.csv").exists():
            assert proc.poll() is None, "snakemake ended before the run wrote eval.csv"
            assert time.monotonic() < deadline, "no eval.csv after 600 s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _kill_processes_in(work)
    assert (run / "eval.csv").exists()

    refused = snakemake(work, "-n", "--workflow-profile", "none", *args, check=False)
    assert refused.returncode != 0
    assert "IncompleteFilesException" in refused.stdout + refused.stderr

    planned = snakemake(work, "-n", *args)
    out = planned.stdout + planned.stderr
    assert "rule meta_train:" in out and "meta_train        1" in out, out[-3000:]
    assert "Directory cannot be locked" not in out


def test_a_sigkilled_build_recovers_with_the_readme_command(tmp_path):
    """SIGKILL (kill -9, the OOM killer) leaves Snakemake's lock behind, and the plain command
    then stops with LockException. The README's recovery command (its line with --unlock),
    run in a tiny workflow with the project's profiles, must rerun the killed job."""
    recover = next(line.split("#")[0].strip() for line in (REPO / "README.md").read_text()
                   .splitlines() if line.startswith("snakemake --unlock"))
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(REPO / "profiles", work / "profiles")
    (work / "Snakefile").write_text(
        'rule slow:\n    output:\n        "out.txt",\n    shell:\n'
        '        "echo partial > {output}; touch started;"\n'
        '        " while [ ! -e release ]; do sleep 0.1; done; echo done > {output}"\n')
    proc = subprocess.Popen(["snakemake", "--cores", "1"], cwd=work, env=repo_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (work / "started").exists():
            assert proc.poll() is None, "snakemake ended before its job started"
            assert time.monotonic() < deadline, "the job did not start within 120 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)            # Snakemake only: its job is orphaned
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _kill_processes_in(work)                    # no job of the killed run is left
    (work / "release").touch()

    locked = snakemake(work, "--cores", "1", check=False)
    assert locked.returncode != 0 and "LockException" in locked.stdout + locked.stderr
    recovered = subprocess.run(recover, shell=True, cwd=work, env=repo_env(), text=True,
                               capture_output=True, timeout=300)
    assert recovered.returncode == 0, recovered.stdout[-3000:] + recovered.stderr[-3000:]
    assert (work / "out.txt").read_text() == "done\n"


@pytest.mark.parametrize("old, new, message", [
    ("      batch_size: 32\n", "      batch_size: 300\n",
     "behaviour config of 'cheetah-vel': batch_size (300) must not exceed learning_starts (200)"),
    ("    inner_batch: 32\n", "    inner_batch: 400\n",
     "meta-training run ant-dir/macaw: inner_batch is 400, but its inner (good) window holds "
     "at most 300 rows"),
])
def test_fields_that_do_not_fit_together_fail_before_any_job(tmp_path, old, new, message):
    work = copy_workflow(tmp_path)
    smoke = (work / "config" / "smoke.yaml").read_text()
    assert old in smoke
    (work / "config" / "bad.yaml").write_text(smoke.replace(old, new, 1))
    proc = snakemake(work, "-n", "--configfile", "config/bad.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out, out[-3000:]
    assert not (work / "results").exists()


def test_snakemake_lint_is_clean(tmp_path):
    work = copy_workflow(tmp_path)
    proc = snakemake(work, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_bad_config_fails_before_any_job_naming_the_field(tmp_path):
    work = copy_workflow(tmp_path)
    bad = (work / "config" / "smoke.yaml").read_text().replace("steps: 600",
                                                               "steps: many")
    (work / "config" / "bad.yaml").write_text(bad)
    proc = snakemake(work, "--cores", "1", "--configfile", "config/bad.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "'many' is not of type 'integer'" in out and "['behaviour']['steps']" in out
    assert not (work / "results").exists()


def test_a_family_params_typo_fails_before_any_job(tmp_path):
    work = copy_workflow(tmp_path)
    bad = (work / "config" / "smoke.yaml").read_text().replace(
        "  family_params:\n", "  family_params:\n    cheetah-vel: {stepz: 4}\n", 1)
    (work / "config" / "bad.yaml").write_text(bad)
    proc = snakemake(work, "-n", "--configfile", "config/bad.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "stepz" in out
    assert not (work / "results").exists()


def test_slurm_profile_resolves_the_dag(tmp_path):
    work = copy_workflow(tmp_path)
    proc = snakemake(work, "--profile", "profiles/slurm", "--configfile", "config/smoke.yaml",
                     "-n", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs, outputs = {}, {}
    for block in proc.stdout.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        lines = block.splitlines()
        resources = next((line for line in lines if line.strip().startswith("resources:")), "")
        output = next((line for line in lines if line.strip().startswith("output:")), "")
        jobs.setdefault(rule, resources)
        outputs[output] = resources
    assert "slurm_partition=cpu" in jobs["train_behaviour"]
    # Memory comes from the config (macaw/resources.py), not from the profile.
    smoke = yaml.safe_load((work / "config" / "smoke.yaml").read_text())["families"]
    vel = next(r for o, r in outputs.items() if "behaviour/cheetah-vel/chunk0/lifetime.h5" in o)
    want = behaviour_mem_mb("cheetah-vel", len(smoke["cheetah-vel"]["tasks"]),
                            smoke["cheetah-vel"]["behaviour"]["steps"])
    assert f"mem_mb={want}," in vel, vel
    for rule in ("meta_train", "online_finetune"):
        assert "slurm_partition=gpu" in jobs[rule] and "gpu=1" in jobs[rule], (rule, jobs[rule])
        assert "cpus_per_task" not in jobs[rule]       # the plugin then takes the job's threads


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/workstation.yaml",
                                        "config/paper.yaml", "config/reproduce.yaml"])
def test_every_scale_validates_and_resolves_the_dag(tmp_path, configfile):
    work = copy_workflow(tmp_path)
    proc = snakemake(work, "-n", "results/summary.md", "--configfile", configfile, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "summary" in proc.stdout and "meta_train" in proc.stdout


def test_a_custom_config_builds_only_the_families_it_lists(tmp_path):
    """Its `families` replaces the default's (no ml45 or cheetah-vel leaks in); a figure
    that needs a family it left out fails with the family's name."""
    work = copy_workflow(tmp_path)
    smoke = yaml.safe_load((work / "config" / "smoke.yaml").read_text())
    custom = {"families": {"walker-params": smoke["families"]["walker-params"]}}
    (work / "config" / "walker.yaml").write_text(yaml.safe_dump(custom))
    proc = snakemake(work, "-n", "--configfile", "config/smoke.yaml", "config/walker.yaml")
    outputs = [line.split(":", 1)[1] for line in proc.stdout.splitlines()
               if line.strip().startswith("output:")]
    assert any("results/buffers/walker-params/task00.h5" in o for o in outputs)
    assert any("results/fig3.pdf" in o for o in outputs)
    for absent in ("cheetah-vel", "cheetah-dir", "ant-dir", "ml45", "fig4_right", "table1"):
        assert not any(absent in o for o in outputs), absent
    proc = snakemake(work, "-n", "results/fig4_right.pdf", "--configfile", "config/smoke.yaml",
                     "config/walker.yaml", check=False)
    assert proc.returncode != 0
    assert "results/fig4_right: needs cheetah-vel" in proc.stdout + proc.stderr


def test_behaviour_is_split_into_jobs_of_tasks_per_job(tmp_path):
    """families.<f>.tasks_per_job: 5 cheetah-vel tasks in jobs of 2 are 3 behaviour jobs, and
    each task's buffer is exported from the chunk that trained it."""
    work = copy_workflow(tmp_path)
    smoke = yaml.safe_load((work / "config" / "smoke.yaml").read_text())
    vel = {**smoke["families"]["cheetah-vel"], "tasks_per_job": 2}
    (work / "config" / "chunks.yaml").write_text(yaml.safe_dump({"families": {"cheetah-vel": vel}}))
    proc = snakemake(work, "-n", "-p", "buffers", "--configfile", "config/smoke.yaml",
                     "config/chunks.yaml")
    commands = [line.split("Shell command: ", 1)[1] for line in proc.stdout.splitlines()
                if line.startswith("Shell command: macaw ")]
    behaviour = sorted(c for c in commands if c.startswith("macaw train-behaviour"))
    assert [c.split("--tasks ")[1].split(" --")[0] for c in behaviour] == ["0 2", "26", "7 16"]
    assert all(f"chunk{k}/lifetime.h5" in c for k, c in zip((0, 2, 1), behaviour))
    export = next(c for c in commands if "--task 26 " in c)
    assert "--lifetime results/behaviour/cheetah-vel/chunk2/lifetime.h5" in export

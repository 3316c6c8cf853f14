"""What every run can count on when something goes wrong: identical bytes for identical state,
no temporary files left by killed writes, one writer per run directory, a changed behaviour
config restarting instead of needing manual deletion, and a full disk as one clear line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, kill_on_call, repo_env

import macaw.data
from macaw.behaviour import BehaviourConfig, train_behaviour
from macaw.behaviour.agents import EnsembleTD3
from macaw.cli import main
from macaw.meta_train import MetaTrainConfig, run_meta_training
from macaw.runs import Checkpoint, RunLockedError, load_state, run_lock, save_state

TINY_META = {"steps": 2, "eval_every": 2, "checkpoint_every": 2, "inner_batch": 32,
             "outer_batch": 32, "eval_batch": 32, "eval_episodes": 1, "device": "cpu",
             "outer_stride": 2, "inner_stride": 2, "macaw": {"width": 16, "latent": 4}}
TINY_FEWSHOT = {"ways": 3, "query_per_class": 2, "tasks_per_batch": 2, "steps": 2,
                "eval_every": 2, "eval_tasks": 4, "width": 8, "latent": 2, "n_hidden": 2}


def tiny_meta_config(**kw) -> MetaTrainConfig:
    return MetaTrainConfig.from_dict({"family": "cheetah-vel", **TINY_META, **kw})


def meta_train_cli(tiny_buffers, run_dir: Path, monkeypatch, **params) -> int:
    """``macaw meta-train`` on the tiny buffers (training task 3, test task 11)."""
    monkeypatch.setattr(macaw.data, "load_split", lambda path: {
        "family": "cheetah-vel", "split": "tiny", "train": [3], "test": [11]})
    return main(["meta-train", "--family", "cheetah-vel", "--split", "tiny.json",
                 "--buffers-dir", str(tiny_buffers[3].parent), "--method", "macaw",
                 "--params", json.dumps({**TINY_META, **params}), "--run-dir", str(run_dir),
                 "--no-progress"])


def behaviour_config(**kw) -> BehaviourConfig:
    base = dict(family="cheetah-vel", tasks=[0, 5], algorithm="td3", steps=400,
                learning_starts=100, width=16, n_hidden=2, batch_size=16, checkpoint_every=100,
                log_every=200)
    return BehaviourConfig(**{**base, **kw})


# ------------------------------------------------------------ byte-identical checkpoints

def test_the_same_state_saves_to_the_same_bytes_under_any_file_name(tmp_path):
    """torch names a zip's records after the file it writes; save_state must not, so that an
    identical rerun gives DVC the same hash."""
    state = {"step": 4, "model": {"w": torch.arange(6.0).reshape(2, 3)},
             "rng": np.random.default_rng(3).bit_generator.state,
             "obs": np.ones((2, 3), dtype=np.float32), "rows": [(0, 1.5)]}
    save_state(tmp_path / "a" / "checkpoint.pt", state)
    save_state(tmp_path / "b" / "policy.pt", state)
    a = (tmp_path / "a" / "checkpoint.pt").read_bytes()
    assert a == (tmp_path / "b" / "policy.pt").read_bytes()
    loaded = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert loaded["step"] == 4 and torch.equal(loaded["model"]["w"], state["model"]["w"])
    np.testing.assert_array_equal(load_state(tmp_path / "b" / "policy.pt")["obs"], state["obs"])


def test_two_identical_meta_training_runs_write_identical_checkpoints(tiny_buffers, tmp_path):
    cfg = tiny_meta_config()
    for run in ("a", "b"):
        run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path / run,
                          progress=False)
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == \
        (tmp_path / "b" / "checkpoint.pt").read_bytes()


# ------------------------------------------------------------- temporaries of killed writes

def test_a_run_removes_the_temporary_files_its_killed_writes_left(tiny_buffers, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    left = [run / ".checkpoint.pt.k2j4x9.tmp", run / ".eval.csv.a81kd0.tmp"]
    for path in left:
        path.write_bytes(b"half a file")
    other = run / ".notes.txt.a81kd0.tmp"          # not a file the run writes: kept
    other.write_bytes(b"")
    run_meta_training(tiny_meta_config(), [tiny_buffers[3]], [tiny_buffers[11]], run,
                      progress=False)
    assert not any(p.exists() for p in left) and other.exists()
    assert (run / "eval.csv").exists()


def test_a_checkpoint_removes_only_its_own_temporary_files(tmp_path):
    """Few-shot and online runs keep their checkpoints beside their CSVs, where other seeds'
    jobs write at the same time: a run clears only its own file's temporaries."""
    mine, theirs = tmp_path / ".seed0.checkpoint.pt.x1.tmp", tmp_path / ".seed1.checkpoint.pt.x1.tmp"
    mine.write_bytes(b"")
    theirs.write_bytes(b"")
    assert Checkpoint(tmp_path / "seed0.checkpoint.pt", {}).read() is None
    assert not mine.exists() and theirs.exists()


@pytest.mark.skipif(shutil.which("dvc") is None, reason="needs the dvc command")
def test_dvc_ignores_temporary_files_and_the_run_lock(tmp_path):
    shutil.copy(REPO / ".dvcignore", tmp_path / ".dvcignore")
    subprocess.run(["dvc", "init", "-q", "--no-scm"], cwd=tmp_path, env=repo_env(), check=True)
    run = tmp_path / "results" / "runs" / "seed0"
    run.mkdir(parents=True)
    names = [".checkpoint.pt.k2j4x9.tmp", ".macaw.lock", "checkpoint.pt", "eval.csv"]
    for name in names:
        (run / name).write_bytes(b"")
    proc = subprocess.run(["dvc", "check-ignore", *(str(run / n) for n in names)],
                          cwd=tmp_path, env=repo_env(), capture_output=True, text=True)
    ignored = {Path(line).name for line in proc.stdout.split()}
    assert ignored == {".checkpoint.pt.k2j4x9.tmp", ".macaw.lock"}


# --------------------------------------------------------------------- one writer per run

def test_a_second_meta_train_on_a_run_directory_is_refused(tiny_buffers, tmp_path, monkeypatch,
                                                           capsys):
    """Another process holds the run directory: meta-train refuses in one line naming its pid
    and writes nothing. Once that process is SIGKILLed the lock is gone with it."""
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom macaw.runs import run_lock\n"
         f"with run_lock({str(run)!r}, 'macaw meta-train'):\n"
         "    print('held', flush=True)\n    time.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True, env=repo_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        assert meta_train_cli(tiny_buffers, run, monkeypatch) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"{run}: another macaw meta-train (pid {holder.pid}) is writing" in err
        assert sorted(p.name for p in run.iterdir()) == [".macaw.lock"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert meta_train_cli(tiny_buffers, run, monkeypatch) == 0
    assert (run / "eval.csv").exists()


def test_the_run_lock_is_exclusive_within_one_process_too(tmp_path):
    with run_lock(tmp_path, "macaw meta-train"):
        with pytest.raises(RunLockedError, match=rf"pid {os.getpid()}\)"):
            with run_lock(tmp_path, "macaw meta-train"):
                pass
    with run_lock(tmp_path, "macaw meta-train"):      # released on exit
        pass


# ----------------------------------------------------- a changed behaviour config restarts

def test_a_changed_behaviour_config_restarts_with_the_old_state_set_aside(tmp_path, monkeypatch):
    """A killed run, then the same outputs asked for with another config: refused naming the
    flag, and with --restart-on-config-change (which the workflow's rule passes) the old
    checkpoint and replay are kept aside and the new run is a fresh one, bit for bit."""
    out = tmp_path / "chunk0"
    lifetime, policy = out / "lifetime.h5", out / "policy.pt"
    original = kill_on_call(monkeypatch, EnsembleTD3, "update", 150)
    with pytest.raises(KeyboardInterrupt):
        train_behaviour(behaviour_config(), lifetime, policy, progress=False)
    monkeypatch.setattr(EnsembleTD3, "update", original)
    assert load_state(out / "resume.pt")["step"] == 200

    changed = behaviour_config(policy_lr=1e-3)
    with pytest.raises(ValueError, match=r"policy_lr: 0.0003 -> 0.001.*--restart-on-config-change"):
        train_behaviour(changed, lifetime, policy, progress=False)
    train_behaviour(changed, lifetime, policy, progress=False, restart_on_config_change=True)
    stale = load_state(out / "resume.stale.pt")
    assert stale["step"] == 200 and stale["config"]["policy_lr"] == 3e-4
    assert sorted(p.name for p in (out / "resume.stale.replay").iterdir()) == [
        "000000000000-000000000100.npz", "000000000100-000000000200.npz"]
    assert not (out / "resume.pt").exists() and not (out / "resume.replay").exists()

    fresh = train_behaviour(changed, tmp_path / "fresh" / "lifetime.h5",
                            tmp_path / "fresh" / "policy.pt", progress=False)
    with h5py.File(fresh) as a, h5py.File(lifetime) as b:
        for task in a:
            for key in a[task]:
                np.testing.assert_array_equal(a[task][key][()], b[task][key][()])
    assert "--restart-on-config-change" in (REPO / "workflow/rules/behaviour.smk").read_text()


# -------------------------------------------------------------------------- a full disk

def fill_disk_for(monkeypatch, name: str) -> None:
    """Every temporary file :func:`macaw.io.atomic_path` makes for a file called ``name`` (or
    for a temporary file of it) is a link to /dev/full, where every write fails with ENOSPC as
    on a full disk."""
    real = tempfile.mkstemp

    def mkstemp(suffix=None, prefix=None, dir=None, text=False):
        if prefix and f".{name}." in prefix:
            path = Path(dir) / f"{prefix}full{suffix}"
            path.symlink_to("/dev/full")
            return os.open(path, os.O_WRONLY), str(path)
        return real(suffix, prefix, dir, text)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def one_line_about_a_full_disk(capsys, path: Path) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{path}: no space left on device" in err and "Traceback" not in err


needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


@needs_dev_full
def test_a_full_disk_stops_meta_train_in_one_line(tiny_buffers, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    fill_disk_for(monkeypatch, "checkpoint.pt")
    assert meta_train_cli(tiny_buffers, run, monkeypatch) == 2
    one_line_about_a_full_disk(capsys, run / "checkpoint.pt")
    assert not (run / "checkpoint.pt").exists() and not list(run.glob(".checkpoint.pt.*"))


@needs_dev_full
def test_a_full_disk_stops_train_behaviour_in_one_line(tmp_path, monkeypatch, capsys):
    fill_disk_for(monkeypatch, "resume.pt")
    code = main(["train-behaviour", "--family", "cheetah-vel", "--tasks", "0",
                 "--params", json.dumps({"algorithm": "td3", "steps": 400, "learning_starts": 100,
                                         "width": 16, "batch_size": 16,
                                         "checkpoint_every": 100}),
                 "--lifetime", str(tmp_path / "lifetime.h5"),
                 "--policy", str(tmp_path / "policy.pt"), "--no-progress"])
    assert code == 2
    one_line_about_a_full_disk(capsys, tmp_path / "resume.pt")
    assert not (tmp_path / "resume.pt").exists() and not (tmp_path / "lifetime.h5").exists()


@needs_dev_full
def test_a_full_disk_stops_fewshot_in_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "seed0.csv"
    fill_disk_for(monkeypatch, "seed0.checkpoint.pt")
    assert main(["fewshot", "--variant", "wt", "--params", json.dumps(TINY_FEWSHOT),
                 "--out", str(out), "--no-progress"]) == 2
    one_line_about_a_full_disk(capsys, tmp_path / "seed0.checkpoint.pt")
    assert not out.exists() and not (tmp_path / "seed0.checkpoint.pt").exists()


@needs_dev_full
def test_a_full_disk_stops_export_buffer_in_one_line(tiny_lifetime, tmp_path):
    """HDF5 on a full disk floods stderr and then crashes in h5py's close path (a segfault):
    run in its own process, the export must instead exit 2 with one line."""
    out = tmp_path / "task03.h5"
    script = (f"import sys\nsys.path.insert(0, {str(REPO / 'tests')!r})\n"
              "import pytest\nfrom test_runs import fill_disk_for\nfrom macaw.cli import main\n"
              "patch = pytest.MonkeyPatch()\nfill_disk_for(patch, 'task03.h5')\n"
              f"sys.exit(main(['export-buffer', '--lifetime', {str(tiny_lifetime)!r}, "
              f"'--task', '3', '--out', {str(out)!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=repo_env(), timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err[-3000:]
    assert f"{out}: no space left on device" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ checks before anything runs

def test_a_behaviour_batch_larger_than_learning_starts_fails_in_config_validation():
    with pytest.raises(ValueError, match=r"batch_size \(300\) must not exceed learning_starts "
                                         r"\(200\)"):
        BehaviourConfig.from_dict("cheetah-vel", {"tasks": [0], "batch_size": 300,
                                                  "learning_starts": 200})


def test_batches_larger_than_a_window_are_refused_before_any_output(tiny_buffers, tmp_path):
    """400 steps with stride 7 are 58 rows: an inner batch of 60 fails before the step-0
    evaluation and checkpoint are written, not at the first training step after them."""
    cfg = tiny_meta_config(inner_batch=60, inner_stride=7)
    with pytest.raises(ValueError, match=r"task 3: inner_batch needs 60 rows of its inner "
                                         r"window, which has 58"):
        run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".macaw.lock"]


def test_the_static_check_names_the_fields_that_cannot_fit():
    """What the workflow checks before any job, from the behaviour steps alone: PEARL's own
    batch sizes for PEARL, the run's for MACAW, and eval_batch for every method."""
    from macaw.meta_train import check_batches_fit

    pearl = tiny_meta_config(method="pearl", eval_batch=250,
                             pearl={"context_batch": 201, "batch_size": 32})
    with pytest.raises(ValueError, match=r"run x: pearl.context_batch is 201, but its inner "
                                         r"\(all\) window holds at most 200 rows; eval_batch is "
                                         r"250.*outer_stride 2\)"):
        check_batches_fit(pearl, 400, 200, "run x")
    check_batches_fit(tiny_meta_config(inner_batch=200, eval_batch=200), 400, 200, "run x")
    good = tiny_meta_config(inner_window="good", window_episodes=1, outer_batch=101)
    with pytest.raises(ValueError, match=r"run x: outer_batch is 101, but its outer \(all\) "
                                         r"window holds at most 100 rows \("):
        check_batches_fit(good, 200, 200, "run x")
    with pytest.raises(ValueError, match=r"inner_batch is 32, but its inner \(good\) window "
                                         r"holds at most 5 rows"):
        check_batches_fit(good, 400, 10, "run x")


def test_tasks_per_batch_beyond_the_training_tasks_is_recorded_as_used(tiny_buffers, tmp_path):
    run_meta_training(tiny_meta_config(tasks_per_batch=5), [tiny_buffers[3]],
                      [tiny_buffers[11]], tmp_path, progress=False)
    resolved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert resolved["tasks_per_batch"] == 5 and resolved["tasks_per_batch_used"] == 1


def test_every_methods_batch_demand_is_what_its_training_step_draws(tiny_buffers, monkeypatch):
    import importlib

    from macaw.algos import registry
    from macaw.data import TaskData
    from macaw.meta_train import build_learner

    for method in registry.METHODS:
        cfg = tiny_meta_config(method=method, tasks_per_batch=3, inner_batch=24,
                               outer_batch=40, pearl={"tasks_per_batch": 2,
                                                      "context_batch": 16, "batch_size": 8,
                                                      "width": 8, "encoder_width": 8},
                               mt_ft={"width": 8})
        tasks = [TaskData.for_run(tiny_buffers[t], cfg, torch.device("cpu")) for t in (3, 11)]
        learner = build_learner(cfg, tasks[0].obs_dim, tasks[0].act_dim, 2, torch.device("cpu"))
        module = importlib.import_module(type(learner).__module__)
        drawn = []

        def spy(tasks, n_tasks, inner, outer, rng, *, contiguous_inner=True, disjoint=True,
                real=module.sample_meta_batch):
            drawn.append((n_tasks, inner, outer, disjoint))
            return real(tasks, n_tasks, inner, outer, rng, contiguous_inner=contiguous_inner,
                        disjoint=disjoint)

        monkeypatch.setattr(module, "sample_meta_batch", spy)
        learner.train_step(learner.optimizers(), tasks, cfg, np.random.default_rng(0))
        demand = registry.batch_demand(cfg)
        n_tasks, inner, outer, disjoint = drawn[0]
        # (Without an inner batch there is nothing to be disjoint from.)
        assert (n_tasks, inner, outer, disjoint and inner > 0) == (
            demand.tasks, demand.inner, demand.outer, demand.disjoint), method

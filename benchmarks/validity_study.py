"""The discriminating experiments of docs/results/validity/README.md (controls of the benchmark).

Runs ``macaw meta-train`` (and ``macaw test-time-steps``) one after another on the default
cheetah-vel buffers, with the default config's meta-training parameters (read from
``config/config.yaml``, so they cannot drift from it) and each experiment's overrides. Every
run lands in ``results/validity/runs/{split}/{name}/seed{s}/``; a run whose ``eval.csv``
already reaches its last step is skipped, and a killed one resumes from its checkpoint.

Needs the buffers and splits (about 30 min of behaviour data on a fast 2-core machine)::

    snakemake --cores 2 $(for s in standard sparse20 sparse10 sparse5 sparse3; do \\
        printf 'results/splits/cheetah-vel/%s.json ' $s; done) \\
        $(for t in $(seq -w 0 39); do printf 'results/buffers/cheetah-vel/task%s.h5 ' $t; done)
    python benchmarks/validity_study.py            # every experiment (order: runs())
    python benchmarks/validity_study.py --only e a # some of them
    python benchmarks/validity_report.py           # the readings' numbers

Sequential on purpose: two torch jobs on 2 cores run 5-20x slower.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results/validity"
BUFFERS = REPO / "results/buffers/cheetah-vel"
SPLITS = REPO / "results/splits/cheetah-vel"
MEMORISATION_TASKS = [0, 16, 32]


@dataclass(frozen=True)
class Run:
    experiment: str
    split: str
    name: str
    method: str
    seed: int
    overrides: dict = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return OUT / "runs" / self.split / self.name / f"seed{self.seed}"


def default_params(method: str) -> dict:
    """The default config's meta_training.params with its method_params for ``method``."""
    meta = yaml.safe_load((REPO / "config/config.yaml").read_text())["meta_training"]
    params = dict(meta["params"])
    params.update(meta.get("method_params", {}).get(method, {}))
    return params


WIDE = {"all": {"inner_window": "all", "outer_window": "all"},
        "w150": {"window_episodes": 150}}


def runs() -> list[Run]:
    """Every run, the most decisive first: (a)'s whole-lifetime windows, (b), (c)'s seed 0,
    (a)'s 150-episode windows, (c)'s other seeds, then (e) (the 3 seeds of MACAW on
    sparse5 / sparse3 as in fig4_right_3seeds, kept with their checkpoints for test-time
    steps; their train.csv also carries (f)'s value and weight diagnostics), then (d)."""
    # Every comparison's baseline (the default last-50 window, MACAW's bad and medium windows)
    # is rebuilt here on the same data build: behaviour data made on another CPU differ
    # (README, "Amendment"), so the committed runs of other studies are no baselines.
    out = []
    for split in ("sparse5", "sparse3"):
        out += [Run("a", split, m, m, 0) for m in ("macaw", "mt_ft")]
        out += [Run("a", split, f"{m}-all", m, 0, WIDE["all"]) for m in ("mt_ft", "macaw")]
    out += [Run("b", "memorise3", m, m, 0) for m in ("macaw", "meta_bc", "mt_ft")]
    c_runs = [Run("c", "standard", f"{m}-{window}", m, seed, {"inner_window": window})
              for seed in (0, 1, 2) for window in ("bad", "medium") for m in ("meta_bc", "macaw")]
    out += c_runs[:4]                                   # seed 0
    for split in ("sparse5", "sparse3"):
        out += [Run("a", split, f"{m}-w150", m, 0, WIDE["w150"]) for m in ("mt_ft", "macaw")]
    out += c_runs[4:]
    for split in ("sparse5", "sparse3"):
        out += [Run("e", split, "macaw", "macaw", s) for s in (0, 1, 2)]
    for split in ("sparse20", "sparse10"):
        out += [Run("d", split, "mt_ft", "mt_ft", 0),
                Run("d", split, "macaw-5k", "macaw", 0, {"steps": 5000})]
    return out


def split_file(run: Run) -> Path:
    if run.split != "memorise3":
        return SPLITS / f"{run.split}.json"
    path = OUT / "splits/memorise3.json"
    if not path.exists():
        # sparse3's training tasks as its test tasks too, opted in as a memorisation check
        subprocess.run(["macaw", "make-split", "--family", "cheetah-vel", "--split", "sparse3",
                        "--memorisation-check", "--out", str(path)], check=True)
        if json.loads(path.read_text())["test"] != MEMORISATION_TASKS:
            raise RuntimeError(f"{path}: expected test tasks {MEMORISATION_TASKS}")
    return path


def finished(run: Run, steps: int) -> bool:
    eval_csv = run.dir / "eval.csv"
    return eval_csv.exists() and any(line.startswith(f"{steps},")
                                     for line in eval_csv.read_text().splitlines())


THREADS = ["2"]       # torch threads of every run (--threads)


def meta_train(run: Run) -> None:
    params = {**default_params(run.method), **run.overrides}
    if finished(run, params["steps"]):
        return
    cmd = ["macaw", "meta-train", "--family", "cheetah-vel", "--split", str(split_file(run)),
           "--buffers-dir", str(BUFFERS), "--method", run.method, "--seed", str(run.seed),
           "--threads", THREADS[0], "--no-progress", "--run-dir", str(run.dir),
           "--params", json.dumps(params)]
    if run.split == "memorise3":
        cmd.append("--memorisation-check")
    t0 = time.time()
    print(f"{time.strftime('%H:%M:%S')} ({run.experiment}) {run.split} {run.name} seed "
          f"{run.seed}", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"    {time.time() - t0:.0f} s", flush=True)


def test_time_steps(run: Run) -> None:
    out = OUT / "test_time_steps" / run.split / f"seed{run.seed}.csv"
    if out.exists():
        return
    split = json.loads(split_file(run).read_text())
    t0 = time.time()
    subprocess.run(["macaw", "test-time-steps", "--run-dir", str(run.dir), "--buffers",
                    *[str(BUFFERS / f"task{t:02d}.h5") for t in split["test"]],
                    "--steps", "1", "2", "5", "20", "--value-steps", "1",
                    "--threads", THREADS[0],
                    "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    print(f"{time.strftime('%H:%M:%S')} (e) test-time steps {run.split} seed {run.seed}: "
          f"{time.time() - t0:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=list("abcde"), default=list("abcde"),
                   help="experiments to run (default: all, in the order of runs())")
    p.add_argument("--threads", default="2", help="torch threads per run (default 2)")
    args = p.parse_args(argv)
    THREADS[0] = args.threads
    todo = [r for r in runs() if r.experiment in args.only]
    for run in todo:
        meta_train(run)
        if run.experiment == "e":
            test_time_steps(run)
    print(f"{time.strftime('%H:%M:%S')} done", flush=True)


if __name__ == "__main__":
    sys.exit(main())

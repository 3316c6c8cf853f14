#!/usr/bin/env python
"""The paper scale in numbers: what `config/paper.yaml` costs, family by family.

For each family, one behaviour job of the paper's chunk size (``tasks_per_job`` tasks, the
paper's networks and batch) is timed twice, for ``learning_starts + a`` and
``learning_starts + b`` lock-steps; the difference is the learning-phase cost of one lock-step
of the whole chunk (set-up, random-action phase and output cancel out). From it and the config:

- the wall-clock hours of one behaviour job at this machine's threads, the core-hours of the
  family (jobs x hours x threads);
- the memory each job asks for (``macaw.resources``), the disk of its lifetime file and buffers;
- the number of jobs the paper DAG makes (``snakemake -n``).

Meta-training on a GPU is not measured here (no GPU on the machine this was written on); the
table gives the number of runs and steps it must cover.

    python benchmarks/paper_plan.py                  # every family, ~6 min on 2 cores
    python benchmarks/paper_plan.py --families walker-params --steps 50 150
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from macaw.behaviour import BehaviourConfig, train_behaviour
from macaw.envs import get_family
from macaw.provenance import provenance
from macaw.resources import behaviour_mem_mb, buffer_bytes_per_step, lifetime_bytes_per_step

REPO = Path(__file__).resolve().parents[1]


def paper_config() -> dict:
    return yaml.safe_load((REPO / "config" / "paper.yaml").read_text())


def time_chunk(family: str, spec: dict, n_tasks: int, steps: int) -> float:
    """Seconds for one behaviour job of ``n_tasks`` tasks at the paper's sizes, ``steps``
    lock-steps after learning starts."""
    b = spec["behaviour"]
    # The least random-action phase the trainer allows, long enough that an episode finishes
    # (the lifetime file needs one).
    start = max(b["batch_size"], get_family(family).episode_steps)
    cfg = BehaviourConfig(family=family, tasks=list(range(n_tasks)), algorithm=b["algorithm"],
                          steps=start + steps, learning_starts=start,
                          width=b["width"], n_hidden=b["n_hidden"], batch_size=b["batch_size"],
                          checkpoint_every=0, log_every=10**9, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train_behaviour(cfg, Path(tmp) / "lifetime.h5", Path(tmp) / "policy.pt", progress=False)
        return time.perf_counter() - t0


def dag_jobs(configfile: str) -> dict[str, int]:
    out = subprocess.run(["snakemake", "-n", "--configfile", configfile], cwd=REPO, text=True,
                         capture_output=True, check=True).stdout
    stats = out.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {name: int(count) for name, count in (line.split() for line in stats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", help="default: every family of paper.yaml")
    parser.add_argument("--steps", nargs=2, type=int, default=(100, 400), metavar=("A", "B"),
                        help="the two learning-phase lengths timed (default 100 400)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", action="store_true", help="one JSON line instead of markdown")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = paper_config()
    rows = []
    for family in args.families or list(config["families"]):
        spec = config["families"][family]
        f = get_family(family)
        n_tasks = f.n_tasks if spec["tasks"] == "all" else len(spec["tasks"])
        chunk = min(spec.get("tasks_per_job") or n_tasks, n_tasks)
        jobs = -(-n_tasks // chunk)
        steps = spec["behaviour"]["steps"]
        a, b = (time_chunk(family, spec, chunk, s) for s in args.steps)
        per_step = (b - a) / (args.steps[1] - args.steps[0])
        hours = per_step * steps / 3600
        rows.append({
            "family": family, "tasks": n_tasks, "tasks_per_job": chunk, "jobs": jobs,
            "steps_per_task": steps, "s_per_lockstep": per_step,
            "ms_per_task_step": 1000 * per_step / chunk,
            "job_hours": hours, "core_hours": jobs * hours * args.threads,
            "job_mem_gb": behaviour_mem_mb(family, chunk, steps) / 1000,
            "disk_gb": n_tasks * steps * (lifetime_bytes_per_step(f.obs_dim, f.act_dim)
                                          + buffer_bytes_per_step(f.obs_dim, f.act_dim)) / 1e9,
        })
        print(f"{family}: {1000 * per_step:.1f} ms per lock-step of {chunk} tasks",
              file=sys.stderr)
    meta = config["meta_training"]
    report = {
        "date": datetime.date.today().isoformat(), "machine": provenance()["cpu"],
        "threads": args.threads, "torch": torch.__version__,
        "steps_timed": list(args.steps), "families": rows,
        "dag_jobs": dag_jobs("config/paper.yaml"),
        "meta_steps_per_run": meta["params"]["steps"], "seeds": meta["seeds"],
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"paper scale, measured {report['date']} ({report['machine']}, {args.threads} "
          f"threads, torch {report['torch']}); behaviour learning phase timed at "
          f"{args.steps[0]} and {args.steps[1]} lock-steps\n")
    print("| family | tasks | tasks/job | jobs | steps/task | ms per task-step | hours/job | "
          "core-hours | memory/job (GB) | disk (GB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['family']} | {r['tasks']} | {r['tasks_per_job']} | {r['jobs']} | "
              f"{r['steps_per_task']:,} | {r['ms_per_task_step']:.2f} | {r['job_hours']:.0f} | "
              f"{r['core_hours']:,.0f} | {r['job_mem_gb']:.1f} | {r['disk_gb']:.0f} |")
    total = sum(r["core_hours"] for r in rows)
    print(f"\nbehaviour total: {total:,.0f} core-hours, "
          f"{sum(r['disk_gb'] for r in rows):,.0f} GB of lifetimes and buffers")
    print("DAG jobs: " + ", ".join(f"{k} {v}" for k, v in report["dag_jobs"].items()))


if __name__ == "__main__":
    main()

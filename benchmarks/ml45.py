#!/usr/bin/env python
"""Meta-World ML45 throughput: what behaviour data for the ``ml45`` family costs on this machine.

Three measurements, one process, ``torch.set_num_threads(--threads)``:

1. **Single env.** Each of ``--env-tasks`` ML45 tasks (default all 50) stepped alone with
   uniform-random actions for ``--env-steps`` steps (resets at the 500-step truncation
   included); env steps per second per task.
2. **Lock-step envs.** ``macaw.behaviour.trainer.TaskEnvs`` (what the trainer steps: one env
   per task, reset when an episode ends) on ``--tasks``; env steps per second summed over tasks.
3. **Ensemble SAC.** ``macaw.behaviour.train_behaviour`` on ``--tasks`` for ``--sac-steps``
   steps per task (``--learning-starts`` random steps first), [128, 128] nets, batch 128;
   env steps per second summed over tasks, in total and in the learning phase (the steps
   after learning_starts, timed from the lifetime file's per-step log).

Building the ML45 benchmark's goal variants (all 50 envs, once per process) is timed
separately. Progress goes to stderr, the report to stdout (``--json``: one JSON line)::

    python benchmarks/ml45.py            # ~5 min on 2 idle cores
    python benchmarks/ml45.py --quick    # plumbing check
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_TASKS = [0, 5, 10, 15, 20, 25, 30, 35, 45, 47]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def bench_benchmark_build() -> float:
    from macaw.envs import ml45

    t = time.perf_counter()
    ml45._benchmark()
    return time.perf_counter() - t


def bench_single_envs(tasks: list[int], steps: int, seed: int) -> dict[int, float]:
    from macaw.envs import make_task_env

    rates = {}
    for task in tasks:
        env = make_task_env("ml45", task)
        rng = np.random.default_rng(seed)
        env.reset(seed=seed)
        t = time.perf_counter()
        for _ in range(steps):
            _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            if term or trunc:
                env.reset()
        rates[task] = steps / (time.perf_counter() - t)
        env.close()
    return rates


def bench_lockstep(tasks: list[int], steps: int, seed: int) -> float:
    from macaw.behaviour.trainer import TaskEnvs

    envs = TaskEnvs("ml45", tasks, seed)
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    for _ in range(steps):
        envs.step(rng.uniform(-1, 1, (len(tasks), 4)).astype(np.float32))
    return steps * len(tasks) / (time.perf_counter() - t)


def bench_sac(tasks: list[int], steps: int, learning_starts: int, seed: int) -> dict:
    from macaw.behaviour import BehaviourConfig, train_behaviour
    from macaw.behaviour import trainer

    marks: dict[str, float] = {}
    original = trainer.AGENTS["sac"]

    class MarkedSAC(original):
        def update(self, batch):
            marks.setdefault("first_update", time.perf_counter())
            return super().update(batch)

    trainer.AGENTS["sac"] = MarkedSAC
    try:
        cfg = BehaviourConfig(family="ml45", tasks=tasks, algorithm="sac", steps=steps,
                              learning_starts=learning_starts, width=128, n_hidden=2,
                              batch_size=128, checkpoint_every=0, log_every=steps, seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            train_behaviour(cfg, Path(tmp) / "lifetime.h5", Path(tmp) / "policy.pt",
                            progress=False)
            end = time.perf_counter()
    finally:
        trainer.AGENTS["sac"] = original
    learning = steps - learning_starts + 1
    return {"wall_s": end - t, "steps_per_s_total": steps * len(tasks) / (end - t),
            "steps_per_s_learning": learning * len(tasks) / (end - marks["first_update"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=DEFAULT_TASKS)
    parser.add_argument("--env-tasks", type=int, nargs="+", default=list(range(50)))
    parser.add_argument("--env-steps", type=int, default=1000)
    parser.add_argument("--lockstep-steps", type=int, default=1000)
    parser.add_argument("--sac-steps", type=int, default=3000)
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, numbers meaningless")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.env_tasks, args.env_steps, args.lockstep_steps = [0, 45], 200, 200
        args.tasks, args.sac_steps, args.learning_starts = [0, 45], 700, 300
    torch.set_num_threads(args.threads)

    log("building the ML45 benchmark's goal variants")
    build_s = bench_benchmark_build()
    log(f"single envs: {len(args.env_tasks)} tasks x {args.env_steps} steps")
    single = bench_single_envs(args.env_tasks, args.env_steps, args.seed)
    log(f"lock-step envs: {len(args.tasks)} tasks x {args.lockstep_steps} steps")
    lockstep = bench_lockstep(args.tasks, args.lockstep_steps, args.seed)
    log(f"ensemble SAC: {len(args.tasks)} tasks x {args.sac_steps} steps")
    sac = bench_sac(args.tasks, args.sac_steps, args.learning_starts, args.seed)

    from macaw.envs import task_params

    rates = np.array(list(single.values()))
    slowest = sorted(single, key=single.get)[:3]
    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "threads": args.threads, "benchmark_build_s": build_s,
        "single_env_steps_per_s": {"mean": rates.mean(), "median": float(np.median(rates)),
                                   "min": rates.min(), "max": rates.max(),
                                   "slowest": {task_params("ml45", t)["env_name"]: single[t]
                                               for t in slowest}},
        "lockstep_tasks": args.tasks, "lockstep_steps_per_s": lockstep,
        "sac": {"tasks": len(args.tasks), "steps": args.sac_steps,
                "learning_starts": args.learning_starts, **sac},
    }
    if args.json:
        print(json.dumps(report, default=float))
        return
    s = report["single_env_steps_per_s"]
    print(f"ML45 benchmark build (50 envs x 50 goal variants): {build_s:.1f} s")
    print(f"single env, {len(single)} tasks: mean {s['mean']:.0f} steps/s (median "
          f"{s['median']:.0f}, min {s['min']:.0f}, max {s['max']:.0f}); slowest "
          + ", ".join(f"{k} {v:.0f}" for k, v in s["slowest"].items()))
    print(f"lock-step, {len(args.tasks)} tasks: {lockstep:.0f} env steps/s (summed)")
    print(f"ensemble SAC, {len(args.tasks)} tasks x {args.sac_steps} steps: {sac['wall_s']:.1f} s, "
          f"{sac['steps_per_s_total']:.0f} env steps/s total, "
          f"{sac['steps_per_s_learning']:.0f} in the learning phase")


if __name__ == "__main__":
    main()

"""Time one MACAW meta-training step: fast (closed-form, all tasks batched) vs reference
(per-task loop that materialises every adapted tensor, as the authors' code does).

    python benchmarks/meta_step.py            # table
    python benchmarks/meta_step.py --json     # one JSON line: fast_ms, naive_ms, speedup, ...

Both are measured in the same run on the same batches: 5 tasks x 256 transitions, cheetah
shapes (obs 17, act 6), WT 3x100 with latent 100, full step including optimiser updates.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from macaw.algos.macaw import MACAW, MACAWConfig, meta_step
from macaw.data import Batch, MetaBatch


def make_batch(n_tasks: int, batch: int, obs_dim: int, act_dim: int, seed: int) -> MetaBatch:
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    def task_batch() -> Batch:
        obs = randn(n_tasks, batch, obs_dim)
        return Batch(obs, torch.rand(n_tasks, batch, act_dim, generator=g) * 2 - 1,
                     randn(n_tasks, batch), randn(n_tasks, batch, obs_dim),
                     torch.zeros(n_tasks, batch), randn(n_tasks, batch) * 50,
                     randn(n_tasks, batch, obs_dim), torch.rand(n_tasks, batch, generator=g))

    return MetaBatch(torch.arange(n_tasks), task_batch(), task_batch())


def time_steps(reference: bool, cfg: MACAWConfig, args) -> list[float]:
    model = MACAW(args.obs_dim, args.act_dim, cfg, seed=0)
    opts = model.optimizers()
    times = []
    for i in range(args.warmup + args.repeats):
        batch = make_batch(args.tasks, args.batch, args.obs_dim, args.act_dim, seed=i)
        t0 = time.perf_counter()
        meta_step(model, opts, batch, reference=reference)
        if i >= args.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tasks", type=int, default=5)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--width", type=int, default=100)
    p.add_argument("--latent", type=int, default=100)
    p.add_argument("--inner-steps", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--json", action="store_true", help="print one JSON line")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = MACAWConfig(width=args.width, latent=args.latent, inner_steps=args.inner_steps)
    # Interleave the two so that machine noise hits both alike.
    fast, naive = [], []
    for _ in range(2):
        fast += time_steps(False, cfg, args)
        naive += time_steps(True, cfg, args)
    result = {
        "fast_ms": round(statistics.median(fast), 2),
        "naive_ms": round(statistics.median(naive), 2),
        "speedup": round(statistics.median(naive) / statistics.median(fast), 2),
        "threads": args.threads, "tasks": args.tasks, "batch": args.batch,
        "width": args.width, "latent": args.latent, "inner_steps": args.inner_steps,
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>12}: {v}")


if __name__ == "__main__":
    main()

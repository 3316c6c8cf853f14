#!/usr/bin/env python
"""Behaviour-training throughput of the code on ``PYTHONPATH``: cheetah-vel, 40 tasks, TD3,
[128, 128], batch 128, 2 threads. The learning-phase cost of one lock-step of all tasks is the
difference of two run lengths (400 and 1000 steps) over 600, best of 2. The script runs on the
code before and after the per-task random streams (9e3c88f), so the two can be compared:

    python benchmarks/behaviour_streams.py                  # this checkout
    mkdir /tmp/old && git archive 1a6af60 | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python benchmarks/behaviour_streams.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

import macaw.runs
from macaw.behaviour import BehaviourConfig, train_behaviour

PER_TASK_STREAMS = hasattr(macaw.runs, "stream_generators")
NEW_NAMES = "steps" in BehaviourConfig.__dataclass_fields__      # the config after 39751af


def run_seconds(steps: int) -> float:
    sizes = (dict(steps=steps, width=128, n_hidden=2, device="cpu") if NEW_NAMES
             else dict(total_steps=steps, hidden=[128, 128]))
    cfg = BehaviourConfig(family="cheetah-vel", tasks=list(range(40)), algorithm="td3",
                          learning_starts=200, batch_size=128, checkpoint_every=0,
                          log_every=10**9, **sizes)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_behaviour(cfg, Path(tmp) / "lifetime.h5", Path(tmp) / "policy.pt", progress=False)
        return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(2)
    per_step = [(run_seconds(1000) - run_seconds(400)) / 600 for _ in range(2)]
    kind = "per-task streams" if PER_TASK_STREAMS else "shared streams"
    print(f"{kind}: {1000 * min(per_step):.2f} ms per lock-step of 40 tasks "
          f"(runs: {', '.join(f'{1000 * s:.2f}' for s in per_step)})")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""What a lifetime's late phase costs (``late_phase_from`` / ``late_update_every``): the cost
of one lock-step of the default cheetah-vel ensemble (40 tasks, TD3, [128, 128], batch 128,
2 threads) with an update every step (the learning phase) and with one every
``--every`` steps (the late phase), each the difference of two run lengths over their
difference in steps, best of ``--repeats``, measured in the same run so that the ratio holds
on any machine:

    python benchmarks/behaviour_late_phase.py [--every 4 8] [--repeats 2]

A lifetime of ``L`` learning steps and ``K`` late steps then costs about ``L * learning +
K * late`` (BENCHMARKS.md, "Behaviour lifetimes with a late phase").
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from macaw.behaviour import BehaviourConfig, train_behaviour

SHORT, LONG, WARMUP = 400, 1000, 200


def run_seconds(steps: int, every: int | None) -> float:
    """Seconds of a ``steps``-step run whose late phase starts at the end of the random
    warm-up (``every`` None: no late phase)."""
    cfg = BehaviourConfig(family="cheetah-vel", tasks=list(range(40)), algorithm="td3",
                          steps=steps, learning_starts=WARMUP, width=128, n_hidden=2,
                          batch_size=128, checkpoint_every=0, log_every=10**9, device="cpu",
                          late_phase_from=None if every is None else WARMUP,
                          late_update_every=every or 1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_behaviour(cfg, Path(tmp) / "lifetime.h5", Path(tmp) / "policy.pt", progress=False)
        return time.perf_counter() - start


def per_step_ms(every: int | None, repeats: int) -> float:
    return 1000 * min((run_seconds(LONG, every) - run_seconds(SHORT, every)) / (LONG - SHORT)
                      for _ in range(repeats))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--every", type=int, nargs="+", default=[4, 8],
                   help="late-phase environment steps per update to measure")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(2)
    learning = per_step_ms(None, args.repeats)
    print(f"learning phase (update every step): {learning:.2f} ms per lock-step of 40 tasks")
    for every in args.every:
        late = per_step_ms(every, args.repeats)
        print(f"late phase, an update every {every} steps: {late:.2f} ms per lock-step "
              f"({late / learning:.2f} of the learning phase's)")


if __name__ == "__main__":
    main()

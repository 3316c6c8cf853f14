#!/usr/bin/env python
"""Behaviour throughput of the code on PYTHONPATH: cheetah-vel,
40 tasks, TD3, 2x128, batch 128; learning-phase ms per lock-step from two run lengths (400 and
1000 steps, best of 2). Works on the code before and after the per-task random streams (9e3c88f):

    python benchmarks/behaviour_streams.py                                 # this checkout
    git archive 1a6af60 | tar -x -C /tmp/old && PYTHONPATH=/tmp/old python benchmarks/behaviour_streams.py
"""
import sys, tempfile, time
from pathlib import Path
import torch
from macaw.behaviour import BehaviourConfig, train_behaviour
torch.set_num_threads(2)
new = "steps" in BehaviourConfig.__dataclass_fields__
def run(n):
    kw = dict(steps=n, width=128, n_hidden=2, device="cpu") if new else dict(total_steps=n, hidden=[128, 128])
    cfg = BehaviourConfig(family="cheetah-vel", tasks=list(range(40)), algorithm="td3", learning_starts=200,
                          batch_size=128, checkpoint_every=0, log_every=10**9, **kw)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter(); train_behaviour(cfg, Path(d)/"l.h5", Path(d)/"p.pt", progress=False)
        return time.perf_counter() - t
best = []
for rep in range(2):
    a, b = run(400), run(1000)
    best.append((b - a) / 600)
print(("per-task streams" if new else "shared streams"), f"{1000*min(best):.2f} ms per lock-step of 40 tasks", [round(1000*x,2) for x in best])

"""Cost of one behaviour-training checkpoint at step N: re-saving the whole replay (the trainer
before commit b118b71) against appending the rows since the last checkpoint
(:class:`macaw.runs.SegmentStore`, what the trainer does now).

The replay is a real :class:`macaw.behaviour.trainer.LifetimeReplay` for cheetah-vel's
dimensions, filled with random rows; the non-replay state (networks, optimisers, RNGs) is the
same on both sides and is left out. Each side writes to a temporary directory on the same disk
and is timed with fsync (``macaw.io.atomic_path``). Run from the repository root::

    python benchmarks/behaviour_checkpoint.py --steps 100000 1000000 --tasks 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from macaw.behaviour.trainer import LifetimeReplay
from macaw.io import atomic_path
from macaw.runs import SegmentStore

OBS_DIM, ACT_DIM = 17, 6            # cheetah-vel


def resave_everything(replay: LifetimeReplay, step: int, path: Path) -> None:
    """The old checkpoint: every row so far, cloned and pickled by torch.save."""
    with atomic_path(path) as tmp:
        torch.save({k: v[:, :step].clone() for k, v in replay.data.items()}, tmp)


def append_segment(replay: LifetimeReplay, last: int, step: int, store: SegmentStore) -> None:
    store.append({k: v[:, last:step].numpy() for k, v in replay.data.items()}, last, step)


def measure(n_tasks: int, steps: int, every: int, repeats: int) -> dict:
    replay = LifetimeReplay(n_tasks, steps, OBS_DIM, ACT_DIM)
    gen = torch.Generator().manual_seed(0)
    for k, v in replay.data.items():
        v.copy_(torch.rand(v.shape, generator=gen) > 0.5 if v.dtype == torch.bool
                else torch.randn(v.shape, generator=gen))
    replay.size = steps
    out = {"tasks": n_tasks, "step": steps, "checkpoint_every": every}
    with tempfile.TemporaryDirectory(dir=".") as d:
        old, new = [], []
        for r in range(repeats):
            t = time.perf_counter()
            resave_everything(replay, steps, Path(d) / "resume.pt")
            old.append(time.perf_counter() - t)
            store = SegmentStore(Path(d) / f"replay{r}", axis=1)
            t = time.perf_counter()
            append_segment(replay, steps - every, steps, store)
            new.append(time.perf_counter() - t)
        out["old_bytes"] = (Path(d) / "resume.pt").stat().st_size
        out["new_bytes"] = sum(p.stat().st_size for p in (Path(d) / "replay0").iterdir())
    out["old_s"], out["new_s"] = min(old), min(new)
    out["ratio"] = out["old_s"] / out["new_s"]
    # Whole-run checkpoint I/O: the old way writes every row once per later checkpoint.
    n_ckpt = steps // every
    out["run_old_rows_written"] = every * n_ckpt * (n_ckpt + 1) // 2
    out["run_new_rows_written"] = every * n_ckpt
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--tasks", type=int, default=1)
    parser.add_argument("--every", type=int, default=5_000,
                        help="checkpoint_every (config.yaml: 5000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = [measure(args.tasks, s, args.every, args.repeats) for s in args.steps]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("| step N | re-save all (s) | append (s) | ratio | bytes re-saved | bytes appended |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['step']:,} | {r['old_s']:.3f} | {r['new_s']:.4f} | {r['ratio']:.0f}x | "
              f"{r['old_bytes'] / 1e6:.1f} MB | {r['new_bytes'] / 1e6:.2f} MB |")


if __name__ == "__main__":
    main()

"""Turn a family's lifetime file into one validated buffer file per task (docs/design.md §3)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from macaw.behaviour.trainer import LIFETIME_FORMAT
from macaw.data import load_task_buffer, write_task_buffer
from macaw.envs import task_params
from macaw.io import atomic_path


def export_task_buffer(lifetime_path: Path, task_id: int, out_path: Path, gamma: float) -> Path:
    """Write ``task_id``'s lifetime transitions to ``out_path`` in the buffer format.

    Monte-Carlo returns are computed there (:func:`macaw.data.compute_mc_returns`); the
    written file is read back through the validating reader before this returns, and the
    per-episode returns are checked against the ones the trainer logged. Per-episode success
    flags (families with a success flag, e.g. ml45) are copied as ``episode_successes``.
    """
    lifetime_path = Path(lifetime_path)
    with h5py.File(lifetime_path, "r") as f:
        if f.attrs.get("format") != LIFETIME_FORMAT:
            raise ValueError(f"{lifetime_path}: attribute 'format' is "
                             f"{f.attrs.get('format')!r}, expected {LIFETIME_FORMAT!r}")
        group_name = f"task{task_id:02d}"
        if group_name not in f:
            raise KeyError(f"{lifetime_path}: no group {group_name!r} (task {task_id}); "
                           f"found {sorted(f.keys())}")
        g = f[group_name]
        arrays = {k: g[k][()] for k in ("observations", "actions", "rewards",
                                         "next_observations", "terminals", "timeouts")}
        logged_returns = g["episode_returns"][()]
        successes = g["episode_successes"][()] if "episode_successes" in g else None
        attrs = dict(f.attrs)
    family = str(attrs["family"])
    # Written and checked under a temporary name: a failed export leaves nothing at out_path.
    with atomic_path(out_path) as tmp:
        _write_and_check(tmp, out_path, lifetime_path, arrays, attrs, family, task_id, gamma,
                         successes, logged_returns)
    return Path(out_path)


def _write_and_check(tmp: Path, out_path: Path, lifetime_path: Path, arrays: dict, attrs: dict,
                     family: str, task_id: int, gamma: float, successes, logged_returns) -> None:
    write_task_buffer(
        tmp, **arrays, env_id=str(attrs["env_id"]), family=family, task_id=task_id,
        task_params=task_params(family, task_id), gamma=gamma,
        policy_steps=int(attrs["policy_steps"]), algorithm=str(attrs["algorithm"]),
        config=json.loads(attrs["config"]), episode_successes=successes,
        # The behaviour run made the data; a lifetime from before provenance: this process.
        provenance=json.loads(attrs["provenance"]) if "provenance" in attrs else None,
    )
    buffer = load_task_buffer(tmp)
    if not np.allclose(buffer.episode_returns, logged_returns, rtol=1e-4, atol=1e-3):
        raise ValueError(f"{out_path}: episode returns recomputed from the transitions do not "
                         f"match those logged during training in {lifetime_path}; nothing "
                         "was written")


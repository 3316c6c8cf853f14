"""Turn a family's lifetime file into one validated buffer file per task (docs/design.md §3)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from macaw.behaviour.trainer import LIFETIME_FORMAT
from macaw.data import write_task_buffer
from macaw.data.buffer import (BufferSchemaError, check_episode_returns, check_successes,
                               check_task_identity, episode_ends, load_task_buffer,
                               read_dataset, validate_transitions)
from macaw.envs import task_params
from macaw.io import atomic_path

log = logging.getLogger(__name__)

LIFETIME_CHECKSUMS = {"macaw-lifetime-1": False, LIFETIME_FORMAT: True}
"""Readable lifetime formats -> whether every dataset carries a Fletcher-32 checksum (format 1,
from before checksums, is still read, with a warning)."""

TRANSITION_KEYS = ("observations", "actions", "rewards", "next_observations", "terminals",
                   "timeouts")


class LifetimeTask(NamedTuple):
    """One task's group of a lifetime file, checked (:func:`read_lifetime_task`)."""

    arrays: dict[str, np.ndarray]
    """The transitions (``observations`` ... ``timeouts``)."""
    episode_returns: np.ndarray
    """Returns logged by the trainer, one per finished episode."""
    episode_successes: np.ndarray | None
    """Per-episode success flags (families with a success flag), else None."""
    attrs: dict[str, Any]
    """The file's attributes (family, env_id, algorithm, policy_steps, config, provenance)."""


def _error(path: Path, what: str, expected: str, found: Any) -> BufferSchemaError:
    return BufferSchemaError(f"{path}: {what}: expected {expected}, found {found}")


def read_lifetime_task(lifetime_path: Path, task_id: int) -> LifetimeTask:
    """Read and check ``task_id``'s group of a lifetime file with the buffers' checks:
    every dataset's checksum (format 2) and HDF5 type, finite values, actions in the box, a
    last transition that ends an episode, logged episode returns equal to the summed rewards,
    and ``env_id`` and the observation / action sizes of ``family``'s environment. Any failure,
    a truncated or unreadable file included, is a :class:`BufferSchemaError` naming the file
    and the key (``task02/observations``)."""
    path = Path(lifetime_path)
    group_name = f"task{task_id:02d}"
    if not path.is_file():
        raise _error(path, "file", "an existing lifetime file", "no such file")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs.keys()}
            fmt = attrs.get("format")
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            if fmt not in LIFETIME_CHECKSUMS:
                raise _error(path, "attribute 'format'", " or ".join(map(repr, LIFETIME_CHECKSUMS)),
                             repr(fmt))
            for name in ("family", "env_id", "algorithm", "policy_steps", "config"):
                if name not in attrs:
                    raise _error(path, f"attribute {name!r}", "present", "missing")
            if group_name not in f:
                raise _error(path, f"group {group_name!r}", f"the transitions of task {task_id}",
                             f"only the groups {sorted(f.keys())}")
            g = f[group_name]
            checksummed = LIFETIME_CHECKSUMS[fmt]

            def read(key: str) -> np.ndarray:
                return read_dataset(path, g, key, checksummed, name=f"{group_name}/{key}")

            arrays = {k: read(k) for k in TRANSITION_KEYS}
            returns = read("episode_returns")
            successes = read("episode_successes") if "episode_successes" in g else None
    except BufferSchemaError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise _error(path, "file", "a readable HDF5 lifetime file",
                     f"unreadable ({exc})") from exc
    if not checksummed:
        log.warning("%s: lifetime format %r has no checksums", path, fmt)

    def as_str(name: str) -> str:
        value = attrs[name]
        return value.decode() if isinstance(value, bytes) else str(value)

    validate_transitions(path, arrays, prefix=f"{group_name}/")
    check_task_identity(path, as_str("family"), as_str("env_id"), task_id,
                        arrays["observations"].shape[1], arrays["actions"].shape[1])
    ends = episode_ends(arrays["terminals"], arrays["timeouts"])
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    for key, values in (("episode_returns", returns), ("episode_successes", successes)):
        if values is not None and values.shape != starts.shape:
            raise _error(path, f"key '{group_name}/{key}'",
                         f"shape {starts.shape} (one per episode)", f"shape {values.shape}")
    check_episode_returns(path, arrays["rewards"], starts, returns,
                          name=f"{group_name}/episode_returns")
    if successes is not None:
        check_successes(path, successes, name=f"{group_name}/episode_successes")
    return LifetimeTask(arrays, returns, successes, attrs)


def export_task_buffer(lifetime_path: Path, task_id: int, out_path: Path, gamma: float) -> Path:
    """Write ``task_id``'s lifetime transitions to ``out_path`` in the buffer format.

    The lifetime is checked first (:func:`read_lifetime_task`: checksums and the buffers' value
    checks, so corrupt data never gets a buffer's fresh checksums). Monte-Carlo returns are
    computed there (:func:`macaw.data.compute_mc_returns`); the written file is read back
    through the validating reader before this returns. Per-episode success flags (families
    with a success flag, e.g. ml45) are copied as ``episode_successes``.
    """
    lifetime_path = Path(lifetime_path)
    task = read_lifetime_task(lifetime_path, task_id)
    family = str(task.attrs["family"])
    # Written and checked under a temporary name: a failed export leaves nothing at out_path.
    with atomic_path(out_path) as tmp:
        _write_and_check(tmp, task, family, task_id, gamma)
    return Path(out_path)


def _write_and_check(tmp: Path, task: LifetimeTask, family: str, task_id: int,
                     gamma: float) -> None:
    attrs = task.attrs
    write_task_buffer(
        tmp, **task.arrays, env_id=str(attrs["env_id"]), family=family, task_id=task_id,
        task_params=task_params(family, task_id), gamma=gamma,
        policy_steps=int(attrs["policy_steps"]), algorithm=str(attrs["algorithm"]),
        config=json.loads(attrs["config"]), episode_successes=task.episode_successes,
        # The behaviour run made the data; a lifetime from before provenance: this process.
        provenance=json.loads(attrs["provenance"]) if "provenance" in attrs else None,
    )
    load_task_buffer(tmp, gamma=gamma)

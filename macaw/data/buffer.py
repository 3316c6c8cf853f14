"""The versioned on-disk buffer format: one HDF5 file per task (docs/design.md §3).

Layout (D4RL-style flat datasets; ``N`` transitions, ``E`` episodes)::

    observations       (N, obs_dim) float32
    actions            (N, act_dim) float32
    rewards            (N,)         float32
    next_observations  (N, obs_dim) float32
    terminals          (N,)         bool     true environment termination
    timeouts           (N,)         bool     time-limit truncation (200 steps for MuJoCo)
    mc_returns         (N,)         float32  discounted Monte-Carlo return to the episode end
    episode_starts     (E,)         int64    index of each episode's first transition
    episode_returns    (E,)         float32  undiscounted return of each episode (Fig. 8/9 curves)
    episode_successes  (E,)         float32  optional: 1 if any step of the episode had
                                             info["success"] (Meta-World ml45), else 0

Attributes: ``schema_version``, ``env_id``, ``family``, ``task_id``, ``task_params`` (JSON),
``gamma``, ``policy_steps``, ``algorithm``, ``config`` (JSON), ``created_by``, optional
``provenance`` (JSON: the code, package versions and host that made the data,
:mod:`macaw.provenance`). Schema 2: every
dataset has a Fletcher-32 checksum (``h5py`` ``fletcher32=True``), verified on every read.

``mc_returns`` is the discounted return to the end of the transition's episode, with no value
tail: the behaviour trainer drops the unfinished last episode, so every buffer ends at an episode
boundary. Learners that bootstrap at the time limit (as the authors' code does, docs/design.md
§4.1) add ``gamma^(T-t) V(s_T)`` on top; the two quantities that needs, the episode's last
next-state ``s_T`` and ``gamma^(T-t)``, are derived on load from the episode boundaries
(:meth:`TaskBuffer.bootstrap_tails`), so the on-disk format needs no extra fields. The authors
stored both per transition instead (``terminal_obs``, ``terminal_discounts``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np
from scipy.signal import lfilter

from macaw import __version__
from macaw.io import atomic_hdf5
from macaw.provenance import provenance as current_provenance

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""2: every dataset carries an HDF5 Fletcher-32 checksum, verified whenever it is read.
1: the same layout without checksums; still read, with a warning."""
READABLE_VERSIONS = (1, 2)

FLOAT_KEYS = ("observations", "actions", "rewards", "next_observations", "mc_returns")
BOOL_KEYS = ("terminals", "timeouts")
EPISODE_KEYS = ("episode_starts", "episode_returns")
REQUIRED_KEYS = FLOAT_KEYS + BOOL_KEYS + EPISODE_KEYS
OPTIONAL_KEYS = ("episode_successes",)
REQUIRED_ATTRS = (
    "schema_version",
    "env_id",
    "family",
    "task_id",
    "task_params",
    "gamma",
    "policy_steps",
    "algorithm",
    "config",
    "created_by",
)


class BufferSchemaError(ValueError):
    """A buffer file is missing, unreadable or does not match ``SCHEMA_VERSION``."""


def episode_ends(terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """Indices of the last transition of every episode (terminal or timeout)."""
    return np.flatnonzero(np.asarray(terminals, bool) | np.asarray(timeouts, bool))


def episode_tails(terminals: np.ndarray, timeouts: np.ndarray,
                  gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per transition: the index of its episode's last transition and ``gamma^(T-t)``, 0 for
    an episode that ended in a true termination (:meth:`TaskBuffer.bootstrap_tails`). Every
    episode must end at a terminal or a timeout."""
    ends = episode_ends(terminals, timeouts)
    lengths = np.diff(np.concatenate([[0], ends + 1]))
    tail_index = np.repeat(ends, lengths).astype(np.int64)
    steps_to_end = tail_index + 1 - np.arange(tail_index.size, dtype=np.int64)
    discount = np.power(float(gamma), steps_to_end, dtype=np.float64)
    discount[np.asarray(terminals, bool)[tail_index]] = 0.0
    return tail_index, discount.astype(np.float32)


def compute_mc_returns(
    rewards: np.ndarray, terminals: np.ndarray, timeouts: np.ndarray, gamma: float
) -> np.ndarray:
    """Discounted return to the end of each episode: R_t = r_t + gamma * R_{t+1}.

    The recursion restarts after every terminal or timeout and is not bootstrapped (see the
    module docstring). Transitions after the last episode end, if any, are treated as an episode
    that ends at the array end; :func:`write_task_buffer` never stores such a tail. Computed in
    float64 (one discount filter per episode) and returned as float32.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    n = rewards.shape[0]
    out = np.empty(n, dtype=np.float64)
    ends = episode_ends(terminals, timeouts)
    if ends.size == 0 or ends[-1] != n - 1:
        ends = np.append(ends, n - 1) if n else ends
    start = 0
    a = np.array([1.0, -float(gamma)])
    for end in ends:
        segment = rewards[start : end + 1]
        # Reversed IIR filter y[k] = x[k] + gamma * y[k-1] is exactly the backward recursion.
        out[start : end + 1] = lfilter([1.0], a, segment[::-1])[::-1]
        start = end + 1
    return out.astype(np.float32)


@dataclass(frozen=True, eq=False)
class TaskBuffer:
    """One task's lifetime replay buffer, as stored on disk (arrays plus decoded attributes)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    mc_returns: np.ndarray
    episode_starts: np.ndarray
    episode_returns: np.ndarray
    env_id: str
    family: str
    task_id: int
    task_params: dict[str, Any]
    gamma: float
    policy_steps: int
    algorithm: str
    config: dict[str, Any]
    created_by: str
    schema_version: int = SCHEMA_VERSION
    episode_successes: np.ndarray | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    """What made the data (:mod:`macaw.provenance`); empty for a file written before it was
    recorded."""
    path: Path | None = field(default=None)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def n_episodes(self) -> int:
        return int(self.episode_starts.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    def bootstrap_tails(self) -> tuple[np.ndarray, np.ndarray]:
        """Per transition ``t``: the index of its episode's last transition (whose
        ``next_observations`` row is ``s_T``) and the discount ``gamma^(T-t)`` of the value tail
        ``gamma^(T-t) V(s_T)`` that turns ``mc_returns[t]`` into the return bootstrapped at the
        episode's end (``T`` = one past the last transition, so the last one gets ``gamma``).

        An episode cut by the time limit (``timeouts``) is bootstrapped; one that ended in a
        true environment termination (``terminals``) has nothing after it and gets discount 0.
        The authors' code bootstraps every episode, terminated or not (docs/design.md §4.1); the
        families whose episodes can terminate (ant-dir, walker-params) are the only ones where
        the two differ."""
        return episode_tails(self.terminals, self.timeouts, self.gamma)

    def episode_slices(self) -> list[slice]:
        """One ``slice`` of transition indices per episode, in buffer order."""
        stops = np.append(self.episode_starts[1:], len(self))
        return [slice(int(a), int(b)) for a, b in zip(self.episode_starts, stops)]


def _shape_error(field_name: str, expected: str, found: Any) -> ValueError:
    return ValueError(f"write_task_buffer: field {field_name!r} expected {expected}, found {found}")


def write_task_buffer(
    path: str | os.PathLike,
    *,
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_observations: np.ndarray,
    terminals: np.ndarray,
    timeouts: np.ndarray,
    env_id: str,
    family: str,
    task_id: int,
    task_params: Mapping[str, Any],
    gamma: float,
    policy_steps: int,
    algorithm: str,
    config: Mapping[str, Any],
    episode_successes: np.ndarray | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Validate and atomically write one task's buffer; returns the path written.

    ``provenance`` records what made the data (the behaviour run's, when exporting a lifetime);
    default: this process's (:func:`macaw.provenance.provenance`).

    Computes ``mc_returns`` (:func:`compute_mc_returns`), ``episode_starts`` and
    ``episode_returns``. The file is written to a temporary file in the target directory and
    renamed over ``path`` only once complete, so a crash never leaves a partial file at ``path``.
    Raises ``ValueError`` naming the field for any shape/length mismatch, and if the last
    transition does not end an episode.
    """
    path = Path(path)
    obs = np.asarray(observations, dtype=np.float32)
    act = np.asarray(actions, dtype=np.float32)
    rew = np.asarray(rewards, dtype=np.float32)
    next_obs = np.asarray(next_observations, dtype=np.float32)
    term = np.asarray(terminals).astype(bool)
    tout = np.asarray(timeouts).astype(bool)

    if obs.ndim != 2:
        raise _shape_error("observations", "a 2-D array (N, obs_dim)", f"shape {obs.shape}")
    n, obs_dim = obs.shape
    if n == 0:
        raise _shape_error("observations", "at least one transition", "N=0")
    if act.ndim != 2 or act.shape[0] != n:
        raise _shape_error("actions", f"shape ({n}, act_dim)", f"shape {act.shape}")
    if next_obs.shape != obs.shape:
        raise _shape_error("next_observations", f"shape {obs.shape}", f"shape {next_obs.shape}")
    for name, arr in (("rewards", rew), ("terminals", term), ("timeouts", tout)):
        if arr.shape != (n,):
            raise _shape_error(name, f"shape ({n},)", f"shape {arr.shape}")
    if not (term[-1] or tout[-1]):
        raise ValueError(
            "write_task_buffer: field 'terminals'/'timeouts' expected the last transition to end "
            "an episode (terminal or timeout; drop the unfinished last episode), found neither"
        )

    ends = episode_ends(term, tout)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    episode_returns = np.add.reduceat(rew.astype(np.float64), starts).astype(np.float32)
    n_episodes = starts.shape[0]
    succ = None
    if episode_successes is not None:
        succ = np.asarray(episode_successes, dtype=np.float32)
        if succ.shape != (n_episodes,):
            raise _shape_error(
                "episode_successes", f"shape ({n_episodes},) (one per episode)", f"shape {succ.shape}"
            )
        if not np.all((succ >= 0) & (succ <= 1)):
            raise _shape_error("episode_successes", "values in [0, 1]", f"{succ[:5]}...")
    mc = compute_mc_returns(rew, term, tout, gamma)

    datasets: dict[str, np.ndarray] = {
        "observations": obs,
        "actions": act,
        "rewards": rew,
        "next_observations": next_obs,
        "terminals": term,
        "timeouts": tout,
        "mc_returns": mc,
        "episode_starts": starts,
        "episode_returns": episode_returns,
    }
    if succ is not None:
        datasets["episode_successes"] = succ
    attrs: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "env_id": str(env_id),
        "family": str(family),
        "task_id": int(task_id),
        "task_params": json.dumps(dict(task_params), sort_keys=True),
        "gamma": float(gamma),
        "policy_steps": int(policy_steps),
        "algorithm": str(algorithm),
        "config": json.dumps(dict(config), sort_keys=True, default=str),
        "created_by": f"macaw {__version__}",
        "provenance": json.dumps(dict(provenance) if provenance is not None
                                 else current_provenance(), sort_keys=True),
    }

    with atomic_hdf5(path) as f:        # built in memory: a full disk is one clear error
        for key, value in datasets.items():
            # Fletcher-32 needs a chunked layout; h5py picks the chunks.
            f.create_dataset(key, data=value, fletcher32=True, chunks=True)
        f.attrs.update(attrs)
    return path


def _schema_error(path: Path, what: str, expected: str, found: Any) -> BufferSchemaError:
    return BufferSchemaError(f"{path}: {what}: expected {expected}, found {found}")


def load_task_buffer(path: str | os.PathLike) -> TaskBuffer:
    """Read and validate a buffer file written by :func:`write_task_buffer`.

    Raises :class:`BufferSchemaError` naming the file, the key or attribute, and what was expected
    versus found, for: a missing/unreadable/truncated file, a different ``schema_version``, a
    missing key or attribute, and inconsistent dtypes or shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise _schema_error(path, "file", "an existing HDF5 buffer file", "no such file")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs.keys()}
            if "schema_version" not in attrs:
                raise _schema_error(path, "attribute 'schema_version'", "present", "missing")
            version = int(attrs["schema_version"])
            if version not in READABLE_VERSIONS:
                raise _schema_error(
                    path, "attribute 'schema_version'",
                    " or ".join(map(str, READABLE_VERSIONS)), f"{version}"
                )
            for name in REQUIRED_ATTRS:
                if name not in attrs:
                    raise _schema_error(path, f"attribute {name!r}", "present", "missing")
            for key in REQUIRED_KEYS:
                if key not in f:
                    raise _schema_error(path, f"key {key!r}", "present", "missing")
            arrays = {k: _read_dataset(path, f, k, version)
                      for k in REQUIRED_KEYS + OPTIONAL_KEYS if k in f}
            if version < 2:
                log.warning("%s: schema_version %d has no checksums; re-export it to get "
                            "them", path, version)
    except BufferSchemaError:
        raise
    except (OSError, KeyError, RuntimeError) as exc:
        raise _schema_error(
            path, "file", "a readable HDF5 buffer file", f"unreadable ({exc})"
        ) from exc

    _validate_arrays(path, arrays)

    def decode_json(name: str) -> dict[str, Any]:
        raw = attrs[name]
        raw = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _schema_error(path, f"attribute {name!r}", "a JSON object", repr(raw)) from exc
        if not isinstance(value, dict):
            raise _schema_error(path, f"attribute {name!r}", "a JSON object", type(value).__name__)
        return value

    def as_str(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    return TaskBuffer(
        **{k: arrays[k] for k in REQUIRED_KEYS},
        episode_successes=arrays.get("episode_successes"),
        env_id=as_str(attrs["env_id"]),
        family=as_str(attrs["family"]),
        task_id=int(attrs["task_id"]),
        task_params=decode_json("task_params"),
        gamma=float(attrs["gamma"]),
        policy_steps=int(attrs["policy_steps"]),
        algorithm=as_str(attrs["algorithm"]),
        config=decode_json("config"),
        created_by=as_str(attrs["created_by"]),
        schema_version=version,
        provenance=decode_json("provenance") if "provenance" in attrs else {},
        path=path,
    )


def _read_dataset(path: Path, f: h5py.File, key: str, version: int) -> np.ndarray:
    """Read one dataset, verifying its checksum (schema 2): a flipped bit is an error that
    names the file and the key."""
    dataset = f[key]
    if version >= 2 and not dataset.fletcher32:
        raise _schema_error(path, f"key {key!r}", "a Fletcher-32 checksum (schema 2)", "none")
    try:
        return dataset[()]
    except OSError as exc:
        raise _schema_error(path, f"key {key!r}", "data matching its Fletcher-32 checksum",
                            f"a mismatch, the file is corrupted ({exc})") from exc


def _validate_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    obs = arrays["observations"]
    if obs.ndim != 2:
        raise _schema_error(path, "key 'observations'", "a 2-D array (N, obs_dim)", f"shape {obs.shape}")
    n = obs.shape[0]
    if arrays["actions"].ndim != 2:
        raise _schema_error(
            path, "key 'actions'", "a 2-D array (N, act_dim)", f"shape {arrays['actions'].shape}"
        )
    if arrays["next_observations"].shape != obs.shape:
        raise _schema_error(
            path, "key 'next_observations'", f"shape {obs.shape}", f"shape {arrays['next_observations'].shape}"
        )
    for key in FLOAT_KEYS:
        if arrays[key].dtype.kind != "f":
            raise _schema_error(path, f"key {key!r}", "a float dtype", f"dtype {arrays[key].dtype}")
        if arrays[key].shape[0] != n:
            raise _schema_error(path, f"key {key!r}", f"length {n} (N of observations)", f"length {arrays[key].shape[0]}")
    for key in ("rewards", "mc_returns") + BOOL_KEYS:
        if arrays[key].shape != (n,):
            raise _schema_error(path, f"key {key!r}", f"shape ({n},)", f"shape {arrays[key].shape}")
    for key in BOOL_KEYS:
        if arrays[key].dtype != np.bool_:
            raise _schema_error(path, f"key {key!r}", "dtype bool", f"dtype {arrays[key].dtype}")
    for key in FLOAT_KEYS:
        bad = ~np.isfinite(arrays[key])
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            raise _schema_error(path, f"key {key!r}", "finite values",
                                f"{int(bad.sum())} NaN/inf, the first at row {first}")
    actions = arrays["actions"]
    if actions.size and np.abs(actions).max() > 1.0 + 1e-6:
        row = int(np.argwhere(np.abs(actions) > 1.0 + 1e-6)[0][0])
        raise _schema_error(path, "key 'actions'", "values in the action box [-1, 1]",
                            f"{float(np.abs(actions).max()):.3g} at row {row}")

    starts = arrays["episode_starts"]
    if starts.ndim != 1 or starts.dtype.kind not in "iu" or starts.size == 0:
        raise _schema_error(
            path, "key 'episode_starts'", "a non-empty 1-D integer array", f"shape {starts.shape} dtype {starts.dtype}"
        )
    if starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= n:
        raise _schema_error(
            path, "key 'episode_starts'", f"strictly increasing, starting at 0, below N={n}", f"{starts[:5]}..."
        )
    ends = episode_ends(arrays["terminals"], arrays["timeouts"])
    expected_starts = np.concatenate([[0], ends[:-1] + 1])
    if expected_starts.shape != starts.shape or np.any(expected_starts != starts):
        raise _schema_error(
            path,
            "key 'episode_starts'",
            f"the {expected_starts.size} episode starts implied by terminals/timeouts",
            f"{starts.size} starts",
        )
    if ends.size == 0 or ends[-1] != n - 1:
        raise _schema_error(
            path, "keys 'terminals'/'timeouts'", "the last transition to end an episode", "an unfinished episode"
        )
    e = starts.size
    for key in ("episode_returns",) + tuple(k for k in OPTIONAL_KEYS if k in arrays):
        if arrays[key].shape != (e,):
            raise _schema_error(path, f"key {key!r}", f"shape ({e},) (one per episode)", f"shape {arrays[key].shape}")
    if "episode_successes" in arrays:
        succ = arrays["episode_successes"]
        if succ.dtype.kind != "f" or not np.all((succ >= 0) & (succ <= 1)):
            raise _schema_error(path, "key 'episode_successes'", "float values in [0, 1]",
                                f"dtype {succ.dtype}, values {succ[:5]}...")

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

What :func:`load_task_buffer` checks beyond the checksums (which cover the data, not the HDF5
metadata that describes it): every dataset's HDF5 type is exactly the one above (a flipped bit
in a type description would otherwise turn float32 data into other values); the values
(finite, actions in the box); the derived fields against the transitions (``episode_starts``,
``episode_returns`` = summed rewards, ``mc_returns`` = the discounted returns of ``rewards``
with the ``gamma`` attribute, which must lie in (0, 1]); and ``env_id``, ``task_params`` and
the observation and action sizes against the registered environment of ``family`` and
``task_id`` (:data:`macaw.envs.FAMILIES`).

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
import math
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


DATASET_TYPES: dict[str, tuple[str, tuple[h5py.h5t.TypeID, ...]]] = {
    **{key: ("float32", (h5py.h5t.IEEE_F32LE, h5py.h5t.IEEE_F32BE))
       for key in FLOAT_KEYS + ("episode_returns", "episode_successes")},
    **{key: ("bool", (h5py.h5t.py_create(np.dtype(bool)),)) for key in BOOL_KEYS},
    "episode_starts": ("int64", (h5py.h5t.STD_I64LE, h5py.h5t.STD_I64BE)),
}
"""Every dataset's documented dtype and the HDF5 types that store it (either byte order; a
bool is h5py's 8-bit FALSE/TRUE enum). Compared with ``H5Tequal``, which sees every field of the
type description (size, precision, exponent and mantissa layout, bias), not only the numpy
dtype h5py maps it to."""

VALUE_RTOL = 1e-5
"""Relative tolerance of the derived-field checks (``episode_returns``, ``mc_returns``): float32
rounding is ~6e-8, a forged or rescaled field is off by orders of magnitude more."""


class BufferSchemaError(ValueError):
    """A buffer (or lifetime) file is missing, unreadable or does not match its schema."""


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


def load_task_buffer(path: str | os.PathLike, gamma: float | None = None) -> TaskBuffer:
    """Read and validate a buffer file written by :func:`write_task_buffer`.

    Raises :class:`BufferSchemaError` naming the file, the key or attribute, and what was expected
    versus found, for: a missing/unreadable/truncated file, a different ``schema_version``, a
    missing key or attribute, a dataset whose HDF5 type is not the documented one, inconsistent
    shapes, non-finite values or actions outside the box, derived fields that do not follow
    from the transitions, a ``gamma`` outside (0, 1] (or, given ``gamma``, the run config's
    discount, not equal to it), and ``env_id``, ``task_params`` or observation / action sizes
    that are not those of ``family``'s environment and ``task_id`` (see the module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise _schema_error(path, "file", "an existing HDF5 buffer file", "no such file")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs.keys()}
            if "schema_version" not in attrs:
                raise _schema_error(path, "attribute 'schema_version'", "present", "missing")
            version = _attr_value(path, attrs, "schema_version", int)
            if version not in READABLE_VERSIONS:
                raise _schema_error(
                    path, "attribute 'schema_version'",
                    " or ".join(map(str, READABLE_VERSIONS)), f"{version}"
                )
            for name in REQUIRED_ATTRS:
                if name not in attrs:
                    raise _schema_error(path, f"attribute {name!r}", "present", "missing")
            arrays = {k: read_dataset(path, f, k, checksummed=version >= 2)
                      for k in REQUIRED_KEYS + OPTIONAL_KEYS if k in REQUIRED_KEYS or k in f}
            if version < 2:
                log.warning("%s: schema_version %d has no checksums; re-export it to get "
                            "them", path, version)
    except BufferSchemaError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        # A damaged file can fail anywhere in h5py (a header, an attribute's type): all of it
        # is the one error that names the file.
        raise _schema_error(
            path, "file", "a readable HDF5 buffer file", f"unreadable ({exc})"
        ) from exc

    def decode_json(name: str) -> dict[str, Any]:
        raw = _attr_value(path, attrs, name, str)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _schema_error(path, f"attribute {name!r}", "a JSON object", repr(raw)) from exc
        if not isinstance(value, dict):
            raise _schema_error(path, f"attribute {name!r}", "a JSON object", type(value).__name__)
        return value

    validate_transitions(path, arrays)
    meta = dict(
        env_id=_attr_value(path, attrs, "env_id", str),
        family=_attr_value(path, attrs, "family", str),
        task_id=_attr_value(path, attrs, "task_id", int),
        task_params=decode_json("task_params"),
        gamma=_attr_value(path, attrs, "gamma", float),
        policy_steps=_attr_value(path, attrs, "policy_steps", int),
        algorithm=_attr_value(path, attrs, "algorithm", str),
        config=decode_json("config"),
        created_by=_attr_value(path, attrs, "created_by", str),
    )
    check_task_identity(path, meta["family"], meta["env_id"], meta["task_id"],
                        arrays["observations"].shape[1], arrays["actions"].shape[1],
                        meta["task_params"])
    check_gamma(path, meta["gamma"], gamma)
    _validate_derived(path, arrays, meta["gamma"])
    return TaskBuffer(
        **{k: arrays[k] for k in REQUIRED_KEYS},
        episode_successes=arrays.get("episode_successes"),
        **meta,
        schema_version=version,
        provenance=decode_json("provenance") if "provenance" in attrs else {},
        path=path,
    )


def _attr_value(path: Path, attrs: Mapping[str, Any], name: str, kind: type) -> Any:
    """Attribute ``name`` as a Python ``str``, ``int`` or ``float``; an error naming it if it
    is stored as anything else (an array, a string where a number belongs)."""
    value = attrs[name]
    if kind is str and isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else value
    if kind is int and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if kind is float and isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    expected = {str: "a string", int: "an integer", float: "a number"}[kind]
    raise _schema_error(path, f"attribute {name!r}", expected,
                        f"{type(value).__name__} {value!r}"[:200])


def read_dataset(path: Path, group: h5py.Group, key: str, checksummed: bool,
                 name: str | None = None) -> np.ndarray:
    """Read dataset ``key`` of ``group``, first checking that its HDF5 type is exactly the
    documented one (:data:`DATASET_TYPES`) and, if ``checksummed``, that it has a Fletcher-32
    checksum, which the read then verifies: a flipped bit is an error that names the file and
    the key (``name``, default ``key``; a lifetime file's ``task02/observations``)."""
    name = name or key
    if key not in group:
        raise _schema_error(path, f"key {name!r}", "present", "missing")
    dataset = group[key]
    if not isinstance(dataset, h5py.Dataset):
        raise _schema_error(path, f"key {name!r}", "a dataset", type(dataset).__name__)
    dtype_name, types = DATASET_TYPES[key]
    stored = dataset.id.get_type()
    if not any(stored.equal(t) for t in types):
        raise _schema_error(path, f"key {name!r}", f"the HDF5 type of dtype {dtype_name}",
                            _describe_type(stored))
    if checksummed and not dataset.fletcher32:
        raise _schema_error(path, f"key {name!r}", "a Fletcher-32 checksum (schema 2)", "none")
    try:
        data = dataset[()]
    except OSError as exc:
        raise _schema_error(path, f"key {name!r}", "data matching its Fletcher-32 checksum",
                            f"a mismatch, the file is corrupted ({exc})") from exc
    for chunk in _fill_value_chunks(dataset, data):
        # A chunk that its index no longer finds (a flipped bit in a B-tree key) reads as
        # the fill value without an error and without a checksum to fail: check that the
        # chunks that read as all-fill really are stored.
        try:
            dataset.id.read_direct_chunk(chunk)
        except (KeyError, ValueError, OSError, RuntimeError) as exc:
            raise _schema_error(path, f"key {name!r}", "every chunk in the chunk index",
                                f"the chunk at {chunk} missing, the file is corrupted "
                                f"({exc})") from exc
    return data


def _fill_value_chunks(dataset: h5py.Dataset, data: np.ndarray) -> list[tuple[int, ...]]:
    """Offsets of the chunks of ``dataset`` whose region of ``data`` is all fill value
    (vectorised: one comparison, then a reduction per axis over the chunk grid)."""
    if dataset.chunks is None or data.size == 0:
        return []
    starts = [np.arange(0, size, step) for size, step in zip(data.shape, dataset.chunks)]
    differs = data != dataset.fillvalue
    for axis, axis_starts in enumerate(starts):
        differs = np.logical_or.reduceat(differs, axis_starts, axis=axis)
    return [tuple(int(starts[a][i]) for a, i in enumerate(index))
            for index in np.argwhere(~differs)]


def _describe_type(stored: h5py.h5t.TypeID) -> str:
    """What an unexpected HDF5 type is: its numpy dtype if it has one, and for a float the
    fields a flipped bit may have changed."""
    try:
        described = f"dtype {stored.dtype}"
    except (TypeError, ValueError):
        described = "a type with no numpy dtype"
    if isinstance(stored, h5py.h5t.TypeFloatID):
        described += (f" ({stored.get_size()} bytes, precision {stored.get_precision()}, "
                      f"exponent bias {stored.get_ebias()}, sign/exponent/mantissa fields "
                      f"{stored.get_fields()})")
    return described


def validate_transitions(path: Path, arrays: Mapping[str, np.ndarray], prefix: str = "") -> None:
    """The transition arrays (``observations`` ... ``timeouts``, already of their documented
    dtypes): consistent shapes, finite values, actions inside the box ``[-1, 1]``, and a last
    transition that ends an episode. ``prefix`` goes before each key in an error
    (``task02/``: a group of a lifetime file)."""
    def where(key: str) -> str:
        return f"key {prefix + key!r}"

    obs = arrays["observations"]
    if obs.ndim != 2:
        raise _schema_error(path, where("observations"), "a 2-D array (N, obs_dim)",
                            f"shape {obs.shape}")
    n = obs.shape[0]
    if n == 0:
        raise _schema_error(path, where("observations"), "at least one transition", "N=0")
    if arrays["actions"].ndim != 2:
        raise _schema_error(path, where("actions"), "a 2-D array (N, act_dim)",
                            f"shape {arrays['actions'].shape}")
    if arrays["next_observations"].shape != obs.shape:
        raise _schema_error(path, where("next_observations"), f"shape {obs.shape}",
                            f"shape {arrays['next_observations'].shape}")
    for key in FLOAT_KEYS:
        if key in arrays and arrays[key].shape[0] != n:
            raise _schema_error(path, where(key), f"length {n} (N of observations)",
                                f"length {arrays[key].shape[0]}")
    for key in ("rewards", "mc_returns") + BOOL_KEYS:
        if key in arrays and arrays[key].shape != (n,):
            raise _schema_error(path, where(key), f"shape ({n},)", f"shape {arrays[key].shape}")
    for key in FLOAT_KEYS:
        if key not in arrays:
            continue
        bad = ~np.isfinite(arrays[key])
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            raise _schema_error(path, where(key), "finite values",
                                f"{int(bad.sum())} NaN/inf, the first at row {first}")
    actions = arrays["actions"]
    if actions.size and np.abs(actions).max() > 1.0 + 1e-6:
        row = int(np.argwhere(np.abs(actions) > 1.0 + 1e-6)[0][0])
        raise _schema_error(path, where("actions"), "values in the action box [-1, 1]",
                            f"{float(np.abs(actions).max()):.3g} at row {row}")
    if not (arrays["terminals"][-1] or arrays["timeouts"][-1]):
        raise _schema_error(path, f"keys {prefix + 'terminals'!r}/{prefix + 'timeouts'!r}",
                            "the last transition to end an episode", "an unfinished episode")


def check_task_identity(path: Path, family: str, env_id: str, task_id: int, obs_dim: int,
                        act_dim: int, params: Mapping[str, Any] | None = None) -> None:
    """``family`` is a registered task family and the file's ``env_id``, ``task_id``,
    observation and action sizes and (when given) ``task_params`` are those of its
    environment (:data:`macaw.envs.FAMILIES`): a relabelled file of another family fails."""
    # Imported when a file is checked: what only reads splits (macaw.data.splits, the splits
    # stage) needs no environment.
    from macaw.envs import FAMILIES, task_params as family_task_params

    fam = FAMILIES.get(family)
    if fam is None:
        raise _schema_error(path, "attribute 'family'", f"one of {sorted(FAMILIES)}",
                            repr(family))
    if env_id != fam.env_id:
        raise _schema_error(path, "attribute 'env_id'",
                            f"{fam.env_id!r} (the environment of family {family!r})",
                            repr(env_id))
    if not 0 <= task_id < fam.n_tasks:
        raise _schema_error(path, "attribute 'task_id'",
                            f"a task of {family!r} (0..{fam.n_tasks - 1})", task_id)
    for key, found, expected in (("observations", obs_dim, fam.obs_dim),
                                 ("actions", act_dim, fam.act_dim)):
        if found != expected:
            raise _schema_error(path, f"key {key!r}",
                                f"{expected} columns (the {key} of {fam.env_id})",
                                f"{found} columns")
    if params is not None:
        expected_params = json.loads(json.dumps(family_task_params(family, task_id)))
        if not _same_params(dict(params), expected_params):
            raise _schema_error(path, "attribute 'task_params'",
                                f"{json.dumps(expected_params)[:300]} (task {task_id} of "
                                f"{family!r})", json.dumps(dict(params))[:300])


def _same_params(a: Any, b: Any) -> bool:
    """Equal JSON values, numbers to 1e-9 relative (a task table computed with another libm
    may differ in the last bit)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_params(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_params(x, y) for x, y in zip(a, b))
    numbers = (int, float)
    if (isinstance(a, numbers) and isinstance(b, numbers)
            and not isinstance(a, bool) and not isinstance(b, bool)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return type(a) is type(b) and a == b


def check_gamma(path: Path, found: float, expected: float | None = None) -> None:
    """The buffer's discount ``gamma`` lies in (0, 1] and, given the run config's ``expected``,
    equals it exactly (both come from the same config value)."""
    if not (math.isfinite(found) and 0.0 < found <= 1.0):
        raise _schema_error(path, "attribute 'gamma'", "a discount in (0, 1]", found)
    if expected is not None and found != expected:
        raise _schema_error(path, "attribute 'gamma'",
                            f"{expected} (the config's gamma, the discount of 'mc_returns')",
                            found)


def check_episode_returns(path: Path, rewards: np.ndarray, starts: np.ndarray,
                          returns: np.ndarray, name: str = "episode_returns") -> None:
    """``returns`` (one per episode, episodes starting at ``starts``) are the summed rewards,
    to :data:`VALUE_RTOL` of the summed absolute rewards."""
    r = rewards.astype(np.float64)
    sums = np.add.reduceat(r, starts)
    scale = np.add.reduceat(np.abs(r), starts)
    bad = np.abs(returns.astype(np.float64) - sums) > VALUE_RTOL * scale + 1e-6
    if bad.any():
        e = int(np.argmax(bad))
        raise _schema_error(path, f"key {name!r}", "the summed 'rewards' of each episode",
                            f"{float(returns[e]):.6g} for episode {e}, whose rewards sum to "
                            f"{sums[e]:.6g} ({int(bad.sum())} of {bad.size} episodes differ)")


def check_mc_returns(path: Path, arrays: Mapping[str, np.ndarray], gamma: float) -> None:
    """``mc_returns`` follow from ``rewards`` and ``gamma``: ``R_t = r_t + gamma R_{t+1}``
    inside an episode and ``R_t = r_t`` at its last transition, row by row (vectorised, O(N);
    a local residual, so it holds however the returns were summed)."""
    r = arrays["rewards"].astype(np.float64)
    m = arrays["mc_returns"].astype(np.float64)
    continues = ~(arrays["terminals"] | arrays["timeouts"])
    following = np.zeros_like(m)
    following[:-1] = np.where(continues[:-1], m[1:], 0.0)
    target = r + gamma * following
    scale = np.abs(r) + np.abs(m) + gamma * np.abs(following)
    bad = np.abs(m - target) > VALUE_RTOL * scale + 1e-6
    if bad.any():
        t = int(np.argmax(bad))
        raise _schema_error(path, "key 'mc_returns'",
                            f"the discounted returns of 'rewards' with attribute 'gamma' {gamma} "
                            "(R_t = r_t + gamma R_t+1 within an episode)",
                            f"{m[t]:.6g} at row {t} where they give {target[t]:.6g} "
                            f"({int(bad.sum())} of {bad.size} rows differ)")


def _validate_derived(path: Path, arrays: dict[str, np.ndarray], gamma: float) -> None:
    """The fields computed from the transitions: episode starts, returns, successes, MC
    returns."""
    n = arrays["observations"].shape[0]
    starts = arrays["episode_starts"]
    if starts.ndim != 1 or starts.size == 0:
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
    e = starts.size
    for key in ("episode_returns",) + tuple(k for k in OPTIONAL_KEYS if k in arrays):
        if arrays[key].shape != (e,):
            raise _schema_error(path, f"key {key!r}", f"shape ({e},) (one per episode)", f"shape {arrays[key].shape}")
    if "episode_successes" in arrays:
        check_successes(path, arrays["episode_successes"])
    check_episode_returns(path, arrays["rewards"], starts, arrays["episode_returns"])
    check_mc_returns(path, arrays, gamma)


def check_successes(path: Path, successes: np.ndarray, name: str = "episode_successes") -> None:
    """Per-episode success flags lie in [0, 1]."""
    if not np.all((successes >= 0) & (successes <= 1)):
        raise _schema_error(path, f"key {name!r}", "float values in [0, 1]",
                            f"{successes[:5]}...")

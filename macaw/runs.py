"""What every resumable training loop shares: checkpoints that load without running code, and
an append-only store for data that grows with the run.

**Safe checkpoints.** ``torch.load(weights_only=True)`` refuses any pickle that would import
or call something, so a crafted ``checkpoint.pt`` (for example one arriving by ``dvc pull``)
cannot run its payload; it only holds tensors, containers and plain Python values. NumPy
values a loop needs to save (MuJoCo states, Meta-World's Python-side arrays and scalars) are
stored as tensors with a tag and come back with their exact dtype, so a resumed simulator
steps bit-identically. :func:`save_state` / :func:`load_state` do both, atomically; the same
state always gives the same bytes, so an identical rerun leaves DVC's hash unchanged.
:class:`Checkpoint` is what a loop holds: its file, the config it was written with (a resume
under another config is refused, naming every changed field) and the states of its random
generators (:meth:`Checkpoint.rng_states` / :meth:`Checkpoint.restore_rngs`). Behaviour
training, meta-training, few-shot training and online fine-tuning all checkpoint through it.

**Append-only replay.** A behaviour lifetime grows with every step; re-saving all of it at
every checkpoint makes checkpointing quadratic in the run length (a paper-scale 2.5M-step
lifetime would be rewritten hundreds of times). :class:`SegmentStore` writes only the rows
added since the last checkpoint, as one ``.npz`` segment per checkpoint (each written
atomically, loaded with ``allow_pickle=False``), so a run's total checkpoint I/O is linear.

**Seeding.** :func:`stream_generators` (torch and NumPy generators) and :func:`stream_seed` (an
integer, for environment resets and evaluations) derive independent random streams from
``numpy.random.SeedSequence`` (a run seed plus a key such as a task id or a step) instead of
seed arithmetic, so that a task's stream is the same whichever other tasks run beside it.

**One writer.** :func:`run_lock` refuses a second process on a run directory (two
``meta-train`` runs with different configs would both exit 0, the last writer winning).

**Non-finite guard.** :func:`non_finite` names the tensors of a state that hold NaN or infinity;
every loop refuses to save such a state, so the last good checkpoint stays the one a rerun
resumes from.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from macaw.io import atomic_path, remove_partial_writes, write_bytes_atomically

log = logging.getLogger(__name__)

_ARRAY, _SCALAR = "__numpy_array__", "__numpy_scalar__"


def _encode(value: Any, where: str) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise TypeError(f"{where}: cannot checkpoint a NumPy array of dtype {value.dtype}")
        return {_ARRAY: torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, np.generic):
        return {_SCALAR: torch.from_numpy(np.asarray(value).reshape(1).copy())}
    if isinstance(value, dict):
        return {k: _encode(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return tuple(_encode(v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY}:
            return value[_ARRAY].numpy()
        if set(value) == {_SCALAR}:
            return value[_SCALAR].numpy()[0]
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v) for v in value)
    return value


def non_finite(state: dict, prefix: str = "") -> list[str]:
    """Dotted names of the floating-point tensors in ``state`` (a state dict, nested dicts
    allowed) holding a NaN or an infinity: the guard every loop runs before it saves, so that a
    diverged run never overwrites its last good checkpoint."""
    bad = []
    for name, value in state.items():
        if isinstance(value, dict):
            bad += non_finite(value, f"{prefix}{name}.")
        elif isinstance(value, torch.Tensor) and value.is_floating_point() \
                and not torch.isfinite(value).all():
            bad.append(f"{prefix}{name}")
    return bad


def pick_device(name: str, where: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``; ``where`` names the config in the error
    when CUDA is asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{where}: device 'cuda' requested but CUDA is unavailable")
    return torch.device(name)


def stream_generators(seed: int, *key: int) -> tuple[torch.Generator, np.random.Generator]:
    """A torch and a NumPy generator for stream ``key`` of run ``seed``, independent of every
    other key's (``SeedSequence(seed, spawn_key=key)``, one child for each library)."""
    torch_seq, numpy_seq = np.random.SeedSequence(seed, spawn_key=tuple(key)).spawn(2)
    torch_gen = torch.Generator().manual_seed(int(torch_seq.generate_state(1, np.uint64)[0]))
    return torch_gen, np.random.default_rng(numpy_seq)


def stream_seed(seed: int, *key: int) -> int:
    """A 32-bit integer seed for stream ``key`` of run ``seed`` (``SeedSequence(seed,
    spawn_key=key)``), for the APIs that take an int (gymnasium's ``reset``, evaluation
    episodes)."""
    return int(np.random.SeedSequence(seed, spawn_key=tuple(key)).generate_state(1)[0])


ENV_RESET, EVALUATION = 1, 2
"""Keys of the integer streams: a behaviour task's environment (key ``(task, ENV_RESET)``) and a
meta-training run's evaluation at a step (key ``(EVALUATION, step)``)."""


def save_state(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` (tensors, containers, plain values and NumPy arrays/scalars) to
    ``path`` atomically, in a form :func:`load_state` reads with ``weights_only=True``.

    The same state gives the same bytes, so DVC sees an unchanged file after an identical
    rerun: torch names the zip's records after the file it writes (here a random temporary
    name), so the state is serialised into memory, under torch's fixed name for a buffer, and
    the bytes written by Python (which also makes a full disk one clear
    :class:`macaw.io.DiskFullError` instead of a torch stream error)."""
    buffer = io.BytesIO()
    torch.save(_encode(state, "state"), buffer)
    write_bytes_atomically(path, buffer.getbuffer())


def load_state(path: str | os.PathLike, map_location=None) -> dict:
    """Read a :func:`save_state` file without unpickling anything executable; NumPy values come
    back as NumPy values of their saved dtype. A file holding anything else (a crafted pickle)
    raises ``ValueError`` naming the file, and its payload never runs."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # UnpicklingError, or a truncated/foreign file
        raise ValueError(f"{path}: not a loadable checkpoint (only tensors and plain values "
                         f"are accepted): {str(err).splitlines()[0]}") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a checkpoint dict, found {type(state).__name__}")
    return _decode(state)


class Checkpoint:
    """One run's checkpoint file, tied to the config (a plain dict) the run was started with.

    :meth:`save` writes ``{"config": config, **state}`` atomically; :meth:`load` reads it back
    onto the CPU (random-generator states must stay CPU tensors whatever the training device;
    ``load_state_dict`` copies weights onto the device) and refuses a file written with another
    config, naming the file, every changed field and ``hint`` (what to do about it)."""

    def __init__(self, path: str | os.PathLike, config: dict):
        self.path, self.config = Path(path), config

    @staticmethod
    def beside(output: str | os.PathLike) -> Path:
        """The checkpoint of a run whose result is one file, kept beside it while the run
        trains: ``seed0.csv`` -> ``seed0.checkpoint.pt``."""
        return Path(output).with_suffix(".checkpoint.pt")

    def read(self) -> dict | None:
        """The saved state (its ``config`` included), or None when there is no checkpoint.
        A loop calls it as it starts, so it also removes the temporary files of checkpoint
        writes that were killed (:func:`macaw.io.remove_partial_writes`)."""
        remove_partial_writes(self.path)
        return load_state(self.path, map_location="cpu") if self.path.exists() else None

    def differences(self, state: dict) -> list[str]:
        """The fields where ``state``'s config differs from this run's."""
        return config_differences(state.get("config", {}), self.config)

    def refusal(self, differences: list[str], hint: str) -> ValueError:
        return ValueError(f"{self.path}: checkpoint was written with another config "
                          f"({'; '.join(differences)}); {hint}")

    def load(self, hint: str, restart_on_config_change: bool = False) -> dict | None:
        """:meth:`read`, refusing a checkpoint of another config (see the class); with
        ``restart_on_config_change`` such a checkpoint is set aside (:meth:`set_aside`) with
        a warning and None is returned: the run starts afresh."""
        state = self.read()
        if state is None:
            return None
        return self.accept(state, self.differences(state), hint, restart_on_config_change)

    def accept(self, state: dict, differences: list[str], hint: str,
               restart_on_config_change: bool = False) -> dict | None:
        """``state`` when ``differences`` (the config changes that matter, which a loop may
        have narrowed from :meth:`differences`) is empty; otherwise the refusal, or with
        ``restart_on_config_change`` the file set aside with a warning and None."""
        if not differences:
            return state
        if not restart_on_config_change:
            raise self.refusal(differences, hint)
        log.warning("%s: config changed (%s); kept as %s, the run starts afresh", self.path,
                    "; ".join(differences), self.set_aside().name)
        return None

    def save(self, state: dict) -> None:
        save_state(self.path, {"config": self.config, **state})

    def set_aside(self) -> Path:
        """Keep the checkpoint as ``<name>.stale.pt`` (a run starting afresh) and return it."""
        stale = self.path.with_suffix(".stale.pt")
        self.path.replace(stale)
        return stale

    @staticmethod
    def rng_states(numpy_gens: list[np.random.Generator],
                   torch_gens: list[torch.Generator | None]) -> dict:
        """The states of a loop's generators; ``None`` stands for torch's global generator."""
        return {"numpy": [g.bit_generator.state for g in numpy_gens],
                "torch": [torch.get_rng_state() if g is None else g.get_state()
                          for g in torch_gens]}

    @staticmethod
    def restore_rngs(states: dict, numpy_gens: list[np.random.Generator],
                     torch_gens: list[torch.Generator | None]) -> None:
        """Put back :meth:`rng_states`'s states (also the one-generator form, a bare state
        instead of a list, of checkpoints written before it existed)."""
        numpy_states, torch_states = states["numpy"], states["torch"]
        if isinstance(numpy_states, dict):
            numpy_states = [numpy_states]
        if isinstance(torch_states, torch.Tensor):
            torch_states = [torch_states]
        if len(numpy_states) != len(numpy_gens) or len(torch_states) != len(torch_gens):
            raise ValueError(f"checkpoint holds {len(numpy_states)} NumPy and "
                             f"{len(torch_states)} torch generator states, the run has "
                             f"{len(numpy_gens)} and {len(torch_gens)}")
        for g, state in zip(numpy_gens, numpy_states):
            g.bit_generator.state = state
        for g, state in zip(torch_gens, torch_states):
            if g is None:
                torch.set_rng_state(state)
            else:
                g.set_state(state)


class RunLockedError(BlockingIOError):
    """Another process holds the run directory's lock (:func:`run_lock`)."""

    def __str__(self) -> str:
        return self.strerror


LOCK_NAME = ".macaw.lock"
"""The lock file of a run directory (:func:`run_lock`; ``.dvcignore`` leaves it out)."""


@contextmanager
def run_lock(directory: str | os.PathLike, command: str) -> Iterator[None]:
    """Hold ``directory``'s lock while a run writes there: an exclusive ``flock`` on
    ``directory/.macaw.lock``, which holds the owner's pid. A second process (another config,
    or the same one) is refused at once with :class:`RunLockedError` naming the directory and
    that pid, before it reads or writes anything: otherwise both would exit 0 and the last
    writer's files would win. The kernel drops the lock when its process ends, however it
    ends, so a killed run leaves no stale lock."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunLockedError(err.errno, f"{directory}: another {command} (pid {holder}) "
                                 "is writing this run directory; wait for it to end, or stop "
                                 "it, and run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Fields where two configs differ (``macaw.inner_lr: 0.001 -> 0.01``), where a field
    added since the checkpoint was written (e.g. ``MACAWConfig.inner_value_lr``) matches
    while it holds None, its "not set" default."""
    out = [f"{prefix}{key}: only in the checkpoint" for key in saved.keys() - current.keys()]
    for key, value in current.items():
        name = f"{prefix}{key}"
        if key not in saved:
            if value is not None:
                out.append(f"{name}: not in the checkpoint, now {value!r}")
        elif isinstance(value, dict) and isinstance(saved[key], dict):
            out.extend(config_differences(saved[key], value, f"{name}."))
        elif saved[key] != value:
            out.append(f"{name}: {saved[key]!r} -> {value!r}")
    return out


class SegmentStore:
    """Arrays that grow along axis ``axis``, kept in ``directory`` as append-only segments.

    ``append(rows, start, stop)`` writes the rows ``[start, stop)`` as one segment file
    ``{start:012d}-{stop:012d}.npz``; ``load(stop)`` concatenates the segments that tile
    ``[0, stop)`` exactly, and deletes segments beyond ``stop`` (written after the checkpoint
    that recorded ``stop``, by a run that was then killed).
    """

    _NAME = re.compile(r"^(\d{12})-(\d{12})\.npz$")

    def __init__(self, directory: str | os.PathLike, axis: int = 0):
        self.directory = Path(directory)
        self.axis = axis

    def _segments(self) -> list[tuple[int, int, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = self._NAME.match(path.name)
            if match:
                found.append((int(match[1]), int(match[2]), path))
        return sorted(found)

    def append(self, rows: dict[str, np.ndarray], start: int, stop: int) -> None:
        if stop <= start:
            return
        path = self.directory / f"{start:012d}-{stop:012d}.npz"
        for key, value in rows.items():
            if value.shape[self.axis] != stop - start:
                raise ValueError(f"{path}: {key} has {value.shape[self.axis]} rows along axis "
                                 f"{self.axis}; expected {stop - start}")
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **rows)

    def load(self, stop: int, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The rows ``[0, stop)`` of every key; a gap or overlap in the segments is an error
        naming the directory."""
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        position = 0
        for start, end, path in self._segments():
            if start >= stop:
                path.unlink()
                continue
            if start != position or end > stop:
                raise ValueError(f"{self.directory}: segment {path.name} does not continue the "
                                 f"rows [0, {position}) towards {stop}; delete the directory "
                                 "and its checkpoint to start afresh")
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in keys if k not in data]
                if missing:
                    raise ValueError(f"{path}: missing arrays {missing}")
                for k in keys:
                    parts[k].append(data[k])
            position = end
        if position != stop:
            raise ValueError(f"{self.directory}: segments hold rows [0, {position}); the "
                             f"checkpoint needs [0, {stop})")
        return {k: np.concatenate(v, axis=self.axis) if v else np.empty(0) for k, v in
                parts.items()}

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def set_aside(self, stale: str | os.PathLike) -> None:
        """Keep the segments as directory ``stale`` (replacing an older one there), for a run
        that starts afresh beside a checkpoint set aside (:meth:`Checkpoint.set_aside`)."""
        if self.directory.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
            self.directory.replace(stale)

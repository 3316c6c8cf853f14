"""Atomic file writing: every file a rule writes appears whole or not at all, CSV tables
included (:func:`write_csv`, the one row writer of every training loop).

A full disk is one clear error: a write that fails for want of space raises
:class:`DiskFullError` naming the file, and the partial temporary file is removed. HDF5 files
are built in memory and written by Python (:func:`atomic_hdf5`), because HDF5 itself reports a
full disk as a flood of errors and then crashes in h5py's close path (a segfault). A write killed
half-way (SIGKILL) leaves its temporary file; :func:`remove_partial_writes` clears those when
the next run starts.
"""

from __future__ import annotations

import errno
import glob
import io
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """A write failed because its filesystem is full (or over quota); the message names the
    file, and nothing was written there."""

    def __str__(self) -> str:
        return self.strerror


def _disk_full(path: Path) -> DiskFullError:
    return DiskFullError(errno.ENOSPC, f"{path}: no space left on device; nothing was written "
                         "there (free some space and run the command again)", str(path))


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; write there. On success the file is flushed to
    disk, given the permissions a plain ``open`` would (0666 minus the umask; ``mkstemp``'s
    0600 would hide results from collaborators on a shared filesystem) and renamed onto
    ``path``; on any exception it is removed and ``path`` is untouched. A full disk raises
    :class:`DiskFullError` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                        suffix=".tmp")
    except OSError as err:
        if err.errno in _NO_SPACE:
            raise _disk_full(path) from err
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        # Also a DiskFullError of a write nested in this one (into ``tmp``): name the file
        # the caller asked for, not a temporary one.
        if err.errno in _NO_SPACE:
            raise _disk_full(path) from err
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomically(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """``data`` written to ``path`` through :func:`atomic_path` (a full disk: one
    :class:`DiskFullError`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


@contextmanager
def atomic_hdf5(path: str | os.PathLike) -> Iterator["h5py.File"]:
    """Yield a new HDF5 file, built in memory and written to ``path`` atomically on success.

    HDF5 never writes to the disk itself: on a full disk it floods stderr with errors and then
    crashes in h5py's close path (a segfault, not an exception). Here the only disk write is
    one Python write of the finished file's bytes, which fails cleanly
    (:class:`DiskFullError`). The file briefly takes its size again in memory."""
    import h5py

    image = io.BytesIO()
    with h5py.File(image, "w") as f:
        yield f
    write_bytes_atomically(path, image.getbuffer())


def partial_writes(path: str | os.PathLike) -> list[Path]:
    """The temporary files that :func:`atomic_path` writes for ``path`` and that a killed write
    left behind (``.checkpoint.pt.k2j4x9.tmp`` for ``checkpoint.pt``)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def remove_partial_writes(*paths: str | os.PathLike) -> list[Path]:
    """Delete :func:`partial_writes` of ``paths``, when a run that writes them starts (and so
    no other process writes them: the caller holds the run's outputs); returns what went."""
    removed = [tmp for path in paths for tmp in partial_writes(path)]
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    if removed:
        log.info("removed %d temporary file(s) of killed writes: %s", len(removed),
                 ", ".join(str(t) for t in removed))
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_csv(path: str | os.PathLike, columns: Sequence[str],
              rows: Iterable[Sequence[Any] | Mapping[str, Any]],
              formats: Mapping[str, str] | None = None, default: str = "") -> None:
    """Write ``rows`` (tuples in ``columns`` order, or mappings by column name) as a CSV with a
    header, atomically. A cell is ``format(value, formats.get(column, default))``, empty for
    None or a mapping's missing column (``".6f"``: six decimals; ``""``: as ``str``)."""
    formats = formats or {}

    def cells(row) -> Iterator[str]:
        values = (row.get(c) for c in columns) if isinstance(row, Mapping) else row
        for column, value in zip(columns, values):
            yield "" if value is None else format(value, formats.get(column, default))

    with atomic_path(path) as tmp:
        tmp.write_text(",".join(columns) + "\n"
                       + "".join(",".join(cells(row)) + "\n" for row in rows))

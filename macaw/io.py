"""Atomic file writing: every file a rule writes appears whole or not at all, CSV tables
included (:func:`write_csv`, the one row writer of every training loop)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; write there. On success the file is flushed to
    disk, given the permissions a plain ``open`` would (0666 minus the umask; ``mkstemp``'s
    0600 would hide results from collaborators on a shared filesystem) and renamed onto
    ``path``; on any exception it is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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

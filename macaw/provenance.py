"""What made a result: the code (package version, git commit, uncommitted changes), the
versions of the packages that change numbers, and the host.

Recorded in every buffer (the ``provenance`` attribute, JSON), every behaviour lifetime file and
every run's ``config.yaml`` / few-shot ``.yaml``; ``macaw inspect-buffer`` prints it."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "numpy", "mujoco", "gymnasium", "metaworld", "h5py")
"""Distributions whose versions can change a result (read from their metadata, not imported)."""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def _git() -> tuple[str, bool | None]:
    """(commit, dirty) of the checkout this package runs from; ("unknown", None) when it is not
    a git checkout (an installed wheel) or git is absent. Dirty: tracked files differ from the
    commit."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return "unknown", None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"], check=True, capture_output=True,
                                text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, bool(status.strip())


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> dict[str, str | int | bool | None]:
    """The record, a flat JSON-ready mapping (the same keys everywhere). The GPU and torch's
    thread count are read only where torch is already loaded (``"not checked"`` / None else: a
    buffer export does not need torch)."""
    from macaw import __version__

    torch = sys.modules.get("torch")
    commit, dirty = _git()
    return {
        "macaw": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        **{name: _version(name) for name in PACKAGES},
        "host": platform.node(),
        "cpu": _cpu(),
        "gpu": "not checked" if torch is None
               else torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "threads": None if torch is None else torch.get_num_threads(),
    }


def describe(record: dict) -> str:
    """One line for a terminal: ``macaw 0.1.0 (abc1234, dirty), torch 2.13.0, ... on CPU``."""
    if not record:
        return "not recorded (written before provenance was)"
    commit = str(record.get("git_commit", "unknown"))[:10]
    state = {True: ", dirty", False: "", None: ""}.get(record.get("git_dirty"), "")
    packages = ", ".join(f"{name} {record[name]}" for name in PACKAGES if name in record)
    return (f"macaw {record.get('macaw')} ({commit}{state}), python {record.get('python')}, "
            f"{packages}; {record.get('cpu')}, GPU {record.get('gpu')}, "
            f"{record.get('threads')} threads")

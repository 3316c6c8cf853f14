"""Train/test task splits as data files (docs/design.md §2).

Definitions (task ids index each family's fixed task list):

* ``cheetah-dir`` ``standard``: train = test = [0, 1] (proof of concept, no held-out task).
* ``cheetah-vel`` (task i has target velocity v* = 0.075 (i + 1)):

  - ``standard``: test = [2, 7, 15, 23, 26], train = the other 35;
  - sparsity (Fig. 4 right): ``sparse20`` train = even i, ``sparse10`` i % 4 == 0,
    ``sparse5`` i % 8 == 0, ``sparse3`` {0, 16, 32}; test = every other task;
  - ``extrapolation`` (Table 1): train i <= 25 (v* <= 1.95), test i >= 26 (v* in (2, 3]). That is
    14 test tasks; the paper reports 13 — we use all 14.

* ``ant-dir`` ``standard``: test = [6, 17, 23, 30, 41]; train = the rest.
* ``walker-params`` ``standard``: test = [43, 15, 12, 39, 2]; train = the rest.
* ``ml45`` ``standard``: test = [45, ..., 49] (Meta-World ML45's 5 test environments, see
  :mod:`macaw.envs.ml45`); train = 0..44 (its 45 training environments).

``available`` (the task ids a config actually built buffers for) is intersected with both lists.

A test task that is also a training task voids a meta-test result, so every family but
cheetah-dir (:data:`SHARED_TASK_FAMILIES`) refuses such a split (:func:`check_overlap`; both
``macaw make-split`` and ``macaw meta-train`` check). The exception is a memorisation check, a
diagnostic that evaluates on training tasks on purpose: it opts in with ``memorisation_check``
(``--memorisation-check``), which makes the test tasks the training tasks and is recorded in
the split file and the run's ``config.yaml``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from macaw.io import atomic_path

SPLITS: dict[str, tuple[str, ...]] = {
    "cheetah-dir": ("standard",),
    "cheetah-vel": ("standard", "sparse20", "sparse10", "sparse5", "sparse3", "extrapolation"),
    "ant-dir": ("standard",),
    "walker-params": ("standard",),
    "ml45": ("standard",),
}

_STANDARD_TEST: dict[str, tuple[int, ...]] = {
    "cheetah-vel": (2, 7, 15, 23, 26),
    "ant-dir": (6, 17, 23, 30, 41),
    "walker-params": (43, 15, 12, 39, 2),
    "ml45": (45, 46, 47, 48, 49),
}

SHARED_TASK_FAMILIES = ("cheetah-dir",)
"""Families whose paper split trains and tests on the same tasks (cheetah-dir's two
directions, a proof of concept with no held-out task)."""

_CHEETAH_VEL_TRAIN: dict[str, Callable[[int], bool]] = {
    "sparse20": lambda i: i % 2 == 0,
    "sparse10": lambda i: i % 4 == 0,
    "sparse5": lambda i: i % 8 == 0,
    "sparse3": lambda i: i in (0, 16, 32),
    "extrapolation": lambda i: i <= 25,
}


def check_overlap(family: str, train: list[int], test: list[int],
                  memorisation_check: bool = False, where: str = "split") -> None:
    """Refuse test tasks that are training tasks (a voided meta-test), except for the
    families of :data:`SHARED_TASK_FAMILIES`; with ``memorisation_check`` (a diagnostic that
    evaluates on training tasks) require the opposite: some test task is a training task.
    ``where`` names the split in the error (a file, a run)."""
    shared = sorted(set(train) & set(test))
    if memorisation_check:
        if not shared:
            raise ValueError(
                f"{where}: memorisation check expected test tasks that are training tasks, "
                f"found none (train {sorted(train)}, test {sorted(test)}); drop "
                "--memorisation-check for a held-out split")
    elif shared and family not in SHARED_TASK_FAMILIES:
        raise ValueError(
            f"{where}: test task(s) {shared} of {family!r} are also training tasks; expected "
            f"disjoint train and test lists (only {', '.join(SHARED_TASK_FAMILIES)} trains and "
            "tests on the same tasks, as the paper). To evaluate on training tasks on purpose "
            "(a memorisation check), pass --memorisation-check")


def make_split(
    family: str, split: str, n_tasks: int, available: list[int] | None = None,
    memorisation_check: bool = False,
) -> dict[str, list[int]]:
    """``{"train": [...], "test": [...]}`` (sorted task ids) for ``family``/``split``.

    Task ids run over ``range(n_tasks)``; ids of the fixed test lists at or above ``n_tasks`` are
    dropped. With ``available`` both lists are intersected with it. ``memorisation_check``:
    the test tasks are the training tasks (a diagnostic, e.g. ``sparse3``'s {0, 16, 32}).
    Raises ``ValueError`` for an unknown family/split, or if train or test comes out empty.
    """
    if family not in SPLITS:
        raise ValueError(f"unknown task family {family!r}; expected one of {sorted(SPLITS)}")
    if split not in SPLITS[family]:
        raise ValueError(f"unknown split {split!r} for family {family!r}; expected one of {SPLITS[family]}")
    all_ids = set(range(int(n_tasks)))
    if family == "cheetah-dir":
        train, test = set(all_ids), set(all_ids)
    elif split == "standard":
        test = set(_STANDARD_TEST[family]) & all_ids
        train = all_ids - test
    else:
        train = {i for i in all_ids if _CHEETAH_VEL_TRAIN[split](i)}
        test = all_ids - train
    if available is not None:
        avail = {int(i) for i in available}
        unknown = sorted(i for i in avail if not 0 <= i < n_tasks)
        if unknown:
            raise ValueError(f"{family}: available task id(s) {unknown} out of range; valid "
                             f"ids are 0..{n_tasks - 1}")
        train &= avail
        test &= avail
    if memorisation_check:
        test = set(train)
    for name, ids in (("train", train), ("test", test)):
        if not ids:
            raise ValueError(
                f"split {split!r} of family {family!r} has an empty {name} list "
                f"(n_tasks={n_tasks}, available={None if available is None else sorted(available)})"
            )
    check_overlap(family, sorted(train), sorted(test), memorisation_check,
                  f"split {split!r} of family {family!r}")
    return {"train": sorted(train), "test": sorted(test)}


def write_split(path: str | os.PathLike, split_dict: Mapping[str, list[int]], meta: Mapping[str, Any]) -> Path:
    """Atomically write a split as JSON: ``train``, ``test`` plus ``family``, ``split``, ``available``.

    ``meta`` must hold ``family`` and ``split``; ``available`` defaults to None; any other meta
    keys (e.g. the producing config) are written too. Test tasks that are training tasks are
    refused (:func:`check_overlap`) unless ``meta["memorisation_check"]`` is true, which the
    file then records.
    """
    path = Path(path)
    for key in ("family", "split"):
        if key not in meta:
            raise ValueError(f"write_split: meta is missing {key!r}")
    check_overlap(str(meta["family"]), list(split_dict["train"]), list(split_dict["test"]),
                  bool(meta.get("memorisation_check")), str(path))
    if not meta.get("memorisation_check"):
        # Written only when true: the standard split files stay byte-identical.
        meta = {k: v for k, v in meta.items() if k != "memorisation_check"}
    payload = {
        **dict(meta),
        "available": None if meta.get("available") is None else sorted(int(i) for i in meta["available"]),
        "train": [int(i) for i in split_dict["train"]],
        "test": [int(i) for i in split_dict["test"]],
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def load_split(path: str | os.PathLike) -> dict[str, Any]:
    """Read a split file written by :func:`write_split`; validates keys and id lists."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: expected a JSON split file, found unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    for key in ("train", "test", "family", "split", "available"):
        if key not in data:
            raise ValueError(f"{path}: key {key!r} expected, found missing")
    for key in ("train", "test"):
        ids = data[key]
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
            raise ValueError(f"{path}: key {key!r} expected a non-empty list of task ids, found {ids!r}")
    return data

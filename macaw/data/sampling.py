"""Typed mini-batches drawn from a :class:`~macaw.data.buffer.TaskBuffer` (docs/design.md §4).

MACAW's inner-loop batch D_tr is a contiguous window of the buffer and the outer-loop batch D_ts
is uniform; docs/design.md §4 requires D_tr ∩ D_ts = ∅, so :func:`uniform_indices` takes the
inner batch's indices as ``exclude``. The functions return index arrays;
:meth:`macaw.data.TaskData.batch` gathers them into a :class:`Batch`, and
:func:`macaw.data.sample_meta_batch` is the one sampler every learner calls.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from macaw.data.buffer import TaskBuffer


class Batch(NamedTuple):
    """A batch of transitions as tensors; ``terminals`` is float (1.0 = terminal).

    ``tail_observations`` / ``tail_discounts`` bootstrap the return at the episode's end:
    ``mc_returns + tail_discounts * V(tail_observations)`` is the return to the end of the
    episode plus ``gamma^(T-t) V(s_T)`` (:meth:`macaw.data.buffer.TaskBuffer.bootstrap_tails`;
    the discount is 0 after a true termination)."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminals: torch.Tensor
    mc_returns: torch.Tensor
    tail_observations: torch.Tensor
    tail_discounts: torch.Tensor

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(*(t.to(device) for t in self))


def _allowed(buffer: TaskBuffer, indices: np.ndarray | None) -> np.ndarray:
    if indices is None:
        return np.arange(len(buffer), dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1:
        raise ValueError(f"indices must be a 1-D array, found shape {indices.shape}")
    if indices.size and (indices[0] < 0 or indices[-1] >= len(buffer)):
        raise ValueError(f"indices must lie in [0, {len(buffer)}), found [{indices[0]}, {indices[-1]}]")
    if indices.size > 1 and np.any(np.diff(indices) <= 0):
        raise ValueError("indices must be sorted and unique")
    return indices


def contiguous_indices(
    buffer: TaskBuffer, batch_size: int, rng: np.random.Generator, indices: np.ndarray | None = None
) -> np.ndarray:
    """``batch_size`` consecutive entries of ``indices`` (default: the whole buffer), start uniform."""
    allowed = _allowed(buffer, indices)
    if batch_size < 1 or batch_size > allowed.size:
        raise ValueError(
            f"contiguous batch of {batch_size} transitions requested, "
            f"but only {allowed.size} are available"
        )
    start = int(rng.integers(0, allowed.size - batch_size + 1))
    return allowed[start : start + batch_size]


def uniform_indices(
    buffer: TaskBuffer,
    batch_size: int,
    rng: np.random.Generator,
    indices: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """``batch_size`` distinct indices drawn uniformly from ``indices`` minus ``exclude``."""
    allowed = _allowed(buffer, indices)
    if exclude is not None and len(exclude):
        mask = np.zeros(len(buffer), dtype=bool)
        mask[allowed] = True
        mask[np.asarray(exclude, dtype=np.int64)] = False
        allowed = np.flatnonzero(mask)
    if batch_size < 1 or batch_size > allowed.size:
        raise ValueError(
            f"uniform batch of {batch_size} transitions requested, but only {allowed.size} "
            f"are available after excluding {0 if exclude is None else len(exclude)}"
        )
    return rng.choice(allowed, size=batch_size, replace=False)

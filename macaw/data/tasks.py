"""A task's buffer as tensors on the training device, with its sampling windows.

Every meta-learner (MACAW, PEARL, MT+FT, Meta-BC) reads its data through :class:`TaskData`:
``inner_window`` is the adaptation data (the whole lifetime, or the bad / medium / good window
of paper Fig. 4 left), sub-sampled with the run's ``inner_stride``; ``outer_window`` is
where outer / RL batches come from, sub-sampled with ``outer_stride`` (docs/design.md §4.1: the
authors read whole lifetimes with stride 7). :func:`sample_meta_batch` draws one meta-batch for all
of them: per task a contiguous inner batch (consecutive rows of the sub-sampled window, so it spans
several episodes) and a disjoint uniform outer batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from macaw.data.buffer import load_task_buffer
from macaw.data.sampling import Batch, contiguous_indices, uniform_indices
from macaw.data.windows import window_indices


class TaskData:
    """One task's buffer as tensors, with its inner and outer sampling windows.

    ``tail_index`` maps each transition to its episode's last one, whose next observation is
    the state the return is bootstrapped from; ``tail_discounts`` is ``gamma^(T-t)`` (0 after a
    true termination)."""

    def __init__(self, path: Path, inner_window: str, window_episodes: int,
                 device: torch.device, outer_window: str = "good", inner_stride: int = 1,
                 outer_stride: int = 1):
        buffer = load_task_buffer(path)
        self.task_id, self.buffer = buffer.task_id, buffer
        self.obs = torch.as_tensor(buffer.observations, device=device)
        self.actions = torch.as_tensor(buffer.actions, device=device)
        self.rewards = torch.as_tensor(buffer.rewards, device=device)
        self.next_obs = torch.as_tensor(buffer.next_observations, device=device)
        self.terminals = torch.as_tensor(buffer.terminals, device=device, dtype=torch.float32)
        self.returns = torch.as_tensor(buffer.mc_returns, device=device)
        tail_index, tail_discounts = buffer.bootstrap_tails()
        self.tail_index = torch.as_tensor(tail_index, device=device)
        self.tail_discounts = torch.as_tensor(tail_discounts, device=device)
        self.inner_window = window_indices(buffer, inner_window, window_episodes,
                                           inner_stride)
        self.outer_window = window_indices(buffer, outer_window, window_episodes,
                                           outer_stride)

    @classmethod
    def for_run(cls, path: Path, cfg, device: torch.device) -> "TaskData":
        """The windows of a run config (:class:`macaw.meta_train.MetaTrainConfig`)."""
        return cls(path, cfg.inner_window, cfg.window_episodes, device,
                   outer_window=cfg.outer_window, inner_stride=cfg.inner_stride,
                   outer_stride=cfg.outer_stride)

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    def batch(self, idx: np.ndarray) -> Batch:
        """Every field of the transitions ``idx``, bootstrap tails included."""
        i = torch.as_tensor(idx, device=self.obs.device)
        return Batch(self.obs[i], self.actions[i], self.rewards[i], self.next_obs[i],
                     self.terminals[i], self.returns[i], self.next_obs[self.tail_index[i]],
                     self.tail_discounts[i])


def stack_batches(batches: list[Batch]) -> Batch:
    """Per-task batches of equal size as one :class:`Batch` of ``(T, B, ...)`` tensors."""
    return Batch(*(torch.stack(x) for x in zip(*batches)))


class MetaBatch(NamedTuple):
    """One meta-step's data for T tasks: ``task_index (T,)`` (position in the training-task
    list), the inner (adaptation) and outer batches, each ``(T, B, ...)``."""

    task_index: torch.Tensor
    inner: Batch
    outer: Batch


def sample_meta_batch(tasks: list[TaskData], n_tasks: int, inner: int, outer: int,
                      rng: np.random.Generator, *, contiguous_inner: bool = True,
                      disjoint: bool = True) -> MetaBatch:
    """``n_tasks`` distinct tasks; per task ``inner`` rows of its (sub-sampled) inner window and
    ``outer`` distinct rows drawn uniformly from its outer window.

    The default is MACAW's: the inner batch is consecutive rows (so it spans several episodes)
    and the outer batch never holds one of its rows (docs/design.md §4; the authors' inner and
    outer buffers were the same object and could overlap). ``inner=0`` gives an empty inner
    batch (learners without an inner loop). PEARL passes ``contiguous_inner=False,
    disjoint=False``: its context is uniform over the inner window and drawn independently of
    the RL batch, as rlkit's."""
    chosen = rng.choice(len(tasks), size=min(n_tasks, len(tasks)), replace=False)
    inner_parts, outer_parts = [], []
    for k in chosen:
        task = tasks[k]
        try:
            if not inner:
                inner_idx = np.zeros(0, dtype=np.int64)
            elif contiguous_inner:
                inner_idx = contiguous_indices(task.buffer, inner, rng, task.inner_window)
            else:
                inner_idx = uniform_indices(task.buffer, inner, rng, task.inner_window)
            outer_idx = uniform_indices(task.buffer, outer, rng, task.outer_window,
                                        exclude=inner_idx if disjoint else None)
        except ValueError as exc:
            raise ValueError(
                f"{task.buffer.path}: task {task.task_id}: {exc} (inner window "
                f"{task.inner_window.size} rows, outer window {task.outer_window.size} rows); "
                "use smaller inner_batch / outer_batch, a larger window_episodes or a "
                "smaller outer_stride / inner_stride") from exc
        inner_parts.append(task.batch(inner_idx))
        outer_parts.append(task.batch(outer_idx))
    device = tasks[0].obs.device
    return MetaBatch(torch.as_tensor(chosen, device=device), stack_batches(inner_parts),
                     stack_batches(outer_parts))

"""What every meta-learner provides, below both the training loop and the algorithms (so
neither imports the other): :class:`MetaLearner` and the batch sizes it reads."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

import numpy as np
import torch

from macaw.data import Batch, TaskData

Policy = Callable[[torch.Tensor], torch.Tensor]
"""A deterministic policy: observation ``(obs_dim,)`` to action ``(act_dim,)``."""


class MetaBatchShape(Protocol):
    """The batch sizes a learner's ``train_step`` reads from the run config
    (:class:`macaw.meta_train.MetaTrainConfig`)."""

    tasks_per_batch: int
    inner_batch: int
    outer_batch: int


class BatchDemand(NamedTuple):
    """What a learner's training step draws from each training task
    (:func:`macaw.data.sample_meta_batch`), with the config fields that set each number, so
    that a run can check its batches fit the data windows before it writes anything."""

    tasks: int
    """Training tasks per step (at most the run's training tasks: more are clipped)."""
    inner: int
    """Rows of the inner window per task (0: no inner batch)."""
    outer: int
    """Rows of the outer window per task."""
    disjoint: bool
    """Whether the outer rows exclude the inner batch's rows."""
    fields: tuple[str, str, str] = ("tasks_per_batch", "inner_batch", "outer_batch")
    """The config fields of ``tasks``, ``inner`` and ``outer``."""


class MetaLearner(Protocol):
    """What :func:`macaw.meta_train.run_meta_training` needs of a method (an ``nn.Module``)."""

    cfg: Any
    """The method's resolved hyperparameters (a dataclass), dumped next to every run."""

    @staticmethod
    def batch_demand(data: MetaBatchShape, section: Any) -> BatchDemand:
        """What ``train_step`` draws from each task under the run config ``data``
        (:class:`macaw.meta_train.MetaTrainConfig`) and the method's ``section`` of it (its
        hyperparameters as the config gives them)."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    def train_step(self, optimizers: dict[str, torch.optim.Optimizer], tasks: list[TaskData],
                   data: MetaBatchShape, rng: np.random.Generator) -> dict[str, float]:
        """Sample its training data from ``tasks`` with ``rng`` and take one step."""

    def adapt_policies(self, batch: Batch) -> list[Policy]:
        """Adapt to each test task's offline batch ``(T, B, ...)``; one deterministic policy
        per task."""

    def unadapted_policy(self) -> Policy:
        """The meta-policy before any adaptation (the adaptation gain's baseline)."""

"""A task's buffer as tensors on the training device, with its sampling windows.

Every meta-learner (MACAW, PEARL, MT+FT, Meta-BC) reads its data through :class:`TaskData`:
``inner_window`` is the adaptation data (bad / medium / good window, paper Fig. 4 left), and
``outer_window`` the good window that outer / RL batches come from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from macaw.data.buffer import load_task_buffer
from macaw.data.sampling import Batch
from macaw.data.windows import window_indices


class TaskData:
    """One task's buffer as tensors, with its inner and outer sampling windows."""

    def __init__(self, path: Path, inner_quality: str, window_trajectories: int,
                 device: torch.device):
        buffer = load_task_buffer(path)
        self.task_id, self.buffer = buffer.task_id, buffer
        self.obs = torch.as_tensor(buffer.observations, device=device)
        self.actions = torch.as_tensor(buffer.actions, device=device)
        self.rewards = torch.as_tensor(buffer.rewards, device=device)
        self.next_obs = torch.as_tensor(buffer.next_observations, device=device)
        self.terminals = torch.as_tensor(buffer.terminals, device=device, dtype=torch.float32)
        self.returns = torch.as_tensor(buffer.mc_returns, device=device)
        self.inner_window = window_indices(buffer, inner_quality, window_trajectories)
        self.outer_window = window_indices(buffer, "good", window_trajectories)

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    def take(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Observations, actions and Monte-Carlo returns of the transitions ``idx``."""
        i = torch.as_tensor(idx, device=self.obs.device)
        return self.obs[i], self.actions[i], self.returns[i]

    def batch(self, idx: np.ndarray) -> Batch:
        """All fields of the transitions ``idx`` (for learners that need rewards and next
        observations, e.g. PEARL's SAC)."""
        i = torch.as_tensor(idx, device=self.obs.device)
        return Batch(self.obs[i], self.actions[i], self.rewards[i], self.next_obs[i],
                     self.terminals[i], self.returns[i])


def stack_batches(batches: list[Batch]) -> Batch:
    """Per-task batches of equal size as one :class:`Batch` of ``(T, B, ...)`` tensors."""
    return Batch(*(torch.stack(x) for x in zip(*batches)))

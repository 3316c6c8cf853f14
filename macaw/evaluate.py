"""Meta-test (paper Algorithm 2): adapt on a held-out task's offline batch, then roll out.

For every test task: ``eval_batch`` transitions drawn uniformly from the task's buffer (within
the run's adaptation-quality window), the method's adaptation (MACAW: ``inner_steps`` value
steps then ``inner_steps`` policy steps with the learned inner rates; PEARL: the posterior
over the latent; MT+FT: fine-tuning), then one deterministic episode (the policy's mean
action) in the task's environment. All test tasks adapt together in one call.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from macaw.data import Batch, TaskData, stack_batches, uniform_indices
from macaw.envs import make_task_env

Policy = Callable[[torch.Tensor], torch.Tensor]
"""A deterministic policy: observation ``(obs_dim,)`` to action ``(act_dim,)``."""


def rollout_return(family: str, task_id: int, policy: Policy, seed: int,
                   device: torch.device | str = "cpu") -> float:
    """Undiscounted return of one episode of the deterministic ``policy``."""
    env = make_task_env(family, task_id)
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        with torch.no_grad():
            action = policy(torch.as_tensor(obs, dtype=torch.float32, device=device))
        obs, reward, terminated, truncated, _ = env.step(action.cpu().numpy())
        total += float(reward)
        done = terminated or truncated
    env.close()
    return total


def adaptation_batch(tasks: list[TaskData], batch_size: int, rng: np.random.Generator) -> Batch:
    """Each task's meta-test adaptation data: ``batch_size`` transitions drawn uniformly from
    its inner (adaptation-quality) window, stacked ``(T, B, ...)``."""
    return stack_batches([t.batch(uniform_indices(t.buffer, batch_size, rng, t.inner_window))
                          for t in tasks])


def evaluate_tasks(learner, tasks: list[TaskData], cfg, seed: int) -> list[float]:
    """Meta-test return of each task (Algorithm 2 for any method of
    :data:`macaw.meta_train.METHODS`): adapt on its offline batch, then one rollout."""
    rng = np.random.default_rng(seed)
    policies = learner.adapt_policies(adaptation_batch(tasks, cfg.eval_batch, rng))
    return [rollout_return(task.buffer.family, task.task_id, policy,
                           seed=int(rng.integers(2**31)), device=task.obs.device)
            for task, policy in zip(tasks, policies)]

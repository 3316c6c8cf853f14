"""Meta-test (paper Algorithm 2): adapt on a held-out task's offline batch, then roll out.

For every test task: ``eval_batch`` transitions drawn uniformly from the task's buffer (within
the run's adaptation-quality window), ``inner_steps`` value steps then ``inner_steps`` policy
steps with the learned inner rates, then one deterministic episode (the policy's mean action)
in the task's environment. All test tasks adapt together in one batched call.
"""

from __future__ import annotations

import numpy as np
import torch

from macaw.algos.macaw import adapt
from macaw.data import uniform_indices
from macaw.envs import make_task_env
from macaw.nets.networks import policy_forward


def rollout_return(family: str, task_id: int, policy_weights: list, seed: int) -> float:
    """Undiscounted return of one deterministic episode with the given policy weights."""
    env = make_task_env(family, task_id)
    obs, _ = env.reset(seed=seed)
    device = policy_weights[0][0].device
    dtype = policy_weights[0][0].dtype
    total, done = 0.0, False
    while not done:
        with torch.no_grad():
            x = torch.as_tensor(obs, dtype=dtype, device=device)
            action, _ = policy_forward(policy_weights, x)
        obs, reward, terminated, truncated, _ = env.step(action.cpu().numpy())
        total += float(reward)
        done = terminated or truncated
    env.close()
    return total


def evaluate_tasks(model, tasks: list, cfg, seed: int) -> list[float]:
    """Meta-test return of each task in ``tasks`` (:class:`macaw.meta_train.TaskData`)."""
    rng = np.random.default_rng(seed)
    batches = [t.take(uniform_indices(t.buffer, cfg.eval_batch, rng, t.inner_window))
               for t in tasks]
    obs, actions, returns = (torch.stack(x) for x in zip(*batches))
    with torch.enable_grad():
        _, p_weights = adapt(model, obs, actions, returns, model.cfg.inner_steps)
    returns = []
    for k, task in enumerate(tasks):
        # Layers that were not adapted (an unused head) still hold the shared weights.
        weights = [(w[k].detach(), b[k].detach()) if w.dim() == 3 else (w.detach(), b.detach())
                   for w, b in p_weights]
        returns.append(rollout_return(task.buffer.family, task.task_id, weights,
                                      seed=int(rng.integers(2**31))))
    return returns

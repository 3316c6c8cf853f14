"""Meta-test (paper Algorithm 2): adapt on a held-out task's offline batch, then roll out.

For every test task and each of ``eval_episodes`` episodes: ``eval_batch`` transitions drawn
uniformly from the task's buffer (within the run's adaptation window), independently for every
episode; the method's adaptation (MACAW: ``inner_steps`` value steps then ``inner_steps`` policy
steps with the learned inner rates; PEARL: the posterior over the latent; MT+FT: fine-tuning);
then one deterministic episode (the policy's mean action). With ``eval_unadapted`` the
meta-policy before adaptation runs the same episode (same environment seed), so the difference
of the two returns is the adaptation gain. All test tasks adapt together in one call per
episode. For families with a success flag (Meta-World ML45, Fig. 7) an episode succeeds if
``info["success"]`` is true at any step of it (Meta-World's convention; the episode does not
stop there).

One adaptation batch and one rollout per task (the authors' evaluation) is mostly noise on 5
test tasks: consecutive evaluations of one MT+FT run jumped between -152 and -234.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from macaw.algos.base import Policy
from macaw.data import Batch, TaskData, stack_batches, uniform_indices
from macaw.envs import get_family, make_task_env


class Episode(NamedTuple):
    """Outcome of one evaluation episode."""

    episode_return: float
    """Undiscounted return."""
    success: bool | None
    """``info["success"]`` at any step; None for families without a success flag."""


class EvalEpisode(NamedTuple):
    """One meta-test episode of one test task."""

    task_id: int
    episode: int
    episode_return: float
    """Return after adaptation."""
    unadapted_return: float
    """Return of the meta-policy before adaptation, same env seed (NaN if not evaluated)."""
    success: bool | None


def rollout_episode(family: str, task_id: int, policy: Policy, seed: int,
                    device: torch.device | str = "cpu") -> Episode:
    """Return (and success, where the family has a flag) of one episode of the deterministic
    ``policy``."""
    env = make_task_env(family, task_id)
    obs, _ = env.reset(seed=seed)
    total, done, succeeded = 0.0, False, False
    while not done:
        with torch.no_grad():
            action = policy(torch.as_tensor(obs, dtype=torch.float32, device=device))
        obs, reward, terminated, truncated, info = env.step(action.cpu().numpy())
        total += float(reward)
        succeeded = succeeded or bool(info.get("success", False))
        done = terminated or truncated
    env.close()
    return Episode(total, succeeded if get_family(family).success_flag else None)


def rollout_return(family: str, task_id: int, policy: Policy, seed: int,
                   device: torch.device | str = "cpu") -> float:
    """Undiscounted return of one episode of the deterministic ``policy``."""
    return rollout_episode(family, task_id, policy, seed, device).episode_return


def adaptation_batch(tasks: list[TaskData], batch_size: int, rng: np.random.Generator) -> Batch:
    """Each task's meta-test adaptation data: ``batch_size`` transitions drawn uniformly from
    its inner (adaptation) window, stacked ``(T, B, ...)``."""
    return stack_batches([t.batch(uniform_indices(t.buffer, batch_size, rng, t.inner_window))
                          for t in tasks])


def evaluate_tasks(learner, tasks: list[TaskData], cfg, seed: int) -> list[EvalEpisode]:
    """Meta-test episodes of every task (Algorithm 2 for any method of
    :data:`macaw.algos.registry.METHODS`): ``cfg.eval_episodes`` times, adapt on a fresh offline
    batch, then one rollout, and (``cfg.eval_unadapted``) one of the unadapted policy."""
    rng = np.random.default_rng(seed)
    unadapted = learner.unadapted_policy() if cfg.eval_unadapted else None
    out = []
    for episode in range(cfg.eval_episodes):
        policies = learner.adapt_policies(adaptation_batch(tasks, cfg.eval_batch, rng))
        for task, policy in zip(tasks, policies):
            family, env_seed = task.buffer.family, int(rng.integers(2**31))
            adapted = rollout_episode(family, task.task_id, policy, env_seed, task.obs.device)
            base = (rollout_return(family, task.task_id, unadapted, env_seed, task.obs.device)
                    if unadapted is not None else math.nan)
            out.append(EvalEpisode(task.task_id, episode, adapted.episode_return, base,
                                   adapted.success))
    return out

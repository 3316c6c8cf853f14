"""What a job needs, from the config alone: the memory a behaviour or meta-training job asks a
cluster for (profiles/slurm; docs/usage.md "Cluster").

A behaviour job keeps every transition of every task it trains in memory
(:class:`macaw.behaviour.trainer.LifetimeReplay`); a meta-training job loads the buffers of its
split's tasks (:class:`macaw.data.TaskBuffer`, plus the bootstrap tails derived on load). Both
then hold about 0.5 GB besides (torch, MuJoCo, the networks; measured at the default scale,
BENCHMARKS.md "Job memory"). A job asks for a base of 1 GiB plus twice its data, which leaves
room for one copy of the data (checkpointing, export, moving it to a device).
"""

from __future__ import annotations

import math

from macaw.envs import get_family

BASE_MB = 1024
DATA_FACTOR = 2
FLOAT32, BOOL, INT64 = 4, 1, 8


def lifetime_bytes_per_step(obs_dim: int, act_dim: int) -> int:
    """One task's replay row: observation, next observation, action, reward (float32),
    terminal and timeout flags (bool)."""
    return FLOAT32 * (2 * obs_dim + act_dim + 1) + 2 * BOOL


def buffer_bytes_per_step(obs_dim: int, act_dim: int) -> int:
    """One loaded buffer row: the replay row, its Monte-Carlo return, and the bootstrap tail
    (episode-end index and discount) derived on load."""
    return lifetime_bytes_per_step(obs_dim, act_dim) + FLOAT32 + INT64 + FLOAT32


def job_mem_mb(data_bytes: int) -> int:
    """Memory to ask for, in MB, for a job that holds ``data_bytes`` of data."""
    return BASE_MB + math.ceil(DATA_FACTOR * data_bytes / 2**20)


def behaviour_mem_mb(family: str, n_tasks: int, steps: int) -> int:
    """A behaviour job training ``n_tasks`` tasks of ``family`` for ``steps`` each."""
    f = get_family(family)
    return job_mem_mb(n_tasks * steps * lifetime_bytes_per_step(f.obs_dim, f.act_dim))


def meta_train_mem_mb(family: str, n_tasks: int, steps: int) -> int:
    """A meta-training job whose split uses ``n_tasks`` buffers of ``steps`` rows."""
    f = get_family(family)
    return job_mem_mb(n_tasks * steps * buffer_bytes_per_step(f.obs_dim, f.act_dim))

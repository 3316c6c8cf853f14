"""MACAW task families (docs/design.md §2), registered with gymnasium on ``import macaw.envs``.

| family        | gym id                      | tasks | module      |
|---------------|-----------------------------|-------|-------------|
| cheetah-dir   | MACAW/HalfCheetahDir-v0     | 2     | cheetah.py  |
| cheetah-vel   | MACAW/HalfCheetahVel-v0     | 40    | cheetah.py  |
| ant-dir       | MACAW/AntDir-v0             | 50    | ant.py      |
| walker-params | MACAW/Walker2dParams-v0     | 50    | walker.py   |
| ml45          | MACAW/MetaWorldML45-v0      | 50    | ml45.py     |
| point-goal    | MACAW/PointGoal-v0          | 40    | point.py    |

``point-goal`` is a toy (no MuJoCo, 20-step episodes) for the learning tests; no config builds it.

Episodes are truncated by gymnasium's ``TimeLimit``: 200 steps for the MuJoCo families, the
environment's own 500 for Meta-World ML45 (whose ``info`` also carries ``success``). Build a
task with ``make_task_env("cheetah-vel", 3)``; read its parameters without MuJoCo with
``task_params("cheetah-vel", 3)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium

from macaw.envs.ant import AntDirEnv
from macaw.envs.cheetah import HalfCheetahDirEnv, HalfCheetahVelEnv
from macaw.envs.ml45 import MetaWorldML45Env
from macaw.envs.point import PointGoalEnv
from macaw.envs.task_env import TaskEnv, check_task_id
from macaw.envs.walker import Walker2dParamsEnv

EPISODE_STEPS = 200


@dataclass(frozen=True)
class TaskFamily:
    name: str
    """family name, e.g. "cheetah-vel" """
    env_id: str
    """registered gymnasium id, e.g. "MACAW/HalfCheetahVel-v0" """
    n_tasks: int
    """tasks are indexed 0..n_tasks-1"""
    episode_steps: int = EPISODE_STEPS
    """TimeLimit truncation"""
    success_flag: bool = False
    """``info["success"]`` exists (Meta-World); behaviour training logs per-episode success"""
    obs_dim: int = 0
    """observation size (tested against the environment's space; known without building it,
    which takes half a minute for ML45, so that the workflow can size jobs' memory)"""
    act_dim: int = 0
    """action size"""


_ENV_CLASSES: dict[str, type[TaskEnv] | type[MetaWorldML45Env] | type[PointGoalEnv]] = {
    "MACAW/HalfCheetahDir-v0": HalfCheetahDirEnv,
    "MACAW/HalfCheetahVel-v0": HalfCheetahVelEnv,
    "MACAW/AntDir-v0": AntDirEnv,
    "MACAW/Walker2dParams-v0": Walker2dParamsEnv,
    "MACAW/MetaWorldML45-v0": MetaWorldML45Env,
    "MACAW/PointGoal-v0": PointGoalEnv,
}

FAMILIES: dict[str, TaskFamily] = {
    cls.family: TaskFamily(name=cls.family, env_id=env_id, n_tasks=cls.n_tasks,
                           episode_steps=getattr(cls, "episode_steps", EPISODE_STEPS),
                           success_flag=getattr(cls, "success_flag", False),
                           obs_dim=cls.obs_dim, act_dim=cls.act_dim)
    for env_id, cls in _ENV_CLASSES.items()
}

for _env_id, _cls in _ENV_CLASSES.items():
    if _env_id not in gymnasium.registry:
        gymnasium.register(
            id=_env_id,
            entry_point=f"{_cls.__module__}:{_cls.__name__}",
            max_episode_steps=FAMILIES[_cls.family].episode_steps,
        )


def get_family(name: str) -> TaskFamily:
    """The TaskFamily called ``name``; ValueError listing the valid names otherwise."""
    if name not in FAMILIES:
        raise ValueError(f"unknown task family {name!r}; valid names: {sorted(FAMILIES)}")
    return FAMILIES[name]


def make_task_env(family: str, task_id: int, **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make`` the family's env for ``task_id`` (its TimeLimit included)."""
    fam = get_family(family)
    check_task_id(fam.name, task_id, fam.n_tasks)
    return gymnasium.make(fam.env_id, task_id=task_id, **kwargs)


def task_params(family: str, task_id: int) -> dict[str, Any]:
    """Parameters of task ``task_id`` (JSON-serialisable), without building an env."""
    return _ENV_CLASSES[get_family(family).env_id].params_for(task_id)


__all__ = [
    "EPISODE_STEPS",
    "FAMILIES",
    "TaskFamily",
    "get_family",
    "make_task_env",
    "task_params",
]

"""Shared pieces of the MACAW task families: task-id checks and the task mixin.

Every family is a fixed list of tasks indexed ``0..n_tasks-1``. Randomised families draw
their whole parameter table at import time from ``numpy.random.default_rng(<fixed seed>)``,
so task ``i`` is the same on every machine and never depends on how many tasks a run uses.
"""

from __future__ import annotations

from typing import Any

from gymnasium.utils import EzPickle


def check_task_id(family: str, task_id: int, n_tasks: int) -> int:
    """Return ``task_id`` as an int, or raise ValueError naming the family and valid range."""
    if isinstance(task_id, bool) or not isinstance(task_id, int) or not 0 <= task_id < n_tasks:
        raise ValueError(
            f"{family}: task_id={task_id!r} is out of range; valid ids are 0..{n_tasks - 1}"
        )
    return int(task_id)


class TaskEnv:
    """Mixin placed before a gymnasium MuJoCo v5 env: ``class X(TaskEnv, HalfCheetahEnv)``.

    Subclasses set ``family`` and ``n_tasks`` and implement ``params_for(task_id)``, which
    returns the task's parameters as a JSON-serialisable dict of plain Python floats/lists.
    The mixin stores ``task_id`` / ``task_params`` before the base env is built, adds
    ``task_id`` to every ``info`` and re-records the constructor args so pickling and
    ``copy.deepcopy`` rebuild the same task (the base env records its own args otherwise).
    """

    family: str
    n_tasks: int

    def __init__(self, task_id: int, **kwargs: Any):
        self.task_id = check_task_id(self.family, task_id, self.n_tasks)
        self.task_params = self.params_for(self.task_id)
        super().__init__(**kwargs)
        EzPickle.__init__(self, self.task_id, **kwargs)

    @classmethod
    def params_for(cls, task_id: int) -> dict[str, Any]:
        raise NotImplementedError

    def step(self, action):
        observation, reward, terminated, truncated, info = super().step(action)
        return observation, reward, terminated, truncated, {**info, "task_id": self.task_id}

    def _get_reset_info(self) -> dict[str, Any]:
        return {**super()._get_reset_info(), "task_id": self.task_id}

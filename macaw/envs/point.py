"""``point-goal``: a 2-D point robot that must reach an unobserved goal (the authors'
``point_robot.py`` idea; docs/design.md §2 does not use it). A toy family for tests that must show a
method *learns* in seconds of CPU: adaptation is needed, because the goal is not in the
observation, and there is no MuJoCo.

- Task ``i`` of 40: goal ``(cos a_i, sin a_i)``, ``a_i = pi * i / 39`` (the upper unit
  semicircle).
- Observation: the position (starts at the origin). Action in ``[-1, 1]^2``; the point moves by
  ``0.1 * action``. Reward: ``-||position - goal||``. Episodes are 20 steps (TimeLimit).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium
import numpy as np

from macaw.envs.task_env import check_task_id

STEP_SIZE = 0.1


class PointGoalEnv(gymnasium.Env):
    """A point in the plane, rewarded by minus its distance to the task's goal."""

    family = "point-goal"
    n_tasks = 40
    episode_steps = 20
    obs_dim, act_dim = 2, 2

    def __init__(self, task_id: int):
        self.task_id = check_task_id(self.family, task_id, self.n_tasks)
        self.task_params = self.params_for(self.task_id)
        self.goal = np.array(self.task_params["goal"], dtype=np.float64)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.position = np.zeros(2)

    @classmethod
    def params_for(cls, task_id: int) -> dict[str, Any]:
        check_task_id(cls.family, task_id, cls.n_tasks)
        angle = math.pi * task_id / (cls.n_tasks - 1)
        return {"goal": [math.cos(angle), math.sin(angle)]}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = np.zeros(2)
        return self.position.copy(), {"task_id": self.task_id}

    def step(self, action):
        self.position = self.position + STEP_SIZE * np.clip(np.asarray(action, float), -1, 1)
        reward = -float(np.linalg.norm(self.position - self.goal))
        return self.position.copy(), reward, False, False, {"task_id": self.task_id}

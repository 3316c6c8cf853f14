"""Ant direction family of MACAW (docs/design.md §2), on gymnasium ``Ant-v5``.

``ant-dir`` (50 tasks): task i has a direction angle ``theta_i``; the 50 angles are drawn
once, ``numpy.random.default_rng(ANT_DIR_SEED).uniform(0, 2*pi, size=50)``, as in the
MACAW/PEARL ant-dir tasks (uniform on the circle). Reward:

    (x_velocity, y_velocity) . (cos theta, sin theta) + reward_survive + reward_ctrl + reward_contact

where the last three are exactly gymnasium Ant-v5's terms (``reward_ctrl`` and
``reward_contact`` are already negative). The torso xy velocity is Ant-v5's finite
difference. Contact forces are left out of the observation (27 dims), as in the paper code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from macaw.envs.task_env import TaskEnv, check_task_id

ANT_DIR_SEED = 1_017
ANT_DIR_N_TASKS = 50
ANT_DIR_ANGLES = np.random.default_rng(ANT_DIR_SEED).uniform(0.0, 2 * np.pi, size=ANT_DIR_N_TASKS)


class AntDirEnv(TaskEnv, AntEnv):
    """ant-dir: Ant-v5 rewarded for torso velocity along the task's direction angle."""

    family = "ant-dir"
    n_tasks = ANT_DIR_N_TASKS
    obs_dim, act_dim = 27, 8

    def __init__(self, task_id: int, include_cfrc_ext_in_observation: bool = False, **kwargs: Any):
        super().__init__(
            task_id, include_cfrc_ext_in_observation=include_cfrc_ext_in_observation, **kwargs
        )
        angle = self.task_params["direction_angle"]
        self._direction = np.array([np.cos(angle), np.sin(angle)])

    @classmethod
    def params_for(cls, task_id: int) -> dict[str, Any]:
        check_task_id(cls.family, task_id, cls.n_tasks)
        return {"direction_angle": float(ANT_DIR_ANGLES[task_id])}

    def step(self, action):
        observation, _, terminated, truncated, info = super().step(action)
        forward_reward = float(
            self._direction @ np.array([info["x_velocity"], info["y_velocity"]])
        )
        reward = (
            forward_reward + info["reward_survive"] + info["reward_ctrl"] + info["reward_contact"]
        )
        info["reward_forward"] = forward_reward
        return observation, reward, terminated, truncated, info

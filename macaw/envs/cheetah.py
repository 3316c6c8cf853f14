"""HalfCheetah task families of MACAW (docs/design.md §2), on gymnasium ``HalfCheetah-v5``.

- ``cheetah-dir`` (2 tasks): run forwards (task 0, d=+1) or backwards (task 1, d=-1);
  reward ``d * x_velocity - 0.05 * ||a||^2``.
- ``cheetah-vel`` (40 tasks): reach target speed ``v* = 0.075 * (i + 1)`` (0.075 ... 3.0);
  reward ``-|x_velocity - v*| - 0.05 * ||a||^2``.

Both follow the MAML/PEARL/MACAW task definitions with a control-cost weight of 0.05.
``x_velocity`` is the base env's finite difference of the root x position over ``dt``.
Neither family is random, so there is no seed.
"""

from __future__ import annotations

from typing import Any

from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from macaw.envs.task_env import TaskEnv, check_task_id

CTRL_COST_WEIGHT = 0.05


class HalfCheetahTaskEnv(TaskEnv, HalfCheetahEnv):
    """HalfCheetah-v5 whose forward term is replaced by ``forward_reward(x_velocity)``."""

    def __init__(self, task_id: int, ctrl_cost_weight: float = CTRL_COST_WEIGHT, **kwargs: Any):
        super().__init__(task_id, ctrl_cost_weight=ctrl_cost_weight, **kwargs)

    def forward_reward(self, x_velocity: float) -> float:
        raise NotImplementedError

    def _get_rew(self, x_velocity: float, action):
        forward_reward = self.forward_reward(x_velocity)
        ctrl_cost = self.control_cost(action)
        reward_info = {"reward_forward": forward_reward, "reward_ctrl": -ctrl_cost}
        return forward_reward - ctrl_cost, reward_info


class HalfCheetahDirEnv(HalfCheetahTaskEnv):
    """cheetah-dir: reward ``d * x_velocity - 0.05 * ||a||^2`` with d = +1 (task 0), -1 (task 1)."""

    family = "cheetah-dir"
    n_tasks = 2
    obs_dim, act_dim = 17, 6

    @classmethod
    def params_for(cls, task_id: int) -> dict[str, Any]:
        check_task_id(cls.family, task_id, cls.n_tasks)
        return {"direction": 1.0 if task_id == 0 else -1.0}

    def forward_reward(self, x_velocity: float) -> float:
        return self.task_params["direction"] * x_velocity


class HalfCheetahVelEnv(HalfCheetahTaskEnv):
    """cheetah-vel: reward ``-|x_velocity - v*| - 0.05 * ||a||^2`` with ``v* = 0.075 * (i + 1)``."""

    family = "cheetah-vel"
    n_tasks = 40
    obs_dim, act_dim = 17, 6

    @classmethod
    def params_for(cls, task_id: int) -> dict[str, Any]:
        check_task_id(cls.family, task_id, cls.n_tasks)
        return {"goal_velocity": 0.075 * (task_id + 1)}

    def forward_reward(self, x_velocity: float) -> float:
        return -abs(x_velocity - self.task_params["goal_velocity"])

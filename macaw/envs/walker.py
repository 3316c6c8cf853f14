"""Walker2d random-parameters family of MACAW (docs/design.md §2), on gymnasium ``Walker2d-v5``.

``walker-params`` (50 tasks), following the ``rand_param_envs`` walker used by PEARL/MACAW.
The whole table is drawn once from ``numpy.random.default_rng(WALKER_PARAMS_SEED)``, in
this order, each exponent ``U(-3, 3)``:

- ``body_mass_scale``    1.5**U, one draw per body (world body included, its mass is 0);
- ``body_inertia_scale`` 1.5**U, a separate draw per body, applied to all 3 principal moments
  (keeps the inertia valid; the paper code draws mass and inertia independently too);
- ``friction_scale``     1.5**U, one draw per geom (the floor included), applied to its 3
  friction coefficients;
- ``damping_scale``      1.3**U, one draw per dof.

After scaling, ``mujoco.mj_setConst`` recomputes the model's derived constants.
Reward is Walker2d-v5's, unchanged: ``reward_forward + reward_survive + reward_ctrl``.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from macaw.envs.task_env import TaskEnv, check_task_id

WALKER_PARAMS_SEED = 2_023
WALKER_PARAMS_N_TASKS = 50
# Sizes of gymnasium's walker2d_v5.xml, so the table is known without loading MuJoCo.
WALKER_NBODY, WALKER_NGEOM, WALKER_NDOF = 8, 8, 9


def _draw_table() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(WALKER_PARAMS_SEED)
    n = WALKER_PARAMS_N_TASKS
    return {
        "body_mass_scale": 1.5 ** rng.uniform(-3, 3, size=(n, WALKER_NBODY)),
        "body_inertia_scale": 1.5 ** rng.uniform(-3, 3, size=(n, WALKER_NBODY)),
        "friction_scale": 1.5 ** rng.uniform(-3, 3, size=(n, WALKER_NGEOM)),
        "damping_scale": 1.3 ** rng.uniform(-3, 3, size=(n, WALKER_NDOF)),
    }


WALKER_PARAMS_TABLE = _draw_table()


class Walker2dParamsEnv(TaskEnv, Walker2dEnv):
    """walker-params: Walker2d-v5 with the task's body mass/inertia, friction and damping scales."""

    family = "walker-params"
    n_tasks = WALKER_PARAMS_N_TASKS
    obs_dim, act_dim = 17, 6

    def __init__(self, task_id: int, **kwargs: Any):
        super().__init__(task_id, **kwargs)
        model, p = self.model, self.task_params
        if (model.nbody, model.ngeom, model.nv) != (WALKER_NBODY, WALKER_NGEOM, WALKER_NDOF):
            raise ValueError(
                f"{self.family}: model has (nbody, ngeom, nv)={(model.nbody, model.ngeom, model.nv)},"
                f" expected {(WALKER_NBODY, WALKER_NGEOM, WALKER_NDOF)} (the walker2d_v5.xml sizes)"
            )
        model.body_mass[:] *= np.array(p["body_mass_scale"])
        model.body_inertia[:] *= np.array(p["body_inertia_scale"])[:, None]
        model.geom_friction[:] *= np.array(p["friction_scale"])[:, None]
        model.dof_damping[:] *= np.array(p["damping_scale"])
        mujoco.mj_setConst(model, self.data)

    @classmethod
    def params_for(cls, task_id: int) -> dict[str, Any]:
        check_task_id(cls.family, task_id, cls.n_tasks)
        return {key: table[task_id].tolist() for key, table in WALKER_PARAMS_TABLE.items()}

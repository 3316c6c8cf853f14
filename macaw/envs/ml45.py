"""Meta-World ML45 as a MACAW task family (docs/design.md §2; paper Appendix C.3, D.1,
Fig. 7 and 9).

``ml45`` (50 tasks): task ids 0..44 are ML45's 45 training environments and 45..49 its 5 test
environments, each group sorted by environment name (:func:`ml45_env_names`), so a task id
means the same on every machine. The environments are Meta-World v3 (``metaworld`` 3.x on PyPI).

- **Goal variation within a task.** ``metaworld.ML45(seed=BENCHMARK_SEED)`` draws 50 goal
  variants (``metaworld.Task`` objects: goal and object positions) per environment. At every
  ``reset`` the env picks one of its environment's variants uniformly with its own RNG, which
  ``reset(seed=...)`` seeds. Meta-World's ``reset`` ignores ``seed`` and never changes the goal
  itself, so this draw is what stands in for the paper's continuous goal variation within each
  task (Appendix D.1); v3 offers a fixed pool of 50 variants per environment. Train
  environments use the benchmark's train variants, test environments its test variants.
- **Episodes** end by truncation at the environment's ``max_path_length`` (v3: 500 steps;
  the paper's v1 used 150). Meta-World never terminates an episode.
- **Reward** is Meta-World v3's shaped reward (in [0, 10] per step), ``info["success"]`` is its
  success flag as a bool, and ``info`` also carries ``task_id`` and ``goal_index``.

Building the benchmark's goal variants constructs all 50 environments (about 20 s on one CPU
core). The result is cached on disk (:func:`goal_cache_file`, keyed by the metaworld version
and the benchmark seed), so only the first process on a machine pays for it;
:func:`task_params` needs none of it.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import pickle
from importlib.metadata import version
from pathlib import Path
from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium.error import ResetNeeded
from gymnasium.utils import EzPickle

from macaw.envs.task_env import check_task_id
from macaw.io import atomic_path

log = logging.getLogger(__name__)

FAMILY = "ml45"
N_TRAIN, N_TEST = 45, 5
BENCHMARK_SEED = 0
"""Seed of ``metaworld.ML45``, which fixes every environment's 50 goal variants."""
GOALS_PER_ENV = 50
"""Goal variants ``metaworld.ML45`` draws per environment."""
OBS_DIM, ACT_DIM = 39, 4
MAX_PATH_LENGTH = 500
"""Meta-World v3's ``SawyerXYZEnv.max_path_length``; checked against the installed package."""


@functools.cache
def _env_classes() -> dict[str, tuple[str, type]]:
    """env name -> (role, class), from the installed metaworld's ML45 definition."""
    from metaworld.env_dict import ML45_V3

    return {name: (role, cls) for role in ("train", "test")
            for name, cls in ML45_V3[role].items()}


@functools.cache
def ml45_env_names() -> tuple[str, ...]:
    """The 50 environment names in task-id order: sorted train names, then sorted test names."""
    classes = _env_classes()
    train = sorted(n for n, (role, _) in classes.items() if role == "train")
    test = sorted(n for n, (role, _) in classes.items() if role == "test")
    if (len(train), len(test)) != (N_TRAIN, N_TEST):
        raise RuntimeError(f"metaworld's ML45 has {len(train)} train / {len(test)} test "
                           f"environments; expected {N_TRAIN} / {N_TEST}")
    return tuple(train + test)


def goal_cache_file() -> Path:
    """Where the goal variants are cached: ``$MACAW_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/macaw``, else ``~/.cache/macaw``; one JSON file per metaworld version and
    benchmark seed."""
    root = os.environ.get("MACAW_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "macaw"
    return Path(root) / f"ml45-goals-metaworld{version('metaworld')}-seed{BENCHMARK_SEED}.json"


def _goal_record(task) -> dict[str, Any]:
    """A ``metaworld.Task`` as plain JSON values. Its ``data`` is a pickle, so the cache keeps
    what that pickle holds (``rand_vec`` and ``partially_observable``; ``env_cls`` follows from
    the name) rather than the pickle: reading the cache never unpickles anything."""
    data = pickle.loads(task.data)   # built by metaworld in this process, not read from disk
    unexpected = set(data) - {"env_cls", "rand_vec", "partially_observable"}
    if unexpected:
        raise RuntimeError(f"metaworld task data has unexpected keys {sorted(unexpected)}")
    rand_vec = np.asarray(data["rand_vec"])
    return {"env_name": task.env_name, "rand_vec": rand_vec.tolist(),
            "dtype": rand_vec.dtype.str, "partially_observable": bool(data["partially_observable"])}


def _goal_task(record: dict[str, Any]):
    """The ``metaworld.Task`` a :func:`_goal_record` describes."""
    import metaworld

    env_cls = _env_classes()[record["env_name"]][1]
    data = {"rand_vec": np.asarray(record["rand_vec"], dtype=np.dtype(record["dtype"])),
            "env_cls": env_cls, "partially_observable": bool(record["partially_observable"])}
    return metaworld.Task(env_name=record["env_name"], data=pickle.dumps(data))


def _read_goal_cache(path: Path) -> dict[str, list[dict]] | None:
    """The cached ``{"train": [record, ...], "test": [...]}`` (see :func:`_goal_record`), or
    None if the file is missing or not a complete cache (then it is rebuilt)."""
    try:
        cached = json.loads(path.read_text())
        counts = {role: len(cached[role]) for role in ("train", "test")}
        expected = {"train": N_TRAIN * GOALS_PER_ENV, "test": N_TEST * GOALS_PER_ENV}
        if counts != expected:
            raise ValueError(f"expected {expected} goal variants, found {counts}")
        names = _env_classes()
        for role in ("train", "test"):
            for record in cached[role]:
                if names.get(record["env_name"], (None,))[0] != role:
                    raise ValueError(f"{record['env_name']!r} is not an ML45 {role} environment")
                if not (isinstance(record["rand_vec"], list)
                        and all(isinstance(x, float) for x in record["rand_vec"])):
                    raise ValueError(f"rand_vec of {record['env_name']!r} is not a float list")
                if np.dtype(record["dtype"]).kind != "f":
                    raise ValueError(f"dtype {record['dtype']!r} is not a float dtype")
        return cached
    except FileNotFoundError:
        return None
    except Exception as err:   # a truncated or foreign file: rebuild rather than fail
        log.warning("ml45: ignoring the goal-variant cache %s (%s); rebuilding it", path, err)
        return None


@functools.cache
def _goal_pools() -> dict[str, list]:
    """``metaworld.ML45(seed=BENCHMARK_SEED)``'s train and test goal variants, from the disk
    cache when it holds them."""
    import metaworld

    path = goal_cache_file()
    cached = _read_goal_cache(path)
    if cached is None:
        bench = metaworld.ML45(seed=BENCHMARK_SEED)
        cached = {"train": [_goal_record(t) for t in bench.train_tasks],
                  "test": [_goal_record(t) for t in bench.test_tasks]}
        try:
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(cached))
        except OSError as err:     # a read-only home only costs the next process 20 s
            log.warning("ml45: could not write the goal-variant cache %s (%s)", path, err)
    return {role: [_goal_task(r) for r in records] for role, records in cached.items()}


def goal_variants(task_id: int) -> list:
    """The benchmark's ``metaworld.Task`` objects (goal variants) of task ``task_id``."""
    params = MetaWorldML45Env.params_for(task_id)
    pool = _goal_pools()[params["role"]]
    variants = [t for t in pool if t.env_name == params["env_name"]]
    if not variants:
        raise RuntimeError(f"ml45: the benchmark has no goal variants for {params['env_name']}")
    return variants


def _is_plain_state(value: Any) -> bool:
    """A Python-side attribute a checkpoint must save: plain values and arrays that own their
    memory. Arrays that view MuJoCo's memory (Meta-World keeps ``init_left_pad`` as a live
    view of ``data.xipos``) follow the simulator state and must stay views."""
    if isinstance(value, np.ndarray):
        root = value
        while isinstance(root, np.ndarray) and root.base is not None:
            root = root.base
        return isinstance(root, np.ndarray)
    return value is None or isinstance(value, (bool, int, float, str, np.generic))


class MetaWorldML45Env(gymnasium.Env, EzPickle):
    """One ML45 environment (task ``task_id``) whose goal variant is redrawn at every reset.

    Wraps the Meta-World v3 env (``self.metaworld_env``); the MuJoCo model and data are
    ``self.model`` / ``self.data``. Stepping before the first ``reset`` raises ``ResetNeeded``.
    """

    family = FAMILY
    n_tasks = N_TRAIN + N_TEST
    episode_steps = MAX_PATH_LENGTH
    obs_dim, act_dim = 39, 4
    success_flag = True
    metadata = {"render_modes": []}

    def __init__(self, task_id: int):
        self.task_id = check_task_id(self.family, task_id, self.n_tasks)
        self.task_params = self.params_for(self.task_id)
        _, cls = _env_classes()[self.task_params["env_name"]]
        self.metaworld_env = cls()
        self.goals = goal_variants(self.task_id)
        self.goal_index: int | None = None
        env = self.metaworld_env
        if env.max_path_length != MAX_PATH_LENGTH:
            raise RuntimeError(f"ml45: {self.task_params['env_name']} has max_path_length "
                               f"{env.max_path_length}; expected {MAX_PATH_LENGTH}")
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        if self.observation_space.shape != (OBS_DIM,) or self.action_space.shape != (ACT_DIM,):
            raise RuntimeError(f"ml45: {self.task_params['env_name']} has observation shape "
                               f"{self.observation_space.shape} and action shape "
                               f"{self.action_space.shape}; expected ({OBS_DIM},), ({ACT_DIM},)")
        EzPickle.__init__(self, self.task_id)

    @classmethod
    def params_for(cls, task_id: int) -> dict[str, Any]:
        check_task_id(cls.family, task_id, cls.n_tasks)
        return {"env_name": ml45_env_names()[task_id],
                "role": "train" if task_id < N_TRAIN else "test",
                "benchmark": "ML45", "benchmark_seed": BENCHMARK_SEED}

    @property
    def model(self) -> mujoco.MjModel:
        return self.metaworld_env.model

    @property
    def data(self) -> mujoco.MjData:
        return self.metaworld_env.data

    @property
    def goal_position(self) -> np.ndarray:
        """The current goal variant's goal position (Meta-World's ``_target_pos``)."""
        return np.array(self.metaworld_env._target_pos, dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.goal_index = int(self.np_random.integers(len(self.goals)))
        self.metaworld_env.set_task(self.goals[self.goal_index])
        obs, info = self.metaworld_env.reset()
        return obs, {**info, "task_id": self.task_id, "goal_index": self.goal_index}

    def step(self, action):
        if self.goal_index is None:
            raise ResetNeeded(f"ml45 task {self.task_id}: call reset() before step()")
        obs, reward, terminated, truncated, info = self.metaworld_env.step(action)
        info = {**info, "success": bool(info["success"]), "task_id": self.task_id,
                "goal_index": self.goal_index}
        return obs, float(reward), terminated, truncated, info

    def close(self):
        self.metaworld_env.close()

    # ---- exact state for resumable behaviour training (macaw.behaviour.trainer.TaskEnvs)

    def get_checkpoint_state(self) -> dict[str, Any]:
        """Everything the next step depends on: goal variant, MuJoCo state, Meta-World's own
        Python-side state (path length, previous observation for frame stacking, reward
        bookkeeping) and the goal RNG."""
        env = self.metaworld_env
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        sim = np.empty(mujoco.mj_stateSize(env.model, spec))
        mujoco.mj_getState(env.model, env.data, sim, spec)
        return {"goal_index": self.goal_index, "sim": sim,
                "python": {k: copy.deepcopy(v) for k, v in vars(env).items()
                           if _is_plain_state(v)},
                "rng": self.np_random.bit_generator.state}

    def set_checkpoint_state(self, state: dict[str, Any]) -> None:
        env = self.metaworld_env
        self.goal_index = state["goal_index"]
        if self.goal_index is not None:
            # set_task + reset rebuild the goal-dependent state; the saved values then
            # overwrite whatever the episode changed since.
            env.set_task(self.goals[self.goal_index])
            env.reset()
        for key, value in state["python"].items():
            setattr(env, key, copy.deepcopy(value))
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        mujoco.mj_setState(env.model, env.data, state["sim"], spec)
        mujoco.mj_forward(env.model, env.data)
        # mj_forward overwrites the solver's warm start; put the saved one back so the next
        # step is bit-identical to the uninterrupted run.
        mujoco.mj_setState(env.model, env.data, state["sim"], spec)
        self.np_random.bit_generator.state = state["rng"]

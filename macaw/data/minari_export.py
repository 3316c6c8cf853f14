"""Export task buffers to a Minari dataset so other offline-RL tools can read them
(docs/design.md §3).

Uses minari's ``create_dataset_from_buffers`` (local only, nothing is downloaded). One Minari
episode per buffer episode; Minari stores ``L + 1`` observations per episode of ``L`` steps (the
buffer's observations plus the final ``next_observation``). Each episode's ``options`` attribute
records the MACAW ``task_id`` it came from.

Dataset ids follow minari 0.5's ``(namespace/)name-v(version)`` rule, e.g.
``"macaw/cheetah-vel-task03-v0"`` (see :func:`minari_dataset_id`).
"""

from __future__ import annotations

import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from macaw import __version__
from macaw.data.buffer import TaskBuffer, load_task_buffer


def minari_dataset_id(family: str, task_id: int | None = None, version: int = 0) -> str:
    """``macaw/<family>-task<NN>-v<version>`` (or ``macaw/<family>-v<version>`` for all tasks)."""
    name = family if task_id is None else f"{family}-task{task_id:02d}"
    return f"macaw/{name}-v{version}"


@contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    """Point minari at ``root`` (its ``MINARI_DATASETS_PATH``) and restore the variable after."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _task_env(family: str, task_id: int) -> Any | None:
    """The task's gymnasium env from :mod:`macaw.envs`, or None if it cannot be built here."""
    try:
        from macaw.envs import make_task_env

        return make_task_env(family, task_id)
    except Exception:  # envs missing or mujoco unavailable: fall back to spaces from the data
        return None


def _episode_buffers(buffers: list[TaskBuffer]) -> list[Any]:
    from minari.data_collector.episode_buffer import EpisodeBuffer

    episodes = []
    for buf in buffers:
        for sl in buf.episode_slices():
            episodes.append(
                EpisodeBuffer(
                    id=len(episodes),
                    options={"task_id": int(buf.task_id)},
                    observations=np.concatenate(
                        [buf.observations[sl], buf.next_observations[sl.stop - 1 : sl.stop]]
                    ),
                    actions=buf.actions[sl],
                    rewards=buf.rewards[sl],
                    terminations=buf.terminals[sl],
                    truncations=buf.timeouts[sl],
                )
            )
    return episodes


def export_minari(buffer_paths: list[Path], dataset_id: str, root: Path) -> Any:
    """Write the buffers at ``buffer_paths`` as one Minari dataset ``dataset_id`` under ``root``.

    All buffers must share ``family``, ``env_id`` and observation/action sizes. The env spec comes
    from ``macaw.envs.make_task_env`` for the first buffer's task when that works, else the
    dataset records only Box observation/action spaces. Returns the ``minari.MinariDataset``.
    If writing fails, the partly written dataset directory is removed.
    """
    import gymnasium as gym
    import minari
    from minari.storage import get_dataset_path

    if not buffer_paths:
        raise ValueError("export_minari: buffer_paths is empty")
    buffers = [load_task_buffer(p) for p in buffer_paths]
    first = buffers[0]
    for buf in buffers[1:]:
        for attr in ("family", "env_id", "obs_dim", "act_dim"):
            if getattr(buf, attr) != getattr(first, attr):
                raise ValueError(
                    f"export_minari: {buf.path} has {attr}={getattr(buf, attr)!r}, "
                    f"expected {getattr(first, attr)!r} as in {first.path}"
                )
    minari.dataset.minari_dataset.parse_dataset_id(dataset_id)  # fail early on a malformed id

    env = _task_env(first.family, first.task_id)
    if env is not None:
        obs_space, act_space = env.observation_space, env.action_space
        if obs_space.shape != (first.obs_dim,) or act_space.shape != (first.act_dim,):
            raise ValueError(
                f"export_minari: env for {first.family} task {first.task_id} has spaces "
                f"{obs_space.shape}/{act_space.shape}, buffers have ({first.obs_dim},)/({first.act_dim},)"
            )
    else:
        obs_space = gym.spaces.Box(-np.inf, np.inf, (first.obs_dim,), np.float32)
        act_space = gym.spaces.Box(-1.0, 1.0, (first.act_dim,), np.float32)

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    task_ids = sorted({b.task_id for b in buffers})
    with _datasets_root(root):
        dataset_dir = get_dataset_path(dataset_id)
        existed = dataset_dir.exists()
        try:
            with warnings.catch_warnings():
                # Metadata nags (author e-mail, permalink, eval env) are not actionable offline.
                warnings.filterwarnings("ignore", category=UserWarning, module=r"minari\..*")
                dataset = minari.create_dataset_from_buffers(
                    dataset_id=dataset_id,
                    buffer=_episode_buffers(buffers),
                    env=env,
                    observation_space=obs_space,
                    action_space=act_space,
                    algorithm_name=first.algorithm,
                    author=f"macaw {__version__}",
                    description=(
                        f"MACAW behaviour-policy replay buffers: family {first.family}, "
                        f"env {first.env_id}, tasks {task_ids}, gamma {first.gamma}"
                    ),
                )
        except BaseException:
            if not existed and dataset_dir.exists():
                shutil.rmtree(dataset_dir)
            raise
        finally:
            if env is not None:
                env.close()
    return dataset

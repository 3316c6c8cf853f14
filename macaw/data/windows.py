"""Data-quality windows of a lifetime buffer (paper Fig. 4 left; SPEC §3).

The behaviour policy improves over its lifetime, so the first trajectories of its replay buffer
are ``bad`` data, the middle ones ``medium`` and the last ones ``good`` (the paper uses 500
trajectories per window; configs choose ``n_trajectories`` to fit smaller buffers).
"""

from __future__ import annotations

import numpy as np

from macaw.data.buffer import TaskBuffer

QUALITY_WINDOWS = ("bad", "medium", "good")


def window_episodes(n_episodes: int, quality: str, n_trajectories: int) -> range:
    """Episode numbers of the ``quality`` window: first / middle / last ``n_trajectories``.

    ``n_trajectories`` is clipped to ``n_episodes``. ``medium`` is the run of episodes centred on
    episode ``n_episodes // 2`` (shifted to stay inside the buffer).
    """
    if quality not in QUALITY_WINDOWS:
        raise ValueError(f"unknown data quality {quality!r}; expected one of {QUALITY_WINDOWS}")
    if n_trajectories < 1:
        raise ValueError(f"n_trajectories must be >= 1, found {n_trajectories}")
    if n_episodes < 1:
        raise ValueError(f"buffer has no episodes (n_episodes={n_episodes})")
    n = min(int(n_trajectories), n_episodes)
    if quality == "bad":
        first = 0
    elif quality == "good":
        first = n_episodes - n
    else:
        first = min(max(n_episodes // 2 - n // 2, 0), n_episodes - n)
    return range(first, first + n)


def window_indices(buffer: TaskBuffer, quality: str, n_trajectories: int) -> np.ndarray:
    """Sorted transition indices (int64) of the ``quality`` window of ``buffer``."""
    episodes = window_episodes(buffer.n_episodes, quality, n_trajectories)
    starts = buffer.episode_starts
    begin = int(starts[episodes.start])
    end = int(starts[episodes.stop]) if episodes.stop < buffer.n_episodes else len(buffer)
    return np.arange(begin, end, dtype=np.int64)

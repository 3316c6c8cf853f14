"""Sampling windows of a lifetime buffer (paper Fig. 4 left; docs/design.md §3, §4.1).

The behaviour policy improves over its lifetime, so the first trajectories of its replay buffer
are ``bad`` data, the middle ones ``medium`` and the last ones ``good`` (the paper uses 500
trajectories per window; configs choose ``window_episodes`` to fit smaller buffers). ``all`` is
the whole lifetime, which is what the authors' standard configuration reads
(``replay_buffer_size: -1``).

A window may be sub-sampled with a ``stride``: every ``stride``-th transition of it, counted from
its first one, as the authors' ``buffer_skip`` / ``inner_buffer_skip`` (our ``outer_stride`` /
``inner_stride``; 7 in their standard configuration). A contiguous batch of such a window is then ``batch`` consecutive rows of the
sub-sampled buffer: it spans ``stride`` times as many raw steps, i.e. several episodes.
"""

from __future__ import annotations

import numpy as np

from macaw.data.buffer import TaskBuffer
from macaw.fields import QUALITY_WINDOWS, WINDOWS

__all__ = ["QUALITY_WINDOWS", "WINDOWS", "window_episode_range", "window_indices",
           "window_rows_bound", "plateau_episode", "post_plateau_share"]


def window_episode_range(n_episodes: int, quality: str, window_episodes: int) -> range:
    """Episode numbers of the ``quality`` window: all episodes, or the first / middle / last
    ``window_episodes``.

    ``window_episodes`` is clipped to ``n_episodes``. ``medium`` is the run of episodes centred on
    episode ``n_episodes // 2`` (shifted to stay inside the buffer).
    """
    if quality not in WINDOWS:
        raise ValueError(f"unknown data window {quality!r}; expected one of {WINDOWS}")
    if window_episodes < 1:
        raise ValueError(f"window_episodes must be >= 1, found {window_episodes}")
    if n_episodes < 1:
        raise ValueError(f"buffer has no episodes (n_episodes={n_episodes})")
    if quality == "all":
        return range(0, n_episodes)
    n = min(int(window_episodes), n_episodes)
    if quality == "bad":
        first = 0
    elif quality == "good":
        first = n_episodes - n
    else:
        first = min(max(n_episodes // 2 - n // 2, 0), n_episodes - n)
    return range(first, first + n)


def window_indices(buffer: TaskBuffer, quality: str, window_episodes: int,
                   stride: int = 1) -> np.ndarray:
    """Sorted transition indices (int64) of the ``quality`` window of ``buffer``, every
    ``stride``-th one from the window's first transition."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, found {stride}")
    episodes = window_episode_range(buffer.n_episodes, quality, window_episodes)
    starts = buffer.episode_starts
    begin = int(starts[episodes.start])
    end = int(starts[episodes.stop]) if episodes.stop < buffer.n_episodes else len(buffer)
    return np.arange(begin, end, stride, dtype=np.int64)


def window_rows_bound(lifetime_steps: int, episode_steps: int, quality: str,
                      window_episodes: int, stride: int = 1) -> int:
    """The most rows :func:`window_indices` can give on a lifetime of ``lifetime_steps`` steps
    whose episodes last at most ``episode_steps``: no such buffer holds a larger batch, which
    the workflow checks before any job runs (a buffer with shorter episodes holds fewer)."""
    rows = lifetime_steps if quality == "all" else min(lifetime_steps,
                                                        window_episodes * episode_steps)
    return -(-rows // stride)


PLATEAU_EPISODES = 10
"""Episodes of the running mean that decides where a lifetime's plateau starts."""
PLATEAU_FRACTION = 0.9
"""Share of the lifetime's improvement (first to last ``PLATEAU_EPISODES`` episodes) after which
the behaviour policy counts as on its plateau."""


def plateau_episode(episode_returns: np.ndarray, n: int = PLATEAU_EPISODES,
                    fraction: float = PLATEAU_FRACTION) -> int:
    """The first episode whose trailing ``n``-episode mean return has covered ``fraction`` of
    the lifetime's improvement, from the mean of its first ``n`` episodes to that of its last
    ``n``: where the behaviour policy reaches its plateau. 0 for a lifetime that did not
    improve (nothing to learn: all of it is plateau)."""
    r = np.asarray(episode_returns, dtype=float)
    n = max(1, min(n, len(r)))
    first, last = r[:n].mean(), r[-n:].mean()
    if last <= first:
        return 0
    running = np.convolve(r, np.ones(n) / n, mode="valid")   # running[i]: episodes i..i+n-1
    reached = np.flatnonzero(running >= first + fraction * (last - first))
    return int(reached[0] + n - 1)


def post_plateau_share(buffer: TaskBuffer) -> tuple[float, int]:
    """``(share, episode)``: the share of the lifetime's transitions from its plateau episode
    (:func:`plateau_episode`) on, and that episode."""
    episode = plateau_episode(buffer.episode_returns)
    return 1.0 - int(buffer.episode_starts[episode]) / len(buffer), episode

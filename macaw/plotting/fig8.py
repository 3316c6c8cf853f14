"""Paper Fig. 8: learning curves of the behaviour policies that generated the offline data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from macaw.data import load_task_buffer
from macaw.plotting.common import format_steps_axis, save_figure, save_table, set_style

SMOOTHING_EPISODES = 5
FAMILY_ORDER = ("cheetah-dir", "cheetah-vel", "ant-dir", "walker-params")


def learning_curves(buffer_paths: list[Path]) -> pd.DataFrame:
    """One row per episode of every buffer: ``family, task_id, episode, env_step, return,
    smoothed_return`` (``env_step``: lifetime step at which the episode ended;
    ``smoothed_return``: mean of the last ``SMOOTHING_EPISODES`` episodes). Buffers with
    per-episode success flags (ml45) add ``success`` (0/1) and ``success_rate`` (mean of the
    last ``SMOOTHING_EPISODES`` episodes)."""
    frames = []
    for path in buffer_paths:
        b = load_task_buffer(path)
        ends = [s.stop for s in b.episode_slices()]
        returns = pd.Series(b.episode_returns.astype(np.float64))
        frame = pd.DataFrame({
            "family": b.family, "task_id": b.task_id, "episode": np.arange(b.n_episodes),
            "env_step": ends, "return": returns,
            "smoothed_return": returns.rolling(SMOOTHING_EPISODES, min_periods=1).mean(),
        })
        if b.episode_successes is not None:
            success = pd.Series(b.episode_successes.astype(np.float64))
            frame["success"] = success
            frame["success_rate"] = success.rolling(SMOOTHING_EPISODES, min_periods=1).mean()
        frames.append(frame)
    if not frames:
        raise ValueError("learning curves: no buffer files given")
    return pd.concat(frames, ignore_index=True)


def plot_fig8(buffer_paths: list[Path], pdf_path: Path, csv_path: Path) -> pd.DataFrame:
    """Per-task learning curves, one panel per family; thin lines are tasks (colour: task
    id), the black line is the mean over tasks (± standard error) in 20 step bins."""
    df = learning_curves(buffer_paths)
    families = [f for f in FAMILY_ORDER if f in set(df.family)]
    families += sorted(set(df.family) - set(families))
    set_style()
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.4), squeeze=False)
    for ax, family in zip(axes[0], families):
        d = df[df.family == family].copy()
        sns.lineplot(data=d, x="env_step", y="smoothed_return", hue="task_id", units="task_id",
                     estimator=None, palette="viridis", lw=0.7, alpha=0.6, legend=False, ax=ax)
        edges = np.linspace(0, d.env_step.max(), 21)
        d["step_bin"] = edges[np.clip(np.digitize(d.env_step, edges), 1, 20)]
        per_task = d.groupby(["step_bin", "task_id"], as_index=False)["return"].mean()
        sns.lineplot(data=per_task, x="step_bin", y="return", color="black", lw=1.8,
                     errorbar="se", ax=ax, label=f"mean of {d.task_id.nunique()} tasks")
        ax.set(title=family, xlabel="environment steps per task", ylabel="episode return")
        format_steps_axis(ax)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("Behaviour policies (offline data): per-task learning curves", y=1.02)
    save_table(df, csv_path)
    save_figure(fig, pdf_path)
    return df

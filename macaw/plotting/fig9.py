"""Paper Fig. 9: learning curves and success rates of the ML45 behaviour policies, one small
panel per task (return on the left axis, success rate on the right)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from macaw.envs import task_params
from macaw.plotting.common import format_steps_axis, save_figure, save_table, set_style
from macaw.plotting.fig8 import SMOOTHING_EPISODES, learning_curves

PANEL_COLUMNS = 10
RETURN_COLOUR, SUCCESS_COLOUR = "tab:blue", "tab:orange"


def success_curves(buffer_paths: list[Path]) -> pd.DataFrame:
    """:func:`macaw.plotting.fig8.learning_curves` of buffers that carry success flags, plus
    each task's ``env_name`` and ``role`` (train / test), ordered by task id."""
    df = learning_curves(buffer_paths)
    if df.family.nunique() != 1:
        raise ValueError(f"plot-fig9: expected the buffers of one family, found "
                         f"{sorted(df.family.unique())}")
    no_success = df.success.isna() if "success" in df.columns else df.task_id.notna()
    if no_success.any():
        missing = sorted(df.task_id[no_success].unique().tolist())
        raise ValueError(f"plot-fig9: buffers of task(s) {missing} have no episode_successes; "
                         "Fig. 9 needs a family with a success flag (ml45)")
    params = {(f, t): task_params(f, int(t)) for f, t in
              df[["family", "task_id"]].drop_duplicates().itertuples(index=False)}
    df.insert(2, "env_name", [params[k]["env_name"] for k in zip(df.family, df.task_id)])
    df.insert(3, "role", [params[k]["role"] for k in zip(df.family, df.task_id)])
    return df.sort_values(["task_id", "episode"], ignore_index=True)


def plot_fig9(buffer_paths: list[Path], pdf_path: Path, csv_path: Path) -> pd.DataFrame:
    """One panel per task: episode return (smoothed over ``SMOOTHING_EPISODES`` episodes,
    raw returns faint) and success rate over the same window, against environment steps."""
    df = success_curves(buffer_paths)
    tasks = list(dict.fromkeys(df.task_id))
    n_cols = min(PANEL_COLUMNS, len(tasks))
    n_rows = math.ceil(len(tasks) / n_cols)
    set_style()
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.3 * n_cols, 2.0 * n_rows),
                             squeeze=False, sharex=True)
    for ax, task in zip(axes.flat, tasks):
        d = df[df.task_id == task]
        sns.lineplot(data=d, x="env_step", y="return", color=RETURN_COLOUR, lw=0.5, alpha=0.25,
                     ax=ax)
        sns.lineplot(data=d, x="env_step", y="smoothed_return", color=RETURN_COLOUR, lw=1.2,
                     ax=ax)
        right = ax.twinx()
        sns.lineplot(data=d, x="env_step", y="success_rate", color=SUCCESS_COLOUR, lw=1.2,
                     ax=right)
        right.set_ylim(-0.05, 1.05)
        right.grid(False)
        role = d.role.iloc[0]
        ax.set_title(f"{task}: {d.env_name.iloc[0]}" + (" (test)" if role == "test" else ""),
                     fontsize=7, color="firebrick" if role == "test" else "black")
        ax.set(xlabel="", ylabel="")
        right.set(ylabel="")
        ax.tick_params(labelsize=6, colors=RETURN_COLOUR, axis="y")
        ax.tick_params(labelsize=6, axis="x")
        right.tick_params(labelsize=6, colors=SUCCESS_COLOUR)
        format_steps_axis(ax)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    fig.supxlabel("environment steps per task")
    fig.supylabel(f"episode return (blue; mean of {SMOOTHING_EPISODES} episodes)",
                  color=RETURN_COLOUR, x=-0.01)
    fig.suptitle(f"Meta-World ML45 behaviour policies: return and success rate (orange, "
                 f"fraction of the last {SMOOTHING_EPISODES} episodes)", y=1.0)
    fig.tight_layout()
    save_table(df, csv_path)
    save_figure(fig, pdf_path)
    return df

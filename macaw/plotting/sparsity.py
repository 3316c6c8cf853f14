"""Paper Fig. 4 (right): final meta-test return against the number of training tasks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from macaw.plotting.common import save_figure, save_table, set_style
from macaw.plotting.curves import RunCurve, curves_table
from macaw.stats import last_evaluations


def sparsity_table(runs: list[RunCurve], last: int = 3,
                   common_tasks: set[int] | None = None) -> pd.DataFrame:
    """``test_tasks, train_tasks, label, seed, step, mean_return``: each run's mean test
    return over its last ``last`` evaluations (``step``: the last one); a run's ``panel`` is
    its number of training tasks. ``test_tasks`` is ``all`` (the run's whole test set) and,
    with ``common_tasks``, also ``common`` (only its test tasks among them: the test tasks
    that every sparse split shares, so that every point averages the same targets)."""
    sets = {"all": None, **({"common": set(common_tasks)} if common_tasks else {})}
    frames = []
    for name, tasks in sets.items():
        df = curves_table(runs, tasks=tasks)
        tail = pd.concat(last_evaluations(run, last)
                         for _, run in df.groupby(["panel", "label", "seed"], sort=False))
        final = (tail.groupby(["panel", "label", "seed"], as_index=False)
                 .agg(step=("step", "max"), mean_return=("mean_return", "mean")))
        frames.append(final.assign(test_tasks=name))
    final = pd.concat(frames, ignore_index=True)
    return (final.rename(columns={"panel": "train_tasks"})
            .astype({"train_tasks": int})
            .sort_values(["test_tasks", "label", "train_tasks", "seed"])
            [["test_tasks", "train_tasks", "label", "seed", "step", "mean_return"]]
            .reset_index(drop=True))


def plot_sparsity(runs: list[RunCurve], pdf_path: Path, csv_path: Path,
                  title: str, last: int = 3, common_tasks: set[int] | None = None
                  ) -> pd.DataFrame:
    """Fig. 4 right: one panel on every run's whole test set and, with ``common_tasks``, a
    second on the test tasks that every sparse split shares (its note names them)."""
    df = sparsity_table(runs, last, common_tasks)
    set_style()
    panels = list(dict.fromkeys(df.test_tasks))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False)
    ticks = sorted(df.train_tasks.unique())
    for ax, panel in zip(axes[0], panels):
        sns.lineplot(data=df[df.test_tasks == panel], x="train_tasks", y="mean_return",
                     hue="label", errorbar=("ci", 95), marker="o", ax=ax)
        ax.set_xscale("log")
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.invert_xaxis()              # as in the paper: fewer training tasks to the right
        ax.set(xlabel="number of meta-training tasks",
               ylabel=f"meta-test return (mean of last {last} evaluations)",
               title="every test task" if panel == "all" else
               f"the {len(common_tasks)} test tasks every sparse split shares")
        ax.legend(fontsize=8)
    n_seeds = df.groupby(["train_tasks", "label"]).seed.nunique().min()
    fig.suptitle(f"{title} (mean, 95 % bootstrap CI over {n_seeds} "
                 f"seed{'s' if n_seeds > 1 else ''})", y=1.03)
    save_table(df, csv_path)
    save_figure(fig, pdf_path)
    return df

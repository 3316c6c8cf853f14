"""Paper Fig. 4 (right): final meta-test return against the number of training tasks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from macaw.plotting.common import save_figure, save_table, set_style
from macaw.plotting.curves import RunCurve, curves_table


def sparsity_table(runs: list[RunCurve], last: int = 3) -> pd.DataFrame:
    """``train_tasks, label, seed, step, mean_return``: each run's mean test return over its
    last ``last`` evaluations (``step``: the last one); a run's ``panel`` is its number of
    training tasks."""
    df = curves_table(runs)
    df = df.assign(rank=df.groupby(["panel", "label", "seed"]).step.rank(ascending=False))
    tail = df[df["rank"] <= last]
    final = (tail.groupby(["panel", "label", "seed"], as_index=False)
             .agg(step=("step", "max"), mean_return=("mean_return", "mean")))
    return (final.rename(columns={"panel": "train_tasks"})
            .astype({"train_tasks": int})
            .sort_values(["label", "train_tasks", "seed"])
            [["train_tasks", "label", "seed", "step", "mean_return"]]
            .reset_index(drop=True))


def plot_sparsity(runs: list[RunCurve], pdf_path: Path, csv_path: Path,
                  title: str, last: int = 3) -> pd.DataFrame:
    df = sparsity_table(runs, last)
    set_style()
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    sns.lineplot(data=df, x="train_tasks", y="mean_return", hue="label",
                 errorbar=("ci", 95), marker="o", ax=ax)
    ticks = sorted(df.train_tasks.unique())
    ax.set_xscale("log")
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.invert_xaxis()              # as in the paper: fewer training tasks to the right
    ax.set(xlabel="number of meta-training tasks",
           ylabel=f"meta-test return (mean of last {last} evaluations)")
    n_seeds = df.groupby(["train_tasks", "label"]).seed.nunique().min()
    ax.set_title(f"{title}\n(mean, 95 % bootstrap CI over {n_seeds} "
                 f"seed{'s' if n_seeds > 1 else ''})")
    ax.legend(fontsize=8)
    save_table(df, csv_path)
    save_figure(fig, pdf_path)
    return df

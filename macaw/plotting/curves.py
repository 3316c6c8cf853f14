"""Meta-test learning curves (paper Fig. 3, Fig. 4 left / center, Fig. 5, Fig. 7): mean test
return (Fig. 7: success rate) against meta-training steps, mean with a 95 % bootstrap
confidence interval over seeds, log-x."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from macaw.plotting.common import save_figure, save_table, set_style
from macaw.stats import read_eval_csv


@dataclass(frozen=True)
class RunCurve:
    """One run's eval.csv, placed in a panel under a legend label."""

    panel: str
    label: str
    seed: int
    path: Path


METRIC_LABELS = {"return": "meta-test return", "success": "meta-test success rate"}
"""eval.csv columns a curve can show (``success``: ML45 runs only), with their axis labels."""


def curves_table(runs: list[RunCurve], metric: str = "return",
                 tasks: set[int] | None = None) -> pd.DataFrame:
    """``panel, label, seed, step, mean_{metric}`` — the mean of eval.csv's ``metric`` column
    over a run's test tasks (of ``success``: the success rate); with ``tasks``, over those of
    its test tasks that are in ``tasks`` (a run with none of them is refused)."""
    frames = []
    for run in runs:
        df = read_eval_csv(run.path, metric)
        if tasks is not None:
            df = df[df.task_id.isin(tasks)]
            if df.empty:
                raise ValueError(f"{run.path}: none of its test tasks is among {sorted(tasks)}")
        mean = df.groupby("step", as_index=False)[metric].mean()
        frames.append(mean.rename(columns={metric: f"mean_{metric}"}).assign(
            panel=run.panel, label=run.label, seed=run.seed))
    if not frames:
        raise ValueError("no runs to plot")
    return pd.concat(frames, ignore_index=True)[
        ["panel", "label", "seed", "step", f"mean_{metric}"]]


def plot_curves(runs: list[RunCurve], pdf_path: Path, csv_path: Path, title: str,
                metric: str = "return") -> pd.DataFrame:
    df = curves_table(runs, metric)
    panels = list(dict.fromkeys(r.panel for r in runs))
    set_style()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    positive = df.step[df.step > 0]
    for ax, panel in zip(axes[0], panels):
        sns.lineplot(data=df[df.panel == panel], x="step", y=f"mean_{metric}", hue="label",
                     errorbar=("ci", 95), ax=ax, marker="o", markersize=3)
        # Log-x as in the paper; symlog keeps the step-0 (pre-meta-training) point.
        if len(positive):
            ax.set_xscale("symlog", linthresh=float(positive.min()))
        ax.set(title=panel, xlabel="meta-training steps", ylabel=METRIC_LABELS.get(metric, metric))
        if metric == "success":
            ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=8)
    n_seeds = df.groupby(["panel", "label"]).seed.nunique().min()
    fig.suptitle(f"{title} (mean, 95 % bootstrap CI over {n_seeds} "
                 f"seed{'s' if n_seeds > 1 else ''})", y=1.03)
    save_table(df, csv_path)
    save_figure(fig, pdf_path)
    return df

"""Meta-test learning curves (paper Fig. 4 left / center, Fig. 5): mean test return against
meta-training steps, mean ± standard error over seeds, log-x."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from macaw.plotting.common import save_figure, save_table, set_style


@dataclass(frozen=True)
class RunCurve:
    """One run's eval.csv, placed in a panel under a legend label."""

    panel: str
    label: str
    seed: int
    path: Path


def curves_table(runs: list[RunCurve]) -> pd.DataFrame:
    """``panel, label, seed, step, mean_return`` — the mean over a run's test tasks."""
    frames = []
    for run in runs:
        df = pd.read_csv(run.path)
        missing = {"step", "task_id", "return"} - set(df.columns)
        if missing:
            raise ValueError(f"{run.path}: missing column(s) {sorted(missing)}; "
                             "expected step, task_id, return")
        mean = df.groupby("step", as_index=False)["return"].mean()
        frames.append(mean.rename(columns={"return": "mean_return"}).assign(
            panel=run.panel, label=run.label, seed=run.seed))
    if not frames:
        raise ValueError("no runs to plot")
    return pd.concat(frames, ignore_index=True)[["panel", "label", "seed", "step", "mean_return"]]


def plot_curves(runs: list[RunCurve], pdf_path: Path, csv_path: Path, title: str,
                ylabel: str = "meta-test return") -> pd.DataFrame:
    df = curves_table(runs)
    panels = list(dict.fromkeys(r.panel for r in runs))
    set_style()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    positive = df.step[df.step > 0]
    for ax, panel in zip(axes[0], panels):
        sns.lineplot(data=df[df.panel == panel], x="step", y="mean_return", hue="label",
                     errorbar="se", ax=ax, marker="o", markersize=3)
        # Log-x as in the paper; symlog keeps the step-0 (pre-meta-training) point.
        if len(positive):
            ax.set_xscale("symlog", linthresh=float(positive.min()))
        ax.set(title=panel, xlabel="meta-training steps", ylabel=ylabel)
        ax.legend(fontsize=8)
    n_seeds = df.groupby(["panel", "label"]).seed.nunique().min()
    fig.suptitle(f"{title} (mean ± s.e. over {n_seeds} seed{'s' if n_seeds > 1 else ''})",
                 y=1.03)
    save_table(df, csv_path)
    save_figure(fig, pdf_path)
    return df

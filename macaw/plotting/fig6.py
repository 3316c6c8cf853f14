"""Paper Fig. 6: few-shot test accuracy of MAML with and without weight-transform layers
against meta-training steps (mean ± standard error over seeds), on the digits stand-in for
Omniglot built by :mod:`macaw.fewshot`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import seaborn as sns
import yaml
from matplotlib import pyplot as plt

from macaw.fewshot import ROTATIONS, TEST_DIGITS, TRAIN_DIGITS, config_path
from macaw.plotting.common import save_figure, save_table, set_style


@dataclass(frozen=True)
class FewShotRun:
    """One run's ``step,accuracy`` CSV (its config YAML lies beside it) under a label."""

    label: str
    seed: int
    path: Path


def fewshot_table(runs: list[FewShotRun]) -> tuple[pd.DataFrame, dict]:
    """``label, seed, step, accuracy, width, n_params`` of every run, and the task setting
    (``ways``, ``shots``) that all runs must share."""
    frames, settings = [], set()
    for run in runs:
        df = pd.read_csv(run.path)
        missing = {"step", "accuracy"} - set(df.columns)
        if missing:
            raise ValueError(f"{run.path}: missing column(s) {sorted(missing)}; "
                             "expected step, accuracy")
        meta_path = config_path(run.path)
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path}: config of run {run.path} missing "
                                    "(written by `macaw fewshot` beside its CSV)")
        meta = yaml.safe_load(meta_path.read_text())
        settings.add((meta["config"]["ways"], meta["config"]["shots"]))
        frames.append(df[["step", "accuracy"]].assign(
            label=run.label, seed=run.seed, width=meta["width"], n_params=meta["n_params"]))
    if not frames:
        raise ValueError("plot-fig6: no runs to plot")
    if len(settings) > 1:
        raise ValueError(f"plot-fig6: runs mix task settings (ways, shots) {sorted(settings)}")
    ways, shots = settings.pop()
    table = pd.concat(frames, ignore_index=True)
    return (table[["label", "seed", "step", "accuracy", "width", "n_params"]],
            {"ways": ways, "shots": shots})


def _span(digits: tuple[int, ...]) -> str:
    return f"{min(digits)}-{max(digits)}"


def plot_fig6(runs: list[FewShotRun], pdf_path: Path, csv_path: Path) -> pd.DataFrame:
    """One line per label: mean test accuracy ± s.e. over seeds; dashed line: chance."""
    df, setting = fewshot_table(runs)
    labels = list(dict.fromkeys(r.label for r in runs))
    # The legend names each model's size: the point of the comparison.
    sizes = df.groupby("label").agg(width=("width", "first"), n_params=("n_params", "first"))
    legend = {lab: f"{lab} (width {sizes.width[lab]}, {sizes.n_params[lab]:,} params)"
              for lab in labels}
    set_style()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    sns.lineplot(data=df.assign(model=df.label.map(legend)), x="step", y="accuracy",
                 hue="model", hue_order=[legend[lab] for lab in labels], errorbar="se",
                 marker="o", markersize=3, ax=ax)
    ax.axhline(1 / setting["ways"], color="grey", ls="--", lw=1, label="chance")
    n_seeds = df.groupby("label").seed.nunique().min()
    ax.set(xlabel="meta-training steps", ylabel="meta-test query accuracy",
           title=f"scikit-learn digits, {setting['ways']}-way {setting['shots']}-shot, "
                 f"class-split\n(Omniglot stand-in: train digits {_span(TRAIN_DIGITS)}, test digits "
                 f"{_span(TEST_DIGITS)}, x{ROTATIONS} rotations;\nmean ± s.e. over {n_seeds} seed{'s' if n_seeds > 1 else ''})")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    save_table(df, csv_path)
    save_figure(fig, pdf_path)
    return df

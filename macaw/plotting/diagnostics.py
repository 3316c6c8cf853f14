"""What MACAW's single adaptation step does over meta-training (docs/results/fidelity/): per run
directory, the adaptation gain (adapted minus unadapted return on the same test tasks and
seeds, from ``eval.csv``), and from ``train.csv`` the learned inner rates, lambda, and the
held-out value loss before and after the inner step. Mean with a 95 % bootstrap CI over
seeds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt

from macaw.plotting.common import save_figure, save_table, set_style

PANELS = (
    ("adaptation_gain", "adaptation gain (return)"),
    ("policy_inner_lr", "mean inner rate, policy"),
    ("value_inner_lr", "mean inner rate, value"),
    ("adv_coef", "lambda (L_ADV weight)"),
    ("heldout_value_loss_before", "held-out value loss, before step"),
    ("heldout_value_loss_after", "held-out value loss, after step"),
)


@dataclass(frozen=True)
class DiagnosticRun:
    label: str
    seed: int
    run_dir: Path


def diagnostics_table(runs: list[DiagnosticRun]) -> pd.DataFrame:
    """``label, seed, step, quantity, value`` (long format) over all runs."""
    frames = []
    for run in runs:
        ev = pd.read_csv(run.run_dir / "eval.csv")
        if "unadapted_return" not in ev:
            raise ValueError(f"{run.run_dir / 'eval.csv'}: no unadapted_return column; "
                             "re-run with eval_unadapted: true")
        gain = (ev["return"] - ev["unadapted_return"]).groupby(ev.step).mean()
        parts = [pd.DataFrame({"step": gain.index, "quantity": "adaptation_gain",
                               "value": gain.to_numpy()})]
        train_csv = run.run_dir / "train.csv"
        if train_csv.exists() and train_csv.stat().st_size:
            tr = pd.read_csv(train_csv)
            cols = [c for c, _ in PANELS[1:] if c in tr]
            if cols:
                parts.append(tr.melt(id_vars="step", value_vars=cols, var_name="quantity"))
        frames.append(pd.concat(parts).assign(label=run.label, seed=run.seed))
    if not frames:
        raise ValueError("no runs to plot")
    return pd.concat(frames, ignore_index=True)[["label", "seed", "step", "quantity", "value"]]


def plot_diagnostics(runs: list[DiagnosticRun], pdf_path: Path, csv_path: Path,
                     title: str) -> pd.DataFrame:
    df = diagnostics_table(runs)
    panels = [(q, name) for q, name in PANELS if q in set(df.quantity)]
    set_style()
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4), squeeze=False)
    for ax, (quantity, name) in zip(axes.ravel(), panels):
        sns.lineplot(data=df[df.quantity == quantity], x="step", y="value", hue="label",
                     errorbar=("ci", 95), ax=ax, marker="o", markersize=3)
        ax.set(title=name, xlabel="meta-training steps", ylabel="")
        if quantity.startswith("heldout"):
            ax.set_yscale("log")
        if quantity == "adaptation_gain":
            ax.axhline(0.0, color="grey", lw=0.8)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    n_seeds = df.groupby("label").seed.nunique().min()
    fig.suptitle(f"{title} (mean, 95 % bootstrap CI over {n_seeds} "
                 f"seed{'s' if n_seeds > 1 else ''})", y=1.01)
    fig.tight_layout()
    save_table(df, csv_path)
    save_figure(fig, pdf_path)
    return df

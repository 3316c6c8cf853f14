"""Shared figure plumbing: seaborn style and atomic PDF / CSV writing."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from macaw.io import atomic_path  # noqa: E402


def set_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def format_steps_axis(ax: plt.Axes) -> None:
    """Environment-step tick labels in thousands: 20000 -> "20k"."""
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k"))


def save_figure(fig: plt.Figure, pdf_path: Path) -> None:
    """Write ``fig`` to ``pdf_path`` atomically (temp file, then rename) and close it."""
    with atomic_path(pdf_path) as tmp:
        fig.savefig(tmp, format="pdf", bbox_inches="tight")
    plt.close(fig)


def save_table(df: pd.DataFrame, csv_path: Path) -> None:
    """Write ``df`` to ``csv_path`` atomically."""
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)

"""Shared figure plumbing: seaborn style and atomic PDF / CSV writing."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def set_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def save_figure(fig: plt.Figure, pdf_path: Path) -> None:
    """Write ``fig`` to ``pdf_path`` atomically (temp file, then rename) and close it."""
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pdf_path.with_name(pdf_path.name + ".tmp")
    fig.savefig(tmp, format="pdf", bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, pdf_path)


def save_table(df: pd.DataFrame, csv_path: Path) -> None:
    """Write ``df`` to ``csv_path`` atomically."""
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, csv_path)

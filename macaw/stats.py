"""Final scores and their aggregates as the field reports them (Agarwal et al., 2021, via the
``rliable`` package): IQM and mean with 95 % stratified-bootstrap confidence intervals over
seeds x test tasks, and the probability that MACAW improves on each baseline.

A run's **final score on a test task** is the mean of its ``return`` over the last ``last``
evaluations in ``eval.csv`` (every episode of them). The **adaptation gain** is the same mean of
``return - unadapted_return`` (NaN where the unadapted policy was not evaluated).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from macaw.io import atomic_path

REFERENCE = "MACAW"
"""The method every other one is compared with (probability of improvement)."""


@dataclass(frozen=True)
class SummaryRun:
    """One run's eval.csv, under its family, split, method label and seed."""

    family: str
    split: str
    label: str
    seed: int
    path: Path


def final_scores(path: Path, last: int) -> pd.DataFrame:
    """``task_id, score, gain``: per test task, the mean return (and adaptation gain) over
    the run's last ``last`` evaluations."""
    df = pd.read_csv(path)
    missing = {"step", "task_id", "return"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected step, "
                         "task_id, return (and unadapted_return)")
    steps = sorted(df.step.unique())[-last:]
    tail = df[df.step.isin(steps)]
    gain = (tail["return"] - tail["unadapted_return"]) if "unadapted_return" in tail \
        else pd.Series(np.nan, index=tail.index)
    out = tail.assign(gain=gain).groupby("task_id").agg(score=("return", "mean"),
                                                       gain=("gain", "mean"))
    return out.reset_index()


def score_matrix(runs: list[SummaryRun], column: str, last: int) -> np.ndarray:
    """``(seeds, test tasks)`` matrix of one method's final ``column`` (runs share tasks)."""
    frames = [final_scores(r.path, last).set_index("task_id")[column] for r in runs]
    tasks = sorted(set(frames[0].index))
    for run, frame in zip(runs, frames):
        if sorted(frame.index) != tasks:
            raise ValueError(f"{run.path}: test tasks {sorted(frame.index)} differ from "
                             f"{runs[0].path}'s {tasks}")
    return np.stack([frame.loc[tasks].to_numpy(dtype=float) for frame in frames])


def _interval(scores: dict, func, reps: int, seed: int) -> tuple[dict, dict]:
    """rliable's point estimates and 95 % intervals, the same on every call with one ``seed``.

    rliable's stratified bootstraps (``StratifiedBootstrap`` and the probability of
    improvement's ``StratifiedIndependentBootstrap``) draw their resamples from NumPy's global
    generator with ``np.random.choice``, ignoring the ``random_state`` they are given, so the
    global generator is seeded here and put back afterwards."""
    from rliable import library as rly

    import warnings

    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():     # arch's notice about its future default generator
            warnings.simplefilter("ignore", FutureWarning)
            return rly.get_interval_estimates(scores, func, reps=reps,
                                              random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(saved)


def summary_table(runs: list[SummaryRun], last: int = 3, reps: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """One row per (family, split, method): IQM and mean of the final scores with 95 %
    stratified-bootstrap CIs, the mean adaptation gain with its CI, and (for every method but
    MACAW) the probability that MACAW's score beats it, with its CI."""
    from rliable import metrics

    def aggregates(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    rows = []
    keys = list(dict.fromkeys((r.family, r.split) for r in runs))
    for family, split in keys:
        group = [r for r in runs if (r.family, r.split) == (family, split)]
        labels = list(dict.fromkeys(r.label for r in group))
        by_label = {lab: sorted((r for r in group if r.label == lab), key=lambda r: r.seed)
                    for lab in labels}
        scores = {lab: score_matrix(rs, "score", last) for lab, rs in by_label.items()}
        gains = {lab: score_matrix(rs, "gain", last) for lab, rs in by_label.items()}
        point, ci = _interval(scores, aggregates, reps, seed)
        finite_gains = {k: v for k, v in gains.items() if np.isfinite(v).all()}
        g_point, g_ci = (_interval(finite_gains, metrics.aggregate_mean, reps, seed)
                         if finite_gains else ({}, {}))
        pairs = {lab: [scores[REFERENCE], scores[lab]] for lab in labels
                 if lab != REFERENCE and REFERENCE in scores}
        p_point, p_ci = (_interval(pairs, metrics.probability_of_improvement, reps, seed)
                         if pairs else ({}, {}))
        for lab in labels:
            x = scores[lab]
            row = {"family": family, "split": split, "method": lab, "seeds": x.shape[0],
                   "test_tasks": x.shape[1], "final_evals": last,
                   "iqm": point[lab][0], "iqm_low": ci[lab][0, 0], "iqm_high": ci[lab][1, 0],
                   "mean": point[lab][1], "mean_low": ci[lab][0, 1],
                   "mean_high": ci[lab][1, 1]}
            if lab in g_point:
                low, high = np.ravel(g_ci[lab])[:2]
                row.update(gain=float(np.squeeze(g_point[lab])), gain_low=float(low),
                           gain_high=float(high))
            if lab in p_point:
                low, high = np.ravel(p_ci[lab])[:2]
                row.update(p_macaw_better=float(np.squeeze(p_point[lab])), p_low=float(low),
                           p_high=float(high))
            rows.append(row)
    return pd.DataFrame(rows)


def _fmt(value: float, low: float, high: float, digits: int = 1, seeds: int = 2) -> str:
    """``value [low, high]``; a one-seed method's bootstrap can only resample its tasks within
    that seed, so its interval says nothing about seeds and is left out."""
    if not np.isfinite(value):
        return "—"
    if seeds < 2:
        return f"{value:.{digits}f} (1 seed)"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def write_summary(runs: list[SummaryRun], csv_path: Path, md_path: Path, last: int = 3,
                  reps: int = 2000) -> pd.DataFrame:
    """``summary.csv`` (every number), ``summary.md`` (a readable table) and, beside the CSV,
    ``summary.json`` (``{family: {split: {method: {...}}}}``, DVC's metrics file)."""
    import json

    table = summary_table(runs, last, reps)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    nested: dict = {}
    for r in table.to_dict("records"):
        values = {k: (None if isinstance(v, float) and not np.isfinite(v) else round(v, 4)
                      if isinstance(v, float) else v)
                  for k, v in r.items() if k not in ("family", "split", "method")}
        nested.setdefault(r["family"], {}).setdefault(r["split"], {})[r["method"]] = values
    with atomic_path(Path(csv_path).with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(nested, indent=1, sort_keys=True))
    lines = ["| family | split | method | seeds × tasks | IQM [95 % CI] | mean [95 % CI] | "
             "adaptation gain [95 % CI] | P(MACAW better) [95 % CI] |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for r in table.to_dict("records"):
        lines.append(
            f"| {r['family']} | {r['split']} | {r['method']} | {r['seeds']} × {r['test_tasks']} "
            f"| {_fmt(r['iqm'], r['iqm_low'], r['iqm_high'], seeds=r['seeds'])} "
            f"| {_fmt(r['mean'], r['mean_low'], r['mean_high'], seeds=r['seeds'])} "
            f"| {_fmt(r.get('gain', np.nan), r.get('gain_low', np.nan), r.get('gain_high', np.nan), seeds=r['seeds'])} "
            f"| {_fmt(r.get('p_macaw_better', np.nan), r.get('p_low', np.nan), r.get('p_high', np.nan), 2, seeds=r['seeds'])} |")
    note = (f"\nFinal score of a run on a test task: its mean return over the last {last} "
            "evaluations (every episode of them). IQM and mean over seeds × test tasks with 95 % "
            f"stratified-bootstrap CIs ({reps} resamples, rliable). Adaptation gain: the adapted "
            "return minus the unadapted meta-policy's on the same task and environment seed. "
            "P(MACAW better): the probability that MACAW's score on a test task beats this "
            "method's (rliable's probability of improvement: per test task over every pair of "
            "seeds, then averaged over the tasks), so every task counts equally, while IQM "
            "and mean pool returns whose scale differs between tasks; the two can rank "
            "methods differently. A one-seed method gets no CI (\"1 seed\").\n")
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n" + note)
    return table

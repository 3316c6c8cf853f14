"""Final scores and their aggregates as the field reports them (Agarwal et al., 2021, via the
``rliable`` package): IQM and mean with 95 % stratified-bootstrap confidence intervals over
seeds x test tasks, and the probability that MACAW improves on each baseline.

A run's **final score on a test task** is the mean of its ``return`` over the last ``last``
evaluations in ``eval.csv`` (every episode of them). The **adaptation gain** ("adaptation
adds") is the same mean of ``return - unadapted_return`` (NaN where the unadapted policy was not
evaluated).

The **controls** (`docs/usage.md` "Final scores") say whether a comparison can test the paper's claims at all:

- *untrained + adaptation*: the step-0 evaluation's adapted return, an untrained network plus
  the method's own adaptation (MACAW's inner step, MT+FT's fine-tuning);
- *final unadapted*: the trained meta-policy without adaptation, over the last evaluations;
- *meta-training adds*: final score minus untrained + adaptation, per seed and test task;
- *adaptation adds*: the adaptation gain above.

A family and split is **testable** when the best trained method beats the best untrained +
adaptation control (the probability of improvement's 95 % CI above 0.5: the benchmark needs
meta-learning) and adaptation adds for at least one method (its CI above 0: the benchmark needs
adaptation); otherwise it is **untestable at this scale**, and :func:`benchmark_verdicts` says
which control failed.
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
    """One run's eval.csv, under its family, split, method label and seed; with ``tasks``,
    only its evaluations on those test tasks (e.g. the test tasks every sparse split shares)."""

    family: str
    split: str
    label: str
    seed: int
    path: Path
    tasks: frozenset[int] | None = None


def final_scores(path: Path, last: int, up_to: int | None = None,
                 tasks: frozenset[int] | None = None) -> pd.DataFrame:
    """``task_id, score, gain, unadapted, untrained, meta_adds``: per test task, over the
    run's last ``last`` evaluations, the mean return, adaptation gain and unadapted return;
    ``untrained`` is the step-0 evaluation's mean (adapted) return and ``meta_adds`` the score
    minus it (NaN without a step-0 evaluation or an ``unadapted_return`` column). With
    ``up_to``, the run as if it had stopped at that meta-step (its evaluations up to there;
    a run that did not reach it is refused). With ``tasks``, only those test tasks (every
    one must be in the run)."""
    df = read_eval_csv(path)
    if tasks is not None:
        if missing := set(tasks) - set(df.task_id):
            raise ValueError(f"{path}: no evaluation of test task(s) {sorted(missing)}")
        df = df[df.task_id.isin(tasks)]
    if up_to is not None:
        if df.step.max() < up_to:
            raise ValueError(f"{path}: the run's last evaluation is at step "
                             f"{df.step.max()}, before step {up_to}")
        df = df[df.step <= up_to]
    tail = last_evaluations(df, last)
    unadapted = tail["unadapted_return"] if "unadapted_return" in tail \
        else pd.Series(np.nan, index=tail.index)
    out = tail.assign(gain=tail["return"] - unadapted, unadapted=unadapted).groupby(
        "task_id").agg(score=("return", "mean"), gain=("gain", "mean"),
                       unadapted=("unadapted", "mean"))
    untrained = df[df.step == 0].groupby("task_id")["return"].mean()
    out["untrained"] = untrained.reindex(out.index)
    out["meta_adds"] = out["score"] - out["untrained"]
    return out.reset_index()


def read_eval_csv(path: Path, metric: str = "return") -> pd.DataFrame:
    """A run's ``eval.csv``, refused with the file's name when a needed column (``step``,
    ``task_id`` and ``metric``) is missing."""
    df = pd.read_csv(path)
    missing = {"step", "task_id", metric} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected step, "
                         f"task_id, {metric}" + (" (and unadapted_return)"
                                                 if metric == "return" else ""))
    return df


def last_evaluations(df: pd.DataFrame, last: int) -> pd.DataFrame:
    """The rows of one run's last ``last`` evaluations (a final score is their mean)."""
    return df[df.step.isin(sorted(df.step.unique())[-last:])]


def score_matrix(runs: list[SummaryRun], column: str, last: int,
                 up_to: int | None = None) -> np.ndarray:
    """``(seeds, test tasks)`` matrix of one method's final ``column`` (runs share tasks),
    of the runs cut at meta-step ``up_to`` when it is given."""
    frames = [final_scores(r.path, last, up_to, r.tasks).set_index("task_id")[column]
              for r in runs]
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


def _estimates(matrices: dict[str, np.ndarray], func, reps: int, seed: int
               ) -> dict[str, tuple[float, float, float]]:
    """``{label: (point, low, high)}`` of a scalar rliable aggregate over every matrix with
    only finite entries (a run without a step-0 or unadapted evaluation has none)."""
    finite = {k: v for k, v in matrices.items() if v.size and np.isfinite(v).all()}
    if not finite:
        return {}
    point, ci = _interval(finite, func, reps, seed)
    return {k: (float(np.squeeze(point[k])), *map(float, np.ravel(ci[k])[:2])) for k in finite}


def summary_table(runs: list[SummaryRun], last: int = 3, reps: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """One row per (family, split, method): IQM and mean of the final scores with 95 %
    stratified-bootstrap CIs, the controls (untrained + adaptation and final unadapted IQMs,
    the mean that meta-training and that adaptation add), each with its CI, (for every method
    but MACAW) the probability that MACAW's score beats it, with its CI, and the family and
    split's verdict (``testable``, ``verdict``; see the module docstring)."""
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
        columns = ("score", "gain", "unadapted", "untrained", "meta_adds")
        mats = {c: {lab: score_matrix(rs, c, last) for lab, rs in by_label.items()}
                for c in columns}
        scores = mats["score"]
        point, ci = _interval(scores, aggregates, reps, seed)
        estimates = {
            "gain": _estimates(mats["gain"], metrics.aggregate_mean, reps, seed),
            "meta_adds": _estimates(mats["meta_adds"], metrics.aggregate_mean, reps, seed),
            "untrained": _estimates(mats["untrained"], metrics.aggregate_iqm, reps, seed),
            "unadapted": _estimates(mats["unadapted"], metrics.aggregate_iqm, reps, seed),
        }
        pairs = {lab: [scores[REFERENCE], scores[lab]] for lab in labels
                 if lab != REFERENCE and REFERENCE in scores}
        p_point, p_ci = (_interval(pairs, metrics.probability_of_improvement, reps, seed)
                         if pairs else ({}, {}))
        verdict = benchmark_verdict(
            {lab: point[lab][0] for lab in labels}, scores, mats["untrained"],
            estimates["untrained"], estimates["gain"], reps, seed)
        for lab in labels:
            x = scores[lab]
            row = {"family": family, "split": split, "method": lab, "seeds": x.shape[0],
                   "test_tasks": x.shape[1], "final_evals": last,
                   "iqm": point[lab][0], "iqm_low": ci[lab][0, 0], "iqm_high": ci[lab][1, 0],
                   "mean": point[lab][1], "mean_low": ci[lab][0, 1],
                   "mean_high": ci[lab][1, 1]}
            for name, prefix in (("gain", "gain"), ("untrained", "untrained_iqm"),
                                 ("unadapted", "unadapted_iqm"), ("meta_adds", "meta_adds")):
                value, low, high = estimates[name].get(lab, (np.nan,) * 3)
                row.update({prefix: value, f"{prefix}_low": low, f"{prefix}_high": high})
            if lab in p_point:
                low, high = np.ravel(p_ci[lab])[:2]
                row.update(p_macaw_better=float(np.squeeze(p_point[lab])), p_low=float(low),
                           p_high=float(high))
            rows.append({**row, **verdict})
    return pd.DataFrame(rows)


def learning_settled(runs: list[SummaryRun], lengths: list[int], last: int = 3,
                     reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Has each method's learning curve flattened by a run length? Per (family, split,
    method) and length ``s`` in ``lengths``: the final-score IQM of its runs cut at ``s``, with
    its 95 % CI (as :func:`summary_table`), the IQM of the same runs cut at three quarters of
    ``s``, ``moved`` (the first minus the second) and ``settled``: the last quarter of the run
    moved the IQM by less than the half-width of its CI at ``s``. The first settled length is
    a run length at which the method's comparison no longer depends on where it stops."""
    from rliable import metrics

    rows = []
    for key in dict.fromkeys((r.family, r.split, r.label) for r in runs):
        group = sorted((r for r in runs if (r.family, r.split, r.label) == key),
                       key=lambda r: r.seed)
        for s in lengths:
            quarter_back = int(0.75 * s)
            at_s = score_matrix(group, "score", last, up_to=s)
            at_three_quarters = score_matrix(group, "score", last, up_to=quarter_back)
            iqm, low, high = _estimates({"m": at_s}, metrics.aggregate_iqm, reps, seed)["m"]
            before = float(metrics.aggregate_iqm(at_three_quarters))
            rows.append({"family": key[0], "split": key[1], "method": key[2],
                         "seeds": len(group), "steps": s, "iqm": iqm, "iqm_low": low,
                         "iqm_high": high, "half_width": (high - low) / 2,
                         "steps_three_quarters": quarter_back,
                         "iqm_three_quarters": before, "moved": iqm - before,
                         "settled": bool(abs(iqm - before) < (high - low) / 2)})
    return pd.DataFrame(rows)


def benchmark_verdict(iqm: dict[str, float], scores: dict[str, np.ndarray],
                      untrained: dict[str, np.ndarray],
                      untrained_iqm: dict[str, tuple[float, float, float]],
                      gains: dict[str, tuple[float, float, float]], reps: int, seed: int,
                      ) -> dict:
    """Whether one family and split can test a claim: ``testable``, ``verdict`` (the reason in
    words), and the first control's numbers: the best trained method (highest final IQM), the
    best untrained + adaptation control (highest step-0 IQM, over every method) and the
    probability that the first's score beats the second's on a test task, with its CI."""
    from rliable import metrics

    best = max(iqm, key=iqm.get)
    out = {"best_trained": best, "best_untrained": None, "p_trained_better": np.nan,
           "p_trained_low": np.nan, "p_trained_high": np.nan}
    reasons = []
    if not untrained_iqm:
        reasons.append("no step-0 evaluation to compare with")
    else:
        control = max(untrained_iqm, key=lambda k: untrained_iqm[k][0])
        p, ci = _interval({"p": [scores[best], untrained[control]]},
                          metrics.probability_of_improvement, reps, seed)
        low, high = np.ravel(ci["p"])[:2]
        out.update(best_untrained=control, p_trained_better=float(np.squeeze(p["p"])),
                   p_trained_low=float(low), p_trained_high=float(high))
        if not low > 0.5:
            reasons.append(
                f"the best trained method ({best}, IQM {iqm[best]:.1f}) does not beat "
                f"{control}'s untrained network plus adaptation (IQM "
                f"{untrained_iqm[control][0]:.1f}): P {out['p_trained_better']:.2f} "
                f"[{low:.2f}, {high:.2f}]")
    if not gains:
        reasons.append("no unadapted evaluation to compare with")
    elif not any(low > 0 for _, low, _ in gains.values()):
        top = max(gains, key=lambda k: gains[k][0])
        value, low, high = gains[top]
        reasons.append(f"adaptation adds for no method (the most: {top}, {value:+.1f} "
                       f"[{low:+.1f}, {high:+.1f}])")
    out.update(testable=not reasons,
               verdict="testable" if not reasons else
               "untestable at this scale: " + "; ".join(reasons))
    return out


def _fmt(value: float, low: float, high: float, digits: int = 1, seeds: int = 2) -> str:
    """``value [low, high]``; a one-seed method's bootstrap can only resample its tasks within
    that seed, so its interval says nothing about seeds and is left out."""
    if not np.isfinite(value):
        return "—"
    if seeds < 2:
        return f"{value:.{digits}f} (1 seed)"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


VERDICT_FIELDS = ("testable", "verdict", "best_trained", "best_untrained", "p_trained_better",
                  "p_trained_low", "p_trained_high")
"""Columns of summary.csv that belong to a family and split, not to a method."""


def _json_value(v):
    return None if isinstance(v, float) and not np.isfinite(v) else \
        round(v, 4) if isinstance(v, float) else v.item() if isinstance(v, np.generic) else v


def write_summary(runs: list[SummaryRun], csv_path: Path, md_path: Path, last: int = 3,
                  reps: int = 2000) -> pd.DataFrame:
    """``summary.csv`` (every number), ``summary.md`` (the scores, the controls and each
    family and split's verdict) and, beside the CSV, ``summary.json`` (``{family: {split:
    {method: {...}, "benchmark": {testable, verdict, ...}}}}``, DVC's metrics file)."""
    import json

    table = summary_table(runs, last, reps)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    nested: dict = {}
    for r in table.to_dict("records"):
        values = {k: _json_value(v) for k, v in r.items()
                  if k not in ("family", "split", "method", *VERDICT_FIELDS)}
        split = nested.setdefault(r["family"], {}).setdefault(r["split"], {})
        split[r["method"]] = values
        split["benchmark"] = {k: _json_value(r[k]) for k in VERDICT_FIELDS}
    with atomic_path(Path(csv_path).with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(nested, indent=1, sort_keys=True))

    def cell(r, prefix, digits=1):
        return _fmt(r.get(prefix, np.nan), r.get(f"{prefix}_low", np.nan),
                    r.get(f"{prefix}_high", np.nan), digits, seeds=r["seeds"])

    records = table.to_dict("records")
    lines = ["| family | split | method | seeds × tasks | IQM [95 % CI] | mean [95 % CI] | "
             "adaptation gain [95 % CI] | P(MACAW better) [95 % CI] |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for r in records:
        lines.append(
            f"| {r['family']} | {r['split']} | {r['method']} | {r['seeds']} × {r['test_tasks']} "
            f"| {cell(r, 'iqm')} | {cell(r, 'mean')} | {cell(r, 'gain')} "
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
    controls = ["", "## Controls: can this benchmark test the claim?", "",
                "| family | split | method | untrained + adaptation, IQM | final unadapted, "
                "IQM | meta-training adds, mean | adaptation adds, mean |",
                "|---|---|---|---:|---:|---:|---:|"]
    for r in records:
        controls.append(
            f"| {r['family']} | {r['split']} | {r['method']} | {cell(r, 'untrained_iqm')} "
            f"| {cell(r, 'unadapted_iqm')} | {cell(r, 'meta_adds')} | {cell(r, 'gain')} |")
    controls += ["", "| family | split | verdict |", "|---|---|---|"]
    for r in {(r["family"], r["split"]): r for r in records}.values():
        controls.append(f"| {r['family']} | {r['split']} | {r['verdict']} |")
    controls.append(
        "\nUntrained + adaptation: the step-0 evaluation (before any meta-training) of the "
        "method's own adaptation from an untrained network. Meta-training adds: final score "
        "minus it, per seed and test task. Adaptation adds: the adaptation gain. A family and "
        "split is testable when the best trained method beats the best untrained + adaptation "
        "control (probability of improvement, 95 % CI above 0.5) and adaptation adds for at "
        "least one method (95 % CI above 0); otherwise its method comparisons cannot test the "
        "paper's claims. A method whose meta-training adds nothing on a testable benchmark "
        "has failed there, which is a result.")
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n" + note + "\n".join(controls) + "\n")
    return table

"""Why does MACAW's single adaptation step adapt so little? (docs/results/fidelity/,
docs/results/cheetah_vel_steps/.)

:func:`test_time_steps` meta-tests a finished MACAW run with ``n`` inner steps at test time
(value steps then policy steps, Algorithm 2, with the rates it learned for one step), for
every ``n`` asked for: if returns rise with ``n``, the step is pointing the right way but is too
short; if they do not, the inner loss itself (its data or its advantages) is what limits it.
A diagnostic, not a default: meta-training always uses ``inner_steps``.

Repeating a step at a rate learned for one step can diverge: an episode whose adapted policy
blew up has a non-finite return. It is the value step that does (on walker-params the value
loss on the adaptation batch itself explodes from the second step on,
docs/results/walker_build1/value_step_losses.txt, and the policy follows through the L_ADV
target, an unnormalised advantage), so ``value_steps=1`` keeps the value at its trained single
step and repeats only the policy's. Diverged episodes are kept in
the CSV (an empty ``return``) and counted by :func:`summarise_test_time_steps`, whose means
leave the task out at every ``n``, so that its rows compare the same tasks (averaging over the
finite episodes alone would drop the hardest task from exactly the rows where it diverged, and
flatter them).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from macaw.evaluate import evaluate_tasks
from macaw.io import atomic_path
from macaw.meta_train import evaluation_seed, load_finished_run


def test_time_steps(run_dir: Path, test_buffers: list[Path], steps: list[int],
                    episodes: int, out_csv: Path, value_steps: int | None = None,
                    ) -> pd.DataFrame:
    """``test_steps, task_id, episode, return, unadapted_return``: for every ``n`` of
    ``steps``, ``episodes`` adapted episodes per test task. Every ``n`` uses the adaptation
    batches and environment seeds of the run's last evaluation, so with the run's own
    ``inner_steps`` and ``eval_episodes`` the rows equal that evaluation's. A diverged
    episode's ``return`` is NaN (kept, not dropped: see the module docstring).
    ``value_steps``: the value's steps at every ``n`` (None: ``n``, as Algorithm 2)."""
    if value_steps is not None and value_steps < 1:
        raise ValueError(f"value_steps must be a positive integer or None, not {value_steps!r}")
    meta, learner, tasks = load_finished_run(run_dir, test_buffers)
    seed = evaluation_seed(meta, meta.steps)
    if not hasattr(learner, "cfg") or not hasattr(learner.cfg, "inner_steps"):
        raise ValueError(f"{run_dir}: test-time steps apply to MACAW-family runs, "
                         f"not {meta.method!r}")
    trained = learner.cfg.inner_steps, learner.cfg.inner_value_steps
    rows = []
    eval_cfg = dataclasses.replace(meta, eval_episodes=episodes)
    try:
        learner.cfg.inner_value_steps = value_steps
        for n in steps:
            learner.cfg.inner_steps = n
            for e in evaluate_tasks(learner, tasks, eval_cfg, seed=seed):
                rows.append((n, e.task_id, e.episode, e.episode_return, e.unadapted_return))
    finally:
        learner.cfg.inner_steps, learner.cfg.inner_value_steps = trained
    df = pd.DataFrame(rows, columns=["test_steps", "task_id", "episode", "return",
                                     "unadapted_return"])
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")
    return df


def diverged_tasks(df: pd.DataFrame) -> list[int]:
    """Test tasks with a non-finite return at some number of test-time steps."""
    return sorted(int(t) for t in df.loc[~np.isfinite(df["return"]), "task_id"].unique())


def summarise_test_time_steps(df: pd.DataFrame) -> pd.DataFrame:
    """Per number of test-time steps: ``episodes``, ``diverged`` (of them, with a non-finite
    return), and over the ``tasks`` that never diverged at any ``n`` (the same tasks in every
    row) the mean return and the mean adaptation gain."""
    bad = diverged_tasks(df)
    kept = df[~df["task_id"].isin(bad)]
    counts = (df.assign(diverged=~np.isfinite(df["return"]))
              .groupby("test_steps").agg(episodes=("return", "size"),
                                         diverged=("diverged", "sum")))
    means = (kept.assign(gain=kept["return"] - kept["unadapted_return"])
             .groupby("test_steps").agg(tasks=("task_id", "nunique"),
                                        mean_return=("return", "mean"),
                                        mean_gain=("gain", "mean")))
    out = counts.join(means).reset_index()
    out["tasks"] = out["tasks"].fillna(0).astype(int)
    return out


__all__ = ["diverged_tasks", "test_time_steps", "summarise_test_time_steps"]

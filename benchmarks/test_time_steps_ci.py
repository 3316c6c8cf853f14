"""Paired test-time-steps summary over seeds: the summary CSVs of docs/results/fidelity/,
walker_build1/ and cheetah_vel_steps/.

    python benchmarks/test_time_steps_ci.py OUT.csv SEED0.csv SEED1.csv ...

Each input is one seed's ``macaw test-time-steps --out`` CSV. A task that diverged (a
non-finite return) at any number of steps in any seed is left out everywhere, so every row
compares the same (seed, task) pairs. Per ``n``: its episodes and how many diverged, the mean
return over those pairs and its difference from the first ``n`` (one step), with a 95 %
bootstrap CI over the pairs (scipy, 2000 resamples).
"""

import sys

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from macaw.test_time import diverged_tasks, summarise_test_time_steps


def main(out: str, inputs: list[str]) -> None:
    df = pd.concat([pd.read_csv(p).assign(seed=s) for s, p in enumerate(inputs)])
    bad = diverged_tasks(df)     # over every seed: a task that diverged in any of them
    counts = summarise_test_time_steps(df).set_index("test_steps")
    table = (df[~df.task_id.isin(bad)].groupby(["test_steps", "seed", "task_id"])["return"]
             .mean().unstack("test_steps"))
    steps = counts.index.tolist()
    rows = []
    for n in steps:
        row = {"test_steps": n, "episodes": int(counts.episodes[n]),
               "diverged_episodes": int(counts.diverged[n]),
               "left_out_tasks": " ".join(map(str, bad)),
               "pairs": len(table), "mean_return": np.nan, "diff_vs_first": np.nan,
               "diff_ci_low": np.nan, "diff_ci_high": np.nan}
        if len(table):   # empty when every task diverged somewhere
            diff = (table[n] - table[steps[0]]).to_numpy()
            lo, hi = (bootstrap((diff,), np.mean, n_resamples=2000, random_state=0)
                      .confidence_interval if diff.any() else (0.0, 0.0))
            row |= {"mean_return": table[n].mean(), "diff_vs_first": diff.mean(),
                    "diff_ci_low": lo, "diff_ci_high": hi}
        rows.append(row)
    pd.DataFrame(rows).to_csv(out, index=False, float_format="%.2f")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

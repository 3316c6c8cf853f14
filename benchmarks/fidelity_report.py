"""Assemble the fidelity study (config/studies/fidelity.yaml, built by
``snakemake --cores 2 studies --configfile config/studies/fidelity.yaml``) into small committed
files:

    docs/results/fidelity/curves.csv, curves.pdf   MACAW vs MT+FT, 10k meta-steps, 3 seeds
    docs/results/fidelity/summary.{csv,md,json}    final scores at 10k (last 3 evaluations)
    docs/results/fidelity/summary_2000.{csv,md,json}  the same at 2000 steps (default scale)
    docs/results/fidelity/ablation.{csv,md,json}   each authors'-code detail switched back
                                                   off, final score at 3000 steps
    docs/results/fidelity/diagnostics.{csv,pdf}    adaptation gain, rates, lambda, value loss
    docs/results/fidelity/settled.{csv,md}         per method and run length (every 1000
                                                   steps): did the last quarter move the IQM
                                                   by less than its CI half-width?
    docs/results/fidelity/runs/…                   every run's eval.csv, train.csv, config.yaml

Usage: python benchmarks/fidelity_report.py [--study results/studies/fidelity/standard]
                                             [--out docs/results/fidelity]
                                             [--also-at 2000 ...]

`--also-at N` writes summary_N.* from each run's evaluations up to step N (default 2000). A study
without ablation runs (config/studies/curves_20k.yaml) gets no ablation.* files.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

from macaw.algos.registry import labels
from macaw.plotting.curves import RunCurve, plot_curves
from macaw.plotting.diagnostics import DiagnosticRun, plot_diagnostics
from macaw.stats import SummaryRun, learning_settled, write_summary

VARIANTS = {
    "macaw": "MACAW",                                   # all authors' details (the default)
    "macaw-uniform-init": "z ~ U(-1, 1) WT init",
    "macaw-no-bootstrap": "no bootstrapping",
    "macaw-stride1": "stride 1 (inner batch ~1.3 episodes)",
    "macaw-window-all": "whole lifetime as window",
}
ABLATION_STEPS = 3000


def seeds_of(study: Path, name: str) -> list[int]:
    return sorted(int(p.name[4:]) for p in (study / name).glob("seed*")
                  if (p / "eval.csv").exists())


def truncated(eval_csv: Path, steps: int, out: Path) -> Path:
    df = pd.read_csv(eval_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    df[df.step <= steps].to_csv(out, index=False)
    return out


def write_settled(main_runs: list[tuple[str, str, int]], study: Path, out: Path,
                  every: int) -> None:
    """settled.csv / .md: :func:`macaw.stats.learning_settled` at every multiple of ``every``
    meta-steps that every run reached."""
    runs = [SummaryRun("cheetah-vel", "standard", label, seed, study / name / f"seed{seed}" /
                       "eval.csv") for label, name, seed in main_runs]
    reached = min(pd.read_csv(r.path).step.max() for r in runs)
    table = learning_settled(runs, list(range(every, reached + 1, every)), last=3, reps=5000)
    table.to_csv(out / "settled.csv", index=False, float_format="%.4f")
    lines = ["| method | steps | IQM [95 % CI] | IQM at 3/4 of the steps | last quarter moved | "
             "CI half-width | settled |", "|---|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {r.method} | {r.steps} | {r.iqm:.1f} [{r.iqm_low:.1f}, {r.iqm_high:.1f}] | "
              f"{r.iqm_three_quarters:.1f} ({r.steps_three_quarters}) | {r.moved:+.1f} | "
              f"{r.half_width:.1f} | {'yes' if r.settled else 'no'} |"
              for r in table.itertuples()]
    (out / "settled.md").write_text(
        "\n".join(lines) + "\n\nFinal score: the mean return over a run's last 3 evaluations "
        "up to the step; IQM over seeds x test tasks with a 95 % stratified-bootstrap CI (5000 "
        "resamples, rliable). Settled: the last quarter of the run moved the IQM by less than "
        "the CI's half-width.\n")
    print((out / "settled.md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path,
                        default=Path("results/studies/fidelity/standard"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/fidelity"))
    parser.add_argument("--also-at", type=int, nargs="+", default=[2000], metavar="STEPS",
                        help="also summarise the runs cut at these meta-steps (default 2000)")
    args = parser.parse_args()
    out, study = args.out, args.study
    out.mkdir(parents=True, exist_ok=True)
    for run in sorted(study.glob("*/seed*")):        # the raw CSVs behind every number
        dest = out / "runs" / run.parent.name / run.name
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("eval.csv", "train.csv", "config.yaml"):
            if (run / name).exists():
                shutil.copy(run / name, dest / name)

    main_runs = [(labels()[name], name, seed) for name in ("macaw", "mt_ft")
                 for seed in seeds_of(study, name)]
    plot_curves([RunCurve("cheetah-vel standard", label, seed,
                          study / name / f"seed{seed}" / "eval.csv")
                 for label, name, seed in main_runs],
                out / "curves.pdf", out / "curves.csv", title="cheetah-vel, default scale")
    write_summary([SummaryRun("cheetah-vel", "standard", label, seed,
                              study / name / f"seed{seed}" / "eval.csv")
                   for label, name, seed in main_runs], out / "summary.csv",
                  out / "summary.md", last=3, reps=5000)
    # The same comparison at fewer meta-steps, e.g. the default scale's 2000 (the runs are
    # identical up to there: no schedule depends on the run length).
    for steps in args.also_at:
        write_summary([SummaryRun("cheetah-vel", "standard", label, seed, truncated(
            study / name / f"seed{seed}" / "eval.csv", steps,
            out / f"runs_{steps}" / name / f"seed{seed}.csv")) for label, name, seed in main_runs],
            out / f"summary_{steps}.csv", out / f"summary_{steps}.md", last=3, reps=5000)
    write_settled(main_runs, study, out, every=1000)
    plot_diagnostics([DiagnosticRun(label, seed, study / name / f"seed{seed}")
                      for label, name, seed in main_runs], out / "diagnostics.pdf",
                     out / "diagnostics.csv", title="cheetah-vel standard")

    long_enough = [(name, label, seed) for name, label in VARIANTS.items()
                   for seed in seeds_of(study, name)
                   if pd.read_csv(study / name / f"seed{seed}" / "eval.csv").step.max()
                   >= ABLATION_STEPS]
    if len({name for name, _, _ in long_enough}) < 2:  # no variant beside the defaults
        return
    write_summary([SummaryRun("cheetah-vel", "standard", label, seed, truncated(
        study / name / f"seed{seed}" / "eval.csv", ABLATION_STEPS,
        out / "ablation_runs" / name / f"seed{seed}.csv")) for name, label, seed in long_enough],
        out / "ablation.csv", out / "ablation.md", last=3, reps=5000)


if __name__ == "__main__":
    main()

"""The numbers behind docs/results/validity/README.md's readings (its §2 experiments).

Reads the runs of the validity study (``config/studies/validity.yaml``, built by
``snakemake --cores 2 studies --configfile config/studies/validity.yaml`` into
``results/studies/validity/``, or ``--runs``), each compared with its baseline of the same data
build (also there), and writes one CSV per experiment
to ``--out`` (default ``docs/results/validity/``), printing each as a table. One-seed
comparisons are paired per test task (same seed, same test task), with a 95 % percentile
bootstrap CI over the test tasks; 3-seed ones go through ``macaw summary`` (rliable).

    python benchmarks/validity_report.py [--only a b c d e f]   # (c) through macaw summary
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
LAST = 3          # final score: the mean over the last 3 evaluations, as summary.csv


def per_task(eval_csv: Path, last: int = LAST) -> pd.DataFrame:
    """``untrained`` (step-0 adapted return), ``final``, ``unadapted`` (final, not adapted) and
    ``gain`` per test task."""
    df = pd.read_csv(eval_csv)
    steps = sorted(df.step.unique())[-last:]
    tail = df[df.step.isin(steps)]
    out = tail.groupby("task_id").agg(final=("return", "mean"),
                                      unadapted=("unadapted_return", "mean"))
    out["untrained"] = df[df.step == 0].groupby("task_id")["return"].mean()
    out["gain"] = out.final - out.unadapted
    return out


def bootstrap(x: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``x`` and its 95 % percentile bootstrap CI."""
    x = np.asarray(x, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (reps, len(x)))].mean(1)
    return float(x.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def ci_row(name: str, x) -> dict:
    mean, low, high = bootstrap(x)
    return {"quantity": name, "mean": mean, "low": low, "high": high,
            "beyond_ci": bool(low > 0 or high < 0)}


def window_experiment(runs: Path) -> pd.DataFrame:
    """(a): per split and method, the wide window against the default one, same seed."""
    rows = []
    for split in ("sparse5", "sparse3"):
        for method in ("mt_ft", "macaw"):
            base_csv = runs / split / method / "seed0/eval.csv"
            if not base_csv.exists():
                continue
            base = per_task(base_csv)
            for window in ("all", "w150"):
                path = runs / split / f"{method}-{window}" / "seed0/eval.csv"
                if not path.exists():
                    continue
                wide = per_task(path).loc[base.index]
                for q in ("untrained", "final"):
                    rows.append({"split": split, "method": method, "window": window,
                                 **ci_row(f"{q}: {window} minus last-50", wide[q] - base[q]),
                                 "default": base[q].mean(), "wide": wide[q].mean()})
                rows.append({"split": split, "method": method, "window": window,
                             **ci_row("adaptation gain", wide["gain"]),
                             "default": base["gain"].mean(), "wide": wide["gain"].mean()})
    return pd.DataFrame(rows)


def meta_bc_windows(runs: Path, out: Path) -> pd.DataFrame:
    """(c): MACAW and Meta-BC on the bad and medium adaptation windows, 3 seeds, through
    ``macaw summary`` (rliable: IQM, P(MACAW better), the controls), written to
    ``meta_bc_windows.{csv,md,json}``; returns the summary's rows."""
    from macaw.stats import SummaryRun, write_summary

    found = [SummaryRun("cheetah-vel", f"standard, {window} data", label, seed, path)
             for window in ("bad", "medium")
             for method, label in (("macaw", "MACAW"), ("meta_bc", "Meta-BC"))
             for seed in (0, 1, 2)
             if (path := runs / "standard" / f"{method}-{window}" / f"seed{seed}/eval.csv").exists()]
    if not found:
        return pd.DataFrame()
    write_summary(found, out / "meta_bc_windows.csv", out / "meta_bc_windows.md", last=LAST)
    return pd.read_csv(out / "meta_bc_windows.csv")


def behaviour_return(task: int, episodes: int = 10) -> float:
    """Mean return of the last ``episodes`` episodes of a default cheetah-vel buffer."""
    with h5py.File(REPO / f"results/buffers/cheetah-vel/task{task:02d}.h5") as f:
        return float(f["episode_returns"][-episodes:].mean())


def memorisation(runs: Path) -> pd.DataFrame:
    """(b): per method and task, final adapted / unadapted return on the training tasks."""
    rows = []
    for method in ("macaw", "meta_bc", "mt_ft"):
        path = runs / "sparse3" / f"{method}-memorise" / "seed0/eval.csv"
        if not path.exists():
            continue
        for task, r in per_task(path).iterrows():
            rows.append({"method": method, "task_id": task, "untrained": r.untrained,
                         "final": r.final, "unadapted": r.unadapted, "gain": r.gain,
                         "behaviour_last10": behaviour_return(int(task))})
    out = pd.DataFrame(rows)
    if len(out):
        out["final_minus_behaviour"] = out.final - out.behaviour_last10
    return out


def steps_5k(runs: Path) -> pd.DataFrame:
    """(d): MACAW's 5000-step run against MT+FT's 2000-step one (same split and seed), and
    what MACAW's last quarter (3750 to 5000 steps) added."""
    rows = []
    for split in ("sparse20", "sparse10"):
        path = runs / split / "macaw-5k/seed0/eval.csv"
        if not path.exists():
            continue
        df = pd.read_csv(path)
        macaw = per_task(path)
        mt_ft = per_task(runs / split / "mt_ft/seed0/eval.csv")
        at = df.groupby(["step", "task_id"])["return"].mean().unstack("step")
        rows.append({"split": split, **ci_row("MACAW 5k minus MT+FT 2k",
                                              macaw.final - mt_ft.final.loc[macaw.index])})
        rows.append({"split": split, **ci_row("MACAW 5000 minus 3750 steps",
                                              at[5000] - at[3750])})
    return pd.DataFrame(rows)


def test_time_steps(runs: Path) -> pd.DataFrame:
    """(e): per split, mean return at 1/2/5/20 policy steps (one value step) over the 3 seeds,
    and the paired gain of 5 and of 20 steps over one, over seeds x test tasks."""
    from macaw.test_time import diverged_tasks

    rows = []
    for split in ("sparse5", "sparse3"):
        files = sorted((runs / split / "macaw").glob("seed*/test_time_steps.csv"))
        if not files:
            continue
        df = pd.concat([pd.read_csv(f).assign(seed=f.parent.name) for f in files])
        bad = diverged_tasks(df)
        df = df[~df.task_id.isin(bad)]
        per = df.groupby(["test_steps", "seed", "task_id"])["return"].mean().unstack(
            "test_steps")
        for n in per.columns:
            rows.append({"split": split, "test_steps": n, "seeds": len(files),
                         "diverged_tasks": len(bad), **ci_row(f"{n} steps minus 1",
                                                              per[n] - per[1]),
                         "mean_return": per[n].mean()})
    return pd.DataFrame(rows)


def value_signal(runs: Path) -> pd.DataFrame:
    """(f): the held-out value loss against the variance of its target, and the weights'
    effective sample size, at every logged step of the MACAW runs of (e)."""
    frames = []
    for path in sorted(runs.glob("*/macaw/seed*/train.csv")):
        df = pd.read_csv(path)
        if "heldout_target_var" not in df:
            continue
        frames.append(df.assign(split=path.parts[-4], seed=path.parts[-2])[[
            "split", "seed", "step", "heldout_value_loss_before", "heldout_value_loss_after",
            "heldout_target_var", "inner_weight_ess", "outer_weight_ess"]])
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames)
    df["loss_after_over_var"] = df.heldout_value_loss_after / df.heldout_target_var
    return df.groupby(["split", "step"], as_index=False).mean(numeric_only=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, default=REPO / "results/studies/validity")
    p.add_argument("--out", type=Path, default=REPO / "docs/results/validity")
    p.add_argument("--only", nargs="+", default=list("abcdef"), choices=list("abcdef"),
                   help="experiments to report (default: all)")
    args = p.parse_args(argv)
    makers = {"a": ("windows", lambda: window_experiment(args.runs)),
              "b": ("memorisation", lambda: memorisation(args.runs)),
              "c": ("meta_bc_windows", lambda: meta_bc_windows(args.runs, args.out)),
              "d": ("steps_5k", lambda: steps_5k(args.runs)),
              "e": ("test_time_steps", lambda: test_time_steps(args.runs)),
              "f": ("value_signal", lambda: value_signal(args.runs))}
    args.out.mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 200)
    for key in args.only:
        name, make = makers[key]
        table = make()
        if table.empty:
            print(f"({key}) {name}: no runs yet")
            continue
        if key != "c":          # (c)'s CSV is the summary's own, written with its .md
            table.to_csv(args.out / f"{name}.csv", index=False, float_format="%.4f")
        print(f"({key}) {name} -> {args.out / (name + '.csv')}\n"
              f"{table.to_string(index=False, float_format=lambda v: f'{v:.3f}')}\n")


if __name__ == "__main__":
    main()

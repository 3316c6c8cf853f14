"""The macaw command: the offline meta-RL pipeline's steps, one subcommand each.

Snakemake rules call these subcommands; each parses its arguments and calls one library
function that does the work. `macaw SUBCOMMAND --help` describes a subcommand.

Every subcommand that reads several runs takes one `--run` per run, in one shape: its groups
first (a figure's panel, a summary's family and split), then the legend LABEL, the SEED and the
run's file or directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _json_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}): {text[:80]!r}") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _set_arg(text: str) -> tuple[list[str], object]:
    """``NAME=VALUE`` -> (dotted name split, value). VALUE is JSON where it parses (2000, 1e-4,
    true, [0, 1], null), else YAML, else the text itself (good, cuda)."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        import yaml

        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
    return name.strip().split("."), value


def _params(args: argparse.Namespace) -> dict:
    """``--params`` JSON with every ``--set NAME=VALUE`` applied over it (in order)."""
    params = json.loads(json.dumps(args.params))
    for path, value in args.set or []:
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {'.'.join(path)}: {key!r} is not a section")
        node[path[-1]] = value
    return params


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose epilog (a config class's field list) is built only when help is
    shown: it imports the config classes, and with them torch."""

    def __init__(self, *args, fields=None, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self._fields = fields

    def format_help(self) -> str:
        if self.epilog is None:
            command = self.prog.split()[-1]
            parts = [self._fields()] if self._fields is not None else []
            if command in EXAMPLES:
                parts.append("example:\n  " + EXAMPLES[command].replace("\n", "\n  "))
            self.epilog = "\n\n".join(parts) or None
        return super().format_help()


# One example per subcommand, shown at the end of its --help (paths as the workflow writes them).
EXAMPLES = {
    "train-behaviour": "macaw train-behaviour --family walker-params --tasks 0 2 --set steps=2000 \\\n"
                       "    --lifetime /tmp/walker/lifetime.h5 --policy /tmp/walker/policy.pt",
    "export-buffer": "macaw export-buffer --lifetime /tmp/walker/lifetime.h5 --task 2 "
                     "--out /tmp/walker/task02.h5",
    "inspect-buffer": "macaw inspect-buffer results/buffers/walker-params/task*.h5",
    "make-split": "macaw make-split --family cheetah-vel --split sparse5 --out /tmp/sparse5.json",
    "meta-train": "macaw meta-train --family cheetah-vel --split results/splits/cheetah-vel/standard.json \\\n"
                  "    --buffers-dir results/buffers/cheetah-vel --method macaw --seed 0 \\\n"
                  "    --set steps=2000 --set macaw.width=64 --run-dir /tmp/run",
    "test-time-steps": "macaw test-time-steps --run-dir results/runs/cheetah-vel/standard/macaw/seed0 \\\n"
                       "    --buffers results/buffers/cheetah-vel/task{02,07,15,23,26}.h5 --steps 1 5 "
                       "--out /tmp/steps.csv",
    "online-finetune": "macaw online-finetune --run-dir results/runs/cheetah-vel/extrapolation/macaw/seed0 \\\n"
                       "    --buffers results/buffers/cheetah-vel/task{26..39}.h5 --set env_steps=2000 "
                       "--out /tmp/online.csv",
    "fewshot": "macaw fewshot --variant wt --seed 0 --set steps=50 --out /tmp/fewshot/wt/seed0.csv",
    "plot-fig8": "macaw plot-fig8 --buffers results/buffers/*/task*.h5 --pdf /tmp/fig8.pdf "
                 "--csv /tmp/fig8.csv",
    "plot-fig9": "macaw plot-fig9 --buffers results/buffers/ml45/task*.h5 --pdf /tmp/fig9.pdf "
                 "--csv /tmp/fig9.csv",
    "plot-curves": "macaw plot-curves --title cheetah-vel --pdf /tmp/c.pdf --csv /tmp/c.csv \\\n"
                   "    --run cheetah-vel MACAW 0 results/runs/cheetah-vel/standard/macaw/seed0/eval.csv \\\n"
                   "    --run cheetah-vel 'Offline MT+FT' 0 results/runs/cheetah-vel/standard/mt_ft/seed0/eval.csv",
    "plot-sparsity": "macaw plot-sparsity --title 'fewer tasks' --pdf /tmp/s.pdf --csv /tmp/s.csv \\\n"
                     "    --run 35 MACAW 0 results/runs/cheetah-vel/standard/macaw/seed0/eval.csv \\\n"
                     "    --run 5 MACAW 0 results/runs/cheetah-vel/sparse5/macaw/seed0/eval.csv",
    "plot-diagnostics": "macaw plot-diagnostics --title cheetah-vel --pdf /tmp/d.pdf --csv /tmp/d.csv \\\n"
                        "    --run MACAW 0 results/runs/cheetah-vel/standard/macaw/seed0",
    "plot-fig6": "macaw plot-fig6 --pdf /tmp/fig6.pdf --csv /tmp/fig6.csv \\\n"
                 "    --run 'Weight Transform' 0 results/fewshot/wt/seed0.csv \\\n"
                 "    --run 'No WT, equal width' 0 results/fewshot/nowt_width/seed0.csv",
    "summary": "macaw summary --csv /tmp/summary.csv --md /tmp/summary.md \\\n"
               "    --run cheetah-vel standard MACAW 0 results/runs/cheetah-vel/standard/macaw/seed0/eval.csv \\\n"
               "    --run cheetah-vel standard 'Offline MT+FT' 0 results/runs/cheetah-vel/standard/mt_ft/seed0/eval.csv",
    "table1": "macaw table1 --csv /tmp/table1.csv --md /tmp/table1.md \\\n"
              "    --run MACAW 0 results/online/cheetah-vel/extrapolation/macaw/seed0.csv \\\n"
              "    --run 'Offline PEARL' 0 results/online/cheetah-vel/extrapolation/pearl/seed0.csv",
    "export-minari": "macaw export-minari --buffers results/buffers/cheetah-vel/task03.h5 \\\n"
                     "    --dataset-id macaw/cheetah-vel-task03-v0 --root /tmp/minari",
}


def _config_args(p: argparse.ArgumentParser, what: str) -> None:
    """``--params`` and ``--set``, the two ways to set config fields; ``what`` names them."""
    p.add_argument("--params", type=_json_arg, default={}, metavar="JSON",
                   help=f"JSON object of fields of {what} (listed below)")
    p.add_argument("--set", type=_set_arg, action="append", metavar="NAME=VALUE",
                   help="set one field, over --params (repeat; dotted for a section, e.g. "
                        "macaw.width=64; VALUE is JSON or YAML: 2000, 1e-4, true, [0, 1], good)")


def _fields_epilog(kind: str):
    """Callable that lists the fields of config ``kind`` (a key of
    :func:`macaw.schema.config_sections`) for ``_Parser``'s lazy epilog."""
    def build() -> str:
        from macaw.schema import config_sections, field_help

        section = config_sections()[kind]
        return ("config fields (--params JSON / --set NAME=VALUE; checked by type and range):\n"
                + field_help(section.cls, drop=section.drop, sections=section.sections))
    return build


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars on a terminal only: in a rule's log file (stderr redirected) they would
    be carriage-return spam, and the run logs a clean line per evaluation instead."""
    return not args.no_progress and sys.stderr.isatty()


def _set_threads(n: int) -> None:
    """Never more torch threads than CPUs: Snakemake may grant a job more threads than the
    machine has, to keep torch jobs from running side by side (see workflow/rules/common.smk)."""
    import os

    import torch

    torch.set_num_threads(max(1, min(n, os.cpu_count() or 1)))


def cmd_train_behaviour(args: argparse.Namespace) -> None:
    from macaw.behaviour import BehaviourConfig, train_behaviour

    _set_threads(args.threads)
    cfg = BehaviourConfig.from_dict(args.family, {**_params(args), "tasks": args.tasks,
                                                  "seed": args.seed})
    train_behaviour(cfg, args.lifetime, args.policy, progress=_progress(args),
                    restart_on_config_change=args.restart_on_config_change)


def cmd_export_buffer(args: argparse.Namespace) -> None:
    from macaw.behaviour.export import export_task_buffer

    export_task_buffer(args.lifetime, args.task, args.out, gamma=args.gamma)


def cmd_make_split(args: argparse.Namespace) -> None:
    from macaw.data.splits import make_split, write_split
    from macaw.envs import get_family

    family = get_family(args.family)
    split = make_split(args.family, args.split, family.n_tasks, available=args.available,
                       memorisation_check=args.memorisation_check)
    write_split(args.out, split, {"family": args.family, "split": args.split,
                                  "available": args.available,
                                  "memorisation_check": args.memorisation_check})


def cmd_plot_fig8(args: argparse.Namespace) -> None:
    from macaw.plotting.fig8 import plot_fig8

    plot_fig8(args.buffers, args.pdf, args.csv)


def cmd_plot_fig9(args: argparse.Namespace) -> None:
    from macaw.plotting.fig9 import plot_fig9

    plot_fig9(args.buffers, args.pdf, args.csv)


def cmd_plot_curves(args: argparse.Namespace) -> None:
    from macaw.plotting.curves import RunCurve, plot_curves

    runs = [RunCurve(panel, label, _seed(seed, label), Path(path))
            for panel, label, seed, path in args.run]
    plot_curves(runs, args.pdf, args.csv, title=args.title, metric=args.metric)


def cmd_plot_sparsity(args: argparse.Namespace) -> None:
    from macaw.plotting.curves import RunCurve
    from macaw.plotting.sparsity import plot_sparsity

    runs = [RunCurve(n, label, _seed(seed, label), Path(path)) for n, label, seed, path in args.run]
    plot_sparsity(runs, args.pdf, args.csv, title=args.title, last=args.last,
                  common_tasks=set(args.common_tasks) if args.common_tasks else None)


def cmd_plot_diagnostics(args: argparse.Namespace) -> None:
    from macaw.plotting.diagnostics import DiagnosticRun, plot_diagnostics

    runs = [DiagnosticRun(label, _seed(seed, label), Path(d)) for label, seed, d in args.run]
    plot_diagnostics(runs, args.pdf, args.csv, title=args.title)


def cmd_summary(args: argparse.Namespace) -> None:
    from macaw.stats import SummaryRun, read_eval_csv, write_summary

    runs = [SummaryRun(family, split, label, _seed(seed, label), Path(path))
            for family, split, label, seed, path in args.run]
    if args.common_tasks and not args.common_splits:
        raise ValueError("summary: --common-tasks needs --common-splits (the splits to "
                         "summarise again on those test tasks)")
    if args.common_splits:      # Fig. 4 right: the same targets at every number of tasks
        again = [r for r in runs if r.split in args.common_splits]
        if not again:
            raise ValueError(f"summary: no --run of the splits {args.common_splits} "
                             "(--common-splits)")
        common = frozenset(args.common_tasks or set.intersection(
            *(set(read_eval_csv(r.path).task_id) for r in again)))
        runs += [SummaryRun(r.family, f"{r.split}, common test tasks", r.label, r.seed,
                            r.path, common) for r in again]
    write_summary(runs, args.csv, args.md, last=args.last, reps=args.reps)


def cmd_test_time_steps(args: argparse.Namespace) -> None:
    from macaw.test_time import diverged_tasks, summarise_test_time_steps, test_time_steps

    _set_threads(args.threads)
    df = test_time_steps(args.run_dir, args.buffers, args.steps, args.episodes, args.out,
                         value_steps=args.value_steps)
    print(summarise_test_time_steps(df).to_string(index=False))
    if bad := diverged_tasks(df):
        print(f"test tasks {bad} diverged (a non-finite return) at some number of steps: "
              f"left out of every row's means, so that the rows compare the same tasks",
              file=sys.stderr)


def cmd_online_finetune(args: argparse.Namespace) -> None:
    from macaw.online import OnlineConfig, run_online_finetuning

    _set_threads(args.threads)
    cfg = OnlineConfig.from_dict({**_params(args), "seed": args.seed})
    missing = [str(p) for p in args.buffers if not p.exists()]
    if missing:
        raise FileNotFoundError(f"online-finetune: buffer file(s) missing: {missing}")
    run_online_finetuning(args.run_dir, args.buffers, cfg, args.out, progress=_progress(args),
                          restart_on_config_change=args.restart_on_config_change)


def _seed(value: str, label: str) -> int:
    """A ``--run``'s SEED, or a one-line error naming the run."""
    if not value.isdigit():
        raise SystemExit(f"macaw: --run {label!r}: SEED must be a non-negative integer, "
                         f"found {value!r}")
    return int(value)


def cmd_table1(args: argparse.Namespace) -> None:
    from macaw.online import online_table

    runs: dict[str, dict[int, Path]] = {}
    for label, seed, path in args.run:
        seeds, seed = runs.setdefault(label, {}), _seed(seed, label)
        if seed in seeds:
            raise SystemExit(f"macaw table1: --run {label!r} seed {seed} given twice "
                             f"({seeds[seed]}, {path})")
        seeds[seed] = Path(path)
    runs = {label: list(seeds.values()) for label, seeds in runs.items()}
    print(online_table(runs, args.csv, args.md).to_string(index=False))


def cmd_export_minari(args: argparse.Namespace) -> None:
    from macaw.data.minari_export import export_minari

    dataset = export_minari(args.buffers, args.dataset_id, args.root)
    print(f"wrote minari dataset {args.dataset_id!r} ({dataset.total_episodes} episodes, "
          f"{dataset.total_steps} steps) under {args.root}")


def cmd_meta_train(args: argparse.Namespace) -> None:
    from macaw.data import load_split
    from macaw.meta_train import MetaTrainConfig, run_meta_training

    _set_threads(args.threads)
    split = load_split(args.split)
    if split["family"] != args.family:
        raise ValueError(f"{args.split}: split is for family {split['family']!r}, "
                         f"not {args.family!r}")
    cfg = MetaTrainConfig.from_dict({**_params(args), "family": args.family,
                                     "method": args.method, "seed": args.seed})

    def paths(ids):
        found = [args.buffers_dir / f"task{t:02d}.h5" for t in ids]
        missing = [str(p) for p in found if not p.exists()]
        if missing:
            raise FileNotFoundError(f"{args.split}: buffer file(s) missing: {missing}")
        return found

    run_meta_training(cfg, paths(split["train"]), paths(split["test"]), args.run_dir,
                      progress=_progress(args),
                      expected_task_ids=(split["train"], split["test"]),
                      restart_on_config_change=args.restart_on_config_change,
                      memorisation_check=args.memorisation_check, gamma=args.gamma)


def cmd_fewshot(args: argparse.Namespace) -> None:
    from macaw.fewshot import FewShotConfig, run_fewshot

    _set_threads(args.threads)
    cfg = FewShotConfig.from_dict({**_params(args), "variant": args.variant, "seed": args.seed})
    run_fewshot(cfg, args.out, progress=_progress(args),
                restart_on_config_change=args.restart_on_config_change)


def cmd_plot_fig6(args: argparse.Namespace) -> None:
    from macaw.plotting.fig6 import FewShotRun, plot_fig6

    runs = [FewShotRun(label, _seed(seed, label), Path(path)) for label, seed, path in args.run]
    plot_fig6(runs, args.pdf, args.csv)


def cmd_inspect_buffer(args: argparse.Namespace) -> None:
    from macaw.data import load_task_buffer
    from macaw.data.windows import PLATEAU_EPISODES, PLATEAU_FRACTION, post_plateau_share
    from macaw.provenance import describe

    bad = []
    for path in args.buffers:       # every file is checked, not only those before a bad one
        try:
            b = load_task_buffer(path, gamma=args.gamma)
        except ValueError as err:
            print(f"{path}: INVALID: {err}")
            bad.append(str(path))
            continue
        r = b.episode_returns
        share, plateau = post_plateau_share(b)
        print(f"{path}: {b.family} task {b.task_id} ({b.env_id}, {b.algorithm}), "
              f"{len(b)} transitions, {b.n_episodes} episodes, return first {r[0]:.1f} "
              f"last {r[-1]:.1f} max {r.max():.1f}, params {json.dumps(b.task_params)}")
        print(f"  composition: {share:.0%} of the transitions after the plateau (from episode "
              f"{plateau}, where the {PLATEAU_EPISODES}-episode mean return has covered "
              f"{PLATEAU_FRACTION:.0%} of the lifetime's improvement)")
        print(f"  made by: {describe(b.provenance)}")
    if bad:
        raise ValueError(f"{len(bad)} of {len(args.buffers)} buffer files are invalid: "
                         f"{', '.join(bad)}")


def _finished_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", type=Path, required=True,
                   help="finished meta-training run (config.yaml, checkpoint.pt)")
    p.add_argument("--buffers", type=Path, nargs="+", required=True,
                   help="the test tasks' buffer files")


def _memorisation_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--memorisation-check", action="store_true",
                   help=f"a diagnostic that evaluates on training tasks: {what}, recorded in "
                        "the output. Without it a test task that is a training task is refused "
                        "(but on cheetah-dir, which the paper trains and tests on both tasks): "
                        "it voids a meta-test result")


def _restart_arg(p: argparse.ArgumentParser, which: str, stale: str) -> None:
    p.add_argument("--restart-on-config-change", action="store_true",
                   help=f"if {which} with another config, keep it aside ({stale}) and start "
                        "afresh instead of refusing")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="macaw", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND",
                                parser_class=_Parser)

    p = sub.add_parser("train-behaviour", help="train one behaviour policy per task (batched "
                       "ensemble) and keep every transition of its lifetime",
                       fields=_fields_epilog("behaviour"))
    p.add_argument("--family", required=True, help="task family, e.g. cheetah-vel")
    p.add_argument("--tasks", type=int, nargs="+", required=True, help="task ids to train")
    _config_args(p, "BehaviourConfig (macaw.behaviour.trainer)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--lifetime", type=Path, required=True, help="output lifetime HDF5")
    p.add_argument("--policy", type=Path, required=True, help="output policy weights (.pt)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _restart_arg(p, "the lifetime's directory holds a checkpoint (resume.pt) written",
                 "resume.stale.pt and resume.stale.replay/")
    p.set_defaults(func=cmd_train_behaviour)

    p = sub.add_parser("export-buffer", help="write one task's buffer file (HDF5, "
                       "docs/design.md §3) from a family's lifetime file")
    p.add_argument("--lifetime", type=Path, required=True)
    p.add_argument("--task", type=int, required=True)
    p.add_argument("--gamma", type=float, default=0.99, help="discount of the MC returns")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_export_buffer)

    p = sub.add_parser("inspect-buffer", help="validate buffer files and print a summary")
    p.add_argument("buffers", type=Path, nargs="+")
    p.add_argument("--gamma", type=float, default=None,
                   help="also require this discount (the config's gamma) in every file")
    p.set_defaults(func=cmd_inspect_buffer)

    p = sub.add_parser("make-split", help="write a train/test task split as JSON")
    p.add_argument("--family", required=True)
    p.add_argument("--split", required=True, help="e.g. standard, sparse20, extrapolation")
    p.add_argument("--available", type=int, nargs="+", default=None,
                   help="task ids that have buffers (default: all tasks of the family)")
    _memorisation_arg(p, "test on the split's training tasks (test = train)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_make_split)

    p = sub.add_parser("meta-train", help="meta-train a method on a split's training tasks, "
                       "meta-testing its test tasks along the way (writes eval.csv)",
                       fields=_fields_epilog("meta"))
    p.add_argument("--family", required=True, help="task family, e.g. cheetah-vel")
    p.add_argument("--split", type=Path, required=True, help="split JSON (macaw make-split)")
    p.add_argument("--buffers-dir", type=Path, required=True,
                   help="directory of the family's task??.h5 buffers")
    from macaw.algos.registry import METHODS

    p.add_argument("--method", default="macaw", choices=list(METHODS),
                   help="; ".join(f"{m.name}: {m.label}" for m in METHODS.values()))
    p.add_argument("--seed", type=int, default=0)
    sections = dict.fromkeys(m.section for m in METHODS.values())
    _config_args(p, "MetaTrainConfig (macaw.meta_train; an algorithm's under "
                 + ", ".join(repr(s) for s in sections) + ")")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--run-dir", type=Path, required=True,
                   help="output directory (config.yaml, checkpoint.pt, eval.csv)")
    p.add_argument("--gamma", type=float, default=0.99,
                   help="the discount every buffer's Monte-Carlo returns must have been "
                        "computed with (the config's gamma, as given to export-buffer; "
                        "default 0.99)")
    _memorisation_arg(p, "accept a split whose test tasks are training tasks")
    p.add_argument("--no-progress", action="store_true")
    _restart_arg(p, "run-dir holds a checkpoint", "checkpoint.stale.pt")
    p.set_defaults(func=cmd_meta_train)

    p = sub.add_parser("test-time-steps", help="diagnostic: meta-test a finished MACAW run "
                       "with 1, 2, 5, ... inner steps at test time (same batches and seeds)")
    _finished_run_args(p)
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5, 20])
    p.add_argument("--episodes", type=int, default=3, help="episodes per test task")
    p.add_argument("--value-steps", type=int, default=None, metavar="N",
                   help="value steps at every number of steps (default: the same number, "
                        "as Algorithm 2). 1 keeps the value at its one trained step and "
                        "repeats only the policy's: a repeated value step can diverge")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, required=True, help="CSV of every episode")
    p.set_defaults(func=cmd_test_time_steps)

    p = sub.add_parser("online-finetune", help="online fine-tuning of a meta-trained run on its "
                       "test tasks (paper C.2, Table 1); writes env_steps,task_id,return",
                       fields=_fields_epilog("online"))
    _finished_run_args(p)
    _config_args(p, "OnlineConfig (macaw.online)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, required=True,
                   help="output CSV; while it runs, a checkpoint (.checkpoint.pt) after every "
                        "test task, which a rerun resumes from")
    _restart_arg(p, "the checkpoint beside --out was written", ".checkpoint.stale.pt")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_online_finetune)

    p = sub.add_parser("fewshot", help="meta-train MAML on few-shot digit classification (Fig. 6's "
                       "Omniglot stand-in, default 5-way 1-shot) with or without weight-"
                       "transform layers; writes a step,accuracy CSV and a config YAML",
                       fields=_fields_epilog("fewshot"))
    p.add_argument("--variant", required=True, choices=["wt", "nowt_width", "nowt_params"],
                   help="wt: WT layers (width 128, latent 32); nowt_width: plain layers of "
                        "the same width; nowt_params: plain layers with as many parameters")
    p.add_argument("--seed", type=int, default=0)
    _config_args(p, "FewShotConfig (macaw.fewshot)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, required=True,
                   help="output CSV (step,accuracy of the test-class tasks); the config, "
                        "width and parameter count go to the same path with .yaml; while "
                        "it trains, a checkpoint (.checkpoint.pt) it resumes from")
    _restart_arg(p, "the checkpoint beside --out was written", ".checkpoint.stale.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_fewshot)

    p = sub.add_parser("plot-fig8", help="behaviour-policy learning curves (paper Fig. 8)")
    p.add_argument("--buffers", type=Path, nargs="+", required=True)
    p.add_argument("--pdf", type=Path, required=True)
    p.add_argument("--csv", type=Path, required=True)
    p.set_defaults(func=cmd_plot_fig8)

    p = sub.add_parser("plot-fig9", help="ML45 behaviour-policy learning curves and success "
                       "rates (paper Fig. 9)")
    p.add_argument("--buffers", type=Path, nargs="+", required=True)
    p.add_argument("--pdf", type=Path, required=True)
    p.add_argument("--csv", type=Path, required=True)
    p.set_defaults(func=cmd_plot_fig9)

    p = sub.add_parser("plot-curves", help="meta-test learning curves of runs (Fig. 3, 4, 5, 7)")
    p.add_argument("--run", nargs=4, action="append", required=True,
                   metavar=("PANEL", "LABEL", "SEED", "EVAL_CSV"), help="one run (repeat)")
    p.add_argument("--title", required=True)
    p.add_argument("--metric", choices=("return", "success"), default="return",
                   help="eval.csv column averaged over test tasks (success: ML45, Fig. 7)")
    p.add_argument("--pdf", type=Path, required=True)
    p.add_argument("--csv", type=Path, required=True)
    p.set_defaults(func=cmd_plot_curves)

    p = sub.add_parser("plot-sparsity", help="final meta-test return vs number of training "
                       "tasks (Fig. 4 right)")
    p.add_argument("--run", nargs=4, action="append", required=True,
                   metavar=("N_TRAIN_TASKS", "LABEL", "SEED", "EVAL_CSV"), help="one run (repeat)")
    p.add_argument("--last", type=int, default=3,
                   help="final return = mean over this many last evaluations (default 3)")
    p.add_argument("--common-tasks", type=int, nargs="+", metavar="ID",
                   help="also plot every run on these of its test tasks (the ones every "
                        "sparse split shares), in a second panel")
    p.add_argument("--title", required=True)
    p.add_argument("--pdf", type=Path, required=True)
    p.add_argument("--csv", type=Path, required=True)
    p.set_defaults(func=cmd_plot_sparsity)

    p = sub.add_parser("plot-diagnostics", help="adaptation gain, learned inner rates, lambda "
                       "and held-out value loss before/after the inner step over meta-training")
    p.add_argument("--run", nargs=3, action="append", required=True,
                   metavar=("LABEL", "SEED", "RUN_DIR"), help="one run directory (repeat)")
    p.add_argument("--title", required=True)
    p.add_argument("--pdf", type=Path, required=True)
    p.add_argument("--csv", type=Path, required=True)
    p.set_defaults(func=cmd_plot_diagnostics)

    p = sub.add_parser("plot-fig6", help="few-shot test accuracy vs meta-training steps, "
                       "WT vs no-WT (Fig. 6), mean ± s.e. over seeds")
    p.add_argument("--run", nargs=3, action="append", required=True,
                   metavar=("LABEL", "SEED", "CSV"),
                   help="one run of `macaw fewshot` (repeat); its .yaml must lie beside it")
    p.add_argument("--pdf", type=Path, required=True)
    p.add_argument("--csv", type=Path, required=True)
    p.set_defaults(func=cmd_plot_fig6)

    p = sub.add_parser("summary", help="final scores per family, split and method: IQM and "
                       "mean with 95 %% stratified-bootstrap CIs (rliable), adaptation gain, "
                       "probability that MACAW improves on each baseline")
    p.add_argument("--run", nargs=5, action="append", required=True,
                   metavar=("FAMILY", "SPLIT", "LABEL", "SEED", "EVAL_CSV"),
                   help="one run (repeat); the label MACAW is the reference")
    p.add_argument("--last", type=int, default=3,
                   help="final score = mean over this many last evaluations (default 3)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--common-tasks", type=int, nargs="+", metavar="ID",
                   help="the test tasks of --common-splits (default: those all their runs "
                   "share)")
    p.add_argument("--common-splits", nargs="+", default=[], metavar="SPLIT",
                   help="also summarise these splits' runs on their common test tasks only, "
                   "as the split 'SPLIT, common test tasks' (Fig. 4 right: the test tasks "
                   "every sparse split shares, so every point averages the same targets)")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("table1", help="Table 1 from online fine-tuning CSVs")
    p.add_argument("--run", nargs=3, action="append", required=True,
                   metavar=("LABEL", "SEED", "ONLINE_CSV"), help="one run (repeat; seeds of a "
                   "method are averaged per task)")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.set_defaults(func=cmd_table1)

    p = sub.add_parser("export-minari", help="export buffers as a Minari dataset (no download)")
    p.add_argument("--buffers", type=Path, nargs="+", required=True)
    p.add_argument("--dataset-id", required=True, help="e.g. macaw/cheetah-vel-task03-v0")
    p.add_argument("--root", type=Path, required=True, help="Minari datasets directory")
    p.set_defaults(func=cmd_export_minari)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (ValueError, KeyError, OSError, FloatingPointError) as err:
        # Bad input: one clear line, no traceback, non-zero exit.
        print(f"macaw {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

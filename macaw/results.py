"""The registry of the paper's results: every figure and table the pipeline builds, in one table.

Each :class:`Result` says what it is (its kind, title and report section), which runs it needs
(families x splits x methods, by the names of :data:`macaw.algos.registry.METHODS`), what it
plots and whether it enters the summary. The workflow (``rule all``, the ``runs`` target, the
figure rules' inputs and arguments, the report sections, the summary), the checks of
``dvc.yaml`` and the study scripts all read it; nothing else lists figures.

Adding a figure of meta-training curves is one entry here (its caption may go in
``workflow/report/curves.rst``). Importing this module imports neither torch nor an environment.

Kinds:

- ``curves``: meta-test score against meta-training steps, one line per method (``macaw
  plot-curves``); its panels are the families, the adaptation windows, or one fixed panel;
- ``sparsity``: the final score against the number of training tasks (``macaw plot-sparsity``);
- ``special``: a figure with a rule of its own (the behaviour data, few-shot, diagnostics);
- ``table``: a table (Table 1, the summary).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from macaw.fields import QUALITY_WINDOWS

MUJOCO_FAMILIES = ("cheetah-dir", "cheetah-vel", "ant-dir", "walker-params")
"""The MuJoCo families, in the paper's order (Fig. 3, 5, 8)."""

SPARSITY_SPLITS = ("standard", "sparse20", "sparse10", "sparse5", "sparse3")
"""Fig. 4 right's splits, from the most training tasks to the fewest."""

DATA = "1. Offline data (App. D, Fig. 8-9)"
COMPARISON = "2. Offline meta-RL (Sec. 5, Fig. 3 and 7)"
ABLATIONS = "3. Ablations (Sec. 5 and App. C.1, Fig. 4-6)"
ONLINE = "4. Online fine-tuning (App. C.2, Table 1)"
STATISTICS = "5. Statistics and diagnostics"


@dataclass(frozen=True)
class Result:
    """One figure or table of the paper (``results/{id}.{ext}`` for each of ``outputs``)."""

    id: str
    kind: Literal["curves", "sparsity", "special", "table"]
    title: str
    category: str
    """Section of ``snakemake --report``."""
    families: tuple[str, ...] = ()
    """Families it draws, those of the config among them; it needs at least one (none: no
    family needed)."""
    methods: tuple[str, ...] = ()
    """Methods of :data:`macaw.algos.registry.METHODS` whose runs it shows."""
    splits: tuple[str, ...] = ("standard",)
    """Splits of its runs (those of the config among them)."""
    panel: str = "family"
    """Curves: one panel per ``family``, per adaptation ``window`` (with :attr:`windows`), or
    this fixed panel title. Sparsity: the number of training tasks, always."""
    windows: tuple[str, ...] = ()
    """Adaptation windows of its runs (Fig. 4 left); none: the config's own."""
    metric: Literal["return", "success"] = "return"
    """The ``eval.csv`` column it plots."""
    summary: bool = False
    """Its runs enter ``results/summary.*`` (in registry order, each run once)."""
    plot: tuple[str, str] | None = None
    """``dvc.yaml``'s plot axes (x, y columns of its CSV); None: no DVC plot."""
    outputs: tuple[str, ...] = ("pdf", "csv")
    dvc_stage: str = "figures"
    """The ``dvc.yaml`` stage that writes it."""


RESULTS: dict[str, Result] = {r.id: r for r in (
    Result("fig8", "special", "Behaviour-policy learning curves", DATA, MUJOCO_FAMILIES,
           plot=("env_step", "smoothed_return")),
    Result("fig6", "special", "Few-shot classification with and without weight transforms",
           ABLATIONS, plot=("step", "accuracy"), dvc_stage="fewshot"),
    Result("fig3", "curves", "Offline meta-RL on the MuJoCo families", COMPARISON,
           MUJOCO_FAMILIES, ("macaw", "pearl", "mt_ft", "meta_bc"), summary=True,
           plot=("step", "mean_return")),
    Result("fig4_left", "curves", "cheetah-vel: data quality of the adaptation batch",
           ABLATIONS, ("cheetah-vel",), ("macaw", "macaw_noadv"), panel="window",
           windows=QUALITY_WINDOWS, summary=True, plot=("step", "mean_return")),
    Result("fig4_center", "curves", "cheetah-vel: weight-transform ablation", ABLATIONS,
           ("cheetah-vel",), ("macaw", "macaw_nowt_width", "macaw_nowt_params"), summary=True,
           plot=("step", "mean_return")),
    # Fig. 5 follows the paper's caption, "All networks have the same number of hidden units":
    # WT against the equal-width plain network only (the equal-params one is Fig. 4 center's).
    Result("fig5", "curves", "Weight-transform ablation on the MuJoCo families", ABLATIONS,
           MUJOCO_FAMILIES, ("macaw", "macaw_nowt_width"), summary=True,
           plot=("step", "mean_return")),
    Result("fig4_right", "sparsity", "cheetah-vel: fewer meta-training tasks", ABLATIONS,
           ("cheetah-vel",), ("macaw", "pearl", "mt_ft"), splits=SPARSITY_SPLITS,
           panel="train_tasks", summary=True, plot=("train_tasks", "mean_return")),
    Result("diagnostics", "special", "cheetah-vel: the adaptation step", STATISTICS,
           ("cheetah-vel",), ("macaw", "mt_ft")),
    Result("fig9", "special", "Meta-World ML45 behaviour data", DATA, ("ml45",)),
    Result("fig7", "curves", "Meta-World ML45: success on the test tasks", COMPARISON,
           ("ml45",), ("macaw", "pearl", "mt_ft"), panel="ML45 test tasks", metric="success",
           summary=True, plot=("step", "mean_success")),
    Result("table1", "table", "cheetah-vel: online fine-tuning", ONLINE, ("cheetah-vel",),
           ("macaw", "pearl"), splits=("extrapolation",), outputs=("csv", "md")),
    Result("summary", "table", "Final scores with their controls", STATISTICS,
           outputs=("csv", "md", "json")),
)}


def get_result(result_id: str) -> Result:
    if result_id not in RESULTS:
        raise ValueError(f"unknown result {result_id!r}; expected one of {tuple(RESULTS)}")
    return RESULTS[result_id]


def of_kind(*kinds: str) -> tuple[str, ...]:
    """Ids of the results of these kinds, in registry order."""
    return tuple(r.id for r in RESULTS.values() if r.kind in kinds)


def families_drawn(result: Result, families) -> list[str]:
    """The families of ``result`` that a config building ``families`` draws."""
    return [f for f in result.families if f in families]


def missing_family(result: Result, families) -> str:
    """Why a config building ``families`` cannot build ``result`` ("" when it can)."""
    if not result.families or families_drawn(result, families):
        return ""
    if len(result.families) == 1:
        return result.families[0]
    return f"one of {', '.join(result.families)}"


def config_window(config: dict) -> str:
    """The adaptation window a workflow config's runs use unless named (``inner_window``)."""
    return config["meta_training"]["params"].get("inner_window", "all")


def window_run(method: str, window: str, default_window: str) -> str:
    """The run directory's method for adaptation ``window``: the plain run where the config's
    adaptation window already is that one, else ``{method}-{window}``."""
    return method if window == default_window else f"{method}-{window}"


@dataclass(frozen=True)
class Run:
    """One curve of a figure: its panel and method, and the run directory's coordinates."""

    panel: str
    method: str
    family: str
    split: str
    run_method: str
    """The run directory's method (``macaw_noadv-bad`` for a window run)."""


def runs(result: Result, families: dict, n_train_tasks: Callable[[str, str], int],
         default_window: str) -> list[Run]:
    """Every curve of ``result`` under a config whose ``families`` maps each family to its
    spec (its ``splits``); ``n_train_tasks(family, split)`` sizes Fig. 4 right's panels. None
    when the config lacks the result's families."""
    if result.kind not in ("curves", "sparsity") or missing_family(result, families):
        return []
    out = []
    for family in families_drawn(result, families):
        splits = [s for s in result.splits
                  if len(result.splits) == 1 or s in families[family]["splits"]]
        for split in splits:
            for window in result.windows or (None,):
                for method in result.methods:
                    if result.kind == "sparsity":
                        panel = str(n_train_tasks(family, split))
                    elif result.panel == "family":
                        panel = family
                    elif result.panel == "window":
                        panel = f"{window} data"
                    else:
                        panel = result.panel
                    run_method = method if window is None else window_run(method, window,
                                                                          default_window)
                    out.append(Run(panel, method, family, split, run_method))
    return out


def sparse_splits(result: Result, families: dict) -> list[str]:
    """The sparse splits of a sparsity result that the config builds (Fig. 4 right's second
    task set is the test tasks they share); none for another kind of result or family."""
    if result.kind != "sparsity" or missing_family(result, families):
        return []
    family = families_drawn(result, families)[0]
    return [s for s in result.splits if s.startswith("sparse") and s in families[family]["splits"]]


def common_test_tasks(result: Result, families: dict,
                      test_tasks: Callable[[str, str], list[int]]) -> list[int]:
    """The test tasks that every sparse split of a sparsity result shares (Fig. 4 right's
    second task set); none when the config builds no sparse split of its family."""
    splits = sparse_splits(result, families)
    if not splits:
        return []
    family = families_drawn(result, families)[0]
    return sorted(set.intersection(*(set(test_tasks(family, s)) for s in splits)))


def dvc_plots() -> list[dict]:
    """``dvc.yaml``'s ``plots`` section as the registry gives it: one plot per (x, y) pair of
    axes, over every result with those axes."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in RESULTS.values():
        if r.plot:
            groups.setdefault(r.plot, []).append(r.id)
    return [{"x": x, "y": {f"results/{i}.csv": y for i in ids}}
            for (x, y), ids in groups.items()]


def run_paths(result: Result, config: dict) -> list[str]:
    """``family/split/run_method`` of every run of ``result`` under a workflow config (a
    parsed ``config/*.yaml``), each once, in figure order."""
    found = runs(result, config["families"], lambda family, split: 0, config_window(config))
    return list(dict.fromkeys(f"{r.family}/{r.split}/{r.run_method}" for r in found))


def main(argv: list[str] | None = None) -> None:
    """List the paper's results (one id per line), or with ``--runs FIGURE`` the run
    directories a figure reads (``family/split/method``, for the study scripts)."""
    import argparse
    from pathlib import Path

    import yaml

    p = argparse.ArgumentParser(prog="python -m macaw.results", description=main.__doc__)
    p.add_argument("kinds", nargs="*", metavar="KIND",
                   help="only results of these kinds: curves, sparsity, special, table "
                        "(default: every result)")
    p.add_argument("--summary", action="store_true", help="only results that enter the summary")
    p.add_argument("--runs", metavar="FIGURE", help="the runs of this figure instead")
    p.add_argument("--config", type=Path, default=Path("config/config.yaml"),
                   help="workflow config whose families and windows --runs reads "
                        "(default: %(default)s)")
    args = p.parse_args(argv)
    unknown = sorted(set(args.kinds) - {"curves", "sparsity", "special", "table"})
    if unknown:
        p.error(f"unknown kind(s) {unknown}; expected curves, sparsity, special or table")
    if args.runs:
        try:
            result = get_result(args.runs)
        except ValueError as err:
            p.error(str(err))
        print("\n".join(run_paths(result, yaml.safe_load(args.config.read_text()))))
        return
    for r in RESULTS.values():
        if (not args.kinds or r.kind in args.kinds) and (r.summary or not args.summary):
            print(r.id)


if __name__ == "__main__":
    main()

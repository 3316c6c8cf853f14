# Config loading and validation, and the input functions shared by the stages.
import json
import os
import shlex

from snakemake.utils import min_version, validate

from macaw.algos.registry import labels as method_labels, run_method_pattern
from macaw.envs import get_family
from macaw.workflow_config import replace_sections

min_version("8.0")


configfile: "config/config.yaml"


# A --configfile's `families` replaces the default's instead of merging into it, so a custom
# config builds exactly the families it lists (macaw/workflow_config.py, config/README.md).
replace_sections(config, workflow.overwrite_configfiles, workflow.config_settings.config)


validate(config, "../schemas/config.schema.yaml")


def job_threads(wildcards=None):
    """Threads a torch job declares: `threads` of the config, scaled up when --cores exceeds
    this machine's CPUs, so that torch jobs never share cores (two 2-thread torch jobs on 2
    cores run 5-20x slower than one after the other). The job itself uses at most as many
    threads as there are CPUs (macaw.cli). On a cluster every job gets its own node share."""
    if not workflow.local_exec or workflow.global_resources["_cores"].value is None:
        return config["threads"]
    cores = workflow.cores
    cpus = os.cpu_count() or 1
    return config["threads"] * max(1, -(-cores // cpus))


def family_tasks(family):
    """Task ids of `family` that this config builds (validated against the family's size)."""
    n_tasks = get_family(family).n_tasks
    tasks = config["families"][family]["tasks"]
    if tasks == "all":
        return list(range(n_tasks))
    bad = [t for t in tasks if t >= n_tasks]
    if bad:
        raise ValueError(
            f"config: families.{family}.tasks has ids {bad}; expected ids 0..{n_tasks - 1}"
        )
    return sorted(tasks)


def behaviour_chunks(family):
    """The family's tasks in behaviour jobs of families.<family>.tasks_per_job (default: one
    job for all); chunk k is results/behaviour/<family>/chunk<k>/."""
    tasks = family_tasks(family)
    size = config["families"][family].get("tasks_per_job") or len(tasks)
    return [tasks[i : i + size] for i in range(0, len(tasks), size)]


def behaviour_chunk_file(family, task):
    """The lifetime file that holds `task`'s data."""
    chunk = next(k for k, tasks in enumerate(behaviour_chunks(family)) if task in tasks)
    return f"results/behaviour/{family}/chunk{chunk}/lifetime.h5"


def behaviour_mem_mb(wildcards):
    """A behaviour job's memory: every task of its chunk keeps its lifetime in memory
    (macaw/resources.py)."""
    from macaw.resources import behaviour_mem_mb

    family = wildcards.family
    steps = config["families"][family]["behaviour"]["steps"]
    return behaviour_mem_mb(family, len(behaviour_chunks(family)[int(wildcards.chunk)]), steps)


def data_mem_mb(family, buffers):
    """A job's memory when it loads `buffers` of `family` (macaw/resources.py)."""
    from macaw.resources import meta_train_mem_mb

    steps = config["families"][family]["behaviour"]["steps"]
    return meta_train_mem_mb(family, len(buffers), steps)


def buffer_files(family):
    return [f"results/buffers/{family}/task{t:02d}.h5" for t in family_tasks(family)]


def all_buffer_files():
    return [path for family in config["families"] for path in buffer_files(family)]


def all_split_files():
    return [
        f"results/splits/{family}/{split}.json"
        for family, spec in config["families"].items()
        for split in spec["splits"]
    ]


wildcard_constraints:
    family="|".join(config["families"]),
    task=r"\d{2}",


# ---------------------------------------------------------------- meta-training runs

METHOD_LABELS = method_labels()  # macaw/algos/registry.py
WT_ABLATION = ("macaw", "macaw_nowt_width", "macaw_nowt_params")  # Fig. 4 center
# Fig. 5 follows the paper's caption, "All networks have the same number of hidden units":
# WT against the equal-width plain network only (the equal-params one is Fig. 4 center's).
WT_EQUAL_WIDTH = ("macaw", "macaw_nowt_width")
COMPARISON = ("macaw", "pearl", "mt_ft", "meta_bc")  # Fig. 3
SPARSITY_METHODS = ("macaw", "pearl", "mt_ft")  # Fig. 4 right
SPARSITY_SPLITS = ("standard", "sparse20", "sparse10", "sparse5", "sparse3")
ONLINE_METHODS = ("macaw", "pearl")  # Table 1
ML45_METHODS = ("macaw", "pearl", "mt_ft")  # Fig. 7
DIAGNOSTIC_METHODS = ("macaw", "mt_ft")  # results/diagnostics.pdf
MUJOCO_FAMILIES = ("cheetah-dir", "cheetah-vel", "ant-dir", "walker-params")


def mujoco_families():
    """The MuJoCo families of this config, in the paper's order (Fig. 3, Fig. 5)."""
    return [f for f in MUJOCO_FAMILIES if f in config["families"]]


def mujoco_buffer_files():
    """Buffers of the MuJoCo families (Fig. 8); ml45's go to Fig. 9."""
    return [path for family in mujoco_families() for path in buffer_files(family)]


def split_tasks(family, split):
    from macaw.data import make_split

    n_tasks = get_family(family).n_tasks
    return make_split(family, split, n_tasks, available=family_tasks(family))


def split_buffer_files(family, split):
    s = split_tasks(family, split)
    ids = sorted(set(s["train"]) | set(s["test"]))
    return [f"results/buffers/{family}/task{t:02d}.h5" for t in ids]


def run_dir(family, split, method, seed):
    return f"results/runs/{family}/{split}/{method}/seed{seed}"


def meta_train_params(family, run_method):
    """A run directory's method may carry a data-quality suffix: macaw_noadv-bad. Params are
    meta_training.params with meta_training.family_params[family] merged over them (one
    level deep: e.g. the walker's MT+FT value rate, paper Table 3), then
    meta_training.method_params[method] (e.g. fewer steps for the costliest methods)."""
    method, _, quality = run_method.partition("-")
    params = {
        k: dict(v) if isinstance(v, dict) else v
        for k, v in config["meta_training"]["params"].items()
    }
    for overrides in (
        config["meta_training"].get("family_params", {}).get(family, {}),
        config["meta_training"].get("method_params", {}).get(method, {}),
    ):
        for key, value in overrides.items():
            params[key] = {**params.get(key, {}), **value} if isinstance(value, dict) else value
    if quality:
        params["inner_window"] = quality
    return method, params


def quality_run(method, quality):
    """The run directory's method for Fig. 4 left's `quality` window: the plain run where
    the config's adaptation window already is that one."""
    default = config["meta_training"]["params"].get("inner_window", "all")
    return method if quality == default else f"{method}-{quality}"


# The family each cheetah-vel figure and table needs (Fig. 4, Table 1, the diagnostics).
CHEETAH_VEL_TARGETS = ("fig4_left", "fig4_center", "fig4_right", "table1", "diagnostics")


def target_family_missing(target):
    """Why this config cannot build `target` ("" when it can): a custom config's `families`
    may leave out the family a figure needs (macaw/workflow_config.py)."""
    if target in CHEETAH_VEL_TARGETS and "cheetah-vel" not in config["families"]:
        return "cheetah-vel"
    if target in ("fig7", "fig9") and "ml45" not in config["families"]:
        return "ml45"
    if target in ("fig3", "fig5", "fig8") and not mujoco_families():
        return "a MuJoCo family (cheetah-dir, cheetah-vel, ant-dir or walker-params)"
    return ""


def built_targets(targets):
    """The figures and tables of `targets` that this config's families can build."""
    return [t for t in targets if not target_family_missing(t)]


def needs_family(target, files):
    """An input function's files, or a clear error when the config lacks the family."""

    def inputs(wildcards=None):
        name = target if isinstance(target, str) else target(wildcards)
        missing = target_family_missing(name)
        if missing:
            raise ValueError(
                f"results/{name}: needs {missing}, which this config's "
                "`families` does not build"
            )
        return files(name) if callable(files) else files

    return inputs


def figure_runs(figure):
    """(panel, label, family, split, run_method) of every curve in a figure; none when the
    config does not build the figure's family."""
    if target_family_missing(figure):
        return []
    if figure == "fig4_left":
        return [
            (f"{q} data", METHOD_LABELS[m], "cheetah-vel", "standard", quality_run(m, q))
            for q in ("bad", "medium", "good")
            for m in ("macaw", "macaw_noadv")
        ]
    if figure == "fig4_center":
        return [
            ("cheetah-vel", METHOD_LABELS[m], "cheetah-vel", "standard", m) for m in WT_ABLATION
        ]
    if figure == "fig5":
        return [
            (family, METHOD_LABELS[m], family, "standard", m)
            for family in mujoco_families()
            for m in WT_EQUAL_WIDTH
        ]
    if figure == "fig3":
        return [
            (family, METHOD_LABELS[m], family, "standard", m)
            for family in mujoco_families()
            for m in COMPARISON
        ]
    if figure == "fig7":
        return [("ML45 test tasks", METHOD_LABELS[m], "ml45", "standard", m) for m in ML45_METHODS]
    if figure == "fig4_right":
        # The panel is the number of training tasks of the split.
        return [
            (
                str(len(split_tasks("cheetah-vel", split)["train"])),
                METHOD_LABELS[m],
                "cheetah-vel",
                split,
                m,
            )
            for split in SPARSITY_SPLITS
            if split in config["families"]["cheetah-vel"]["splits"]
            for m in SPARSITY_METHODS
        ]
    raise ValueError(f"unknown figure {figure!r}")


def sparsity_common_tasks():
    """The test tasks that every sparse split of Fig. 4 right shares (its second panel)."""
    if target_family_missing("fig4_right"):
        return []
    splits = [
        s
        for s in SPARSITY_SPLITS
        if s.startswith("sparse") and s in config["families"]["cheetah-vel"]["splits"]
    ]
    if not splits:
        return []
    return sorted(set.intersection(*(set(split_tasks("cheetah-vel", s)["test"]) for s in splits)))


FIGURE_TITLES = {
    "fig4_left": "cheetah-vel: data quality of the adaptation batch",
    "fig4_center": "cheetah-vel: weight-transform ablation",
    "fig5": "Weight-transform ablation on the MuJoCo families",
    "fig3": "Offline meta-RL on the MuJoCo families",
    "fig4_right": "cheetah-vel: fewer meta-training tasks",
    "fig7": "Meta-World ML45: success on the test tasks",
}
CURVE_FIGURES = ("fig4_left", "fig4_center", "fig5", "fig3", "fig7")
CURVE_METRICS = {"fig7": "success"}  # eval.csv column a curve figure plots; else "return"


# Sections of `snakemake --report`, in the paper's order (workflow/report/ holds the captions).
REPORT_CATEGORIES = {
    "fig8": "1. Offline data (App. D, Fig. 8-9)",
    "fig9": "1. Offline data (App. D, Fig. 8-9)",
    "fig3": "2. Offline meta-RL (Sec. 5, Fig. 3 and 7)",
    "fig7": "2. Offline meta-RL (Sec. 5, Fig. 3 and 7)",
    "fig4_left": "3. Ablations (Sec. 5 and App. C.1, Fig. 4-6)",
    "fig4_center": "3. Ablations (Sec. 5 and App. C.1, Fig. 4-6)",
    "fig4_right": "3. Ablations (Sec. 5 and App. C.1, Fig. 4-6)",
    "fig5": "3. Ablations (Sec. 5 and App. C.1, Fig. 4-6)",
    "fig6": "3. Ablations (Sec. 5 and App. C.1, Fig. 4-6)",
    "table1": "4. Online fine-tuning (App. C.2, Table 1)",
    "summary": "5. Statistics and diagnostics",
    "diagnostics": "5. Statistics and diagnostics",
}


def report_category(wildcards):
    """The report section of a curves figure (its rule makes several)."""
    return REPORT_CATEGORIES[wildcards.figure]


SUMMARY_FIGURES = ("fig3", "fig4_left", "fig4_center", "fig5", "fig4_right", "fig7")


def summary_runs():
    """(family, split, label, run_method) of every meta-training run a figure shows, once;
    a data-quality run's label names its window."""
    seen = {}
    for figure in SUMMARY_FIGURES:
        for _, _, family, split, m in figure_runs(figure):
            method, _, quality = m.partition("-")
            label = METHOD_LABELS[method] + (f" ({quality} data)" if quality else "")
            seen.setdefault((family, split, m), label)
    return [(family, split, label, m) for (family, split, m), label in seen.items()]


def summary_run_args():
    return " ".join(
        f"--run {family} {split} {shlex.quote(label)} {seed}"
        f" {run_dir(family, split, m, seed)}/eval.csv"
        for family, split, label, m in summary_runs()
        for seed in run_seeds(m)
    )


def run_seeds(run_method):
    """Seeds of a run's method: meta_training.method_seeds[method], else meta_training.seeds
    (the costliest runs may use fewer seeds; docs/usage.md "Scales" says which)."""
    method = run_method.partition("-")[0]
    return (
        config["meta_training"]
        .get("method_seeds", {})
        .get(method, config["meta_training"]["seeds"])
    )


def online_seeds():
    """Seeds of Table 1's online fine-tuning (meta_training.online_seeds, else every seed)."""
    return config["meta_training"].get("online_seeds", config["meta_training"]["seeds"])


def online_file(method, seed):
    return f"results/online/cheetah-vel/extrapolation/{method}/seed{seed}.csv"


def online_files():
    """Table 1's online fine-tuning results, one per method and seed (none without
    cheetah-vel)."""
    if target_family_missing("table1"):
        return []
    return [online_file(m, seed) for m in ONLINE_METHODS for seed in online_seeds()]


def split_test_buffer_files(family, split):
    return [f"results/buffers/{family}/task{t:02d}.h5" for t in split_tasks(family, split)["test"]]


def figure_eval_files(figure):
    return [
        f"{run_dir(family, split, m, seed)}/eval.csv"
        for _, _, family, split, m in figure_runs(figure)
        for seed in run_seeds(m)
    ]


def figure_run_args(figure):
    return " ".join(
        f"--run {shlex.quote(panel)} {shlex.quote(label)} {seed}"
        f" {run_dir(family, split, m, seed)}/eval.csv"
        for panel, label, family, split, m in figure_runs(figure)
        for seed in run_seeds(m)
    )


def check_fields_together():
    """Constraints between config fields, which the schema cannot state, checked here so that
    a bad config fails before any job: each family's behaviour config (batch_size within
    learning_starts, macaw.behaviour) and each meta-training run's batches within the data
    windows that its family's lifetimes can hold (macaw.meta_train.check_batches_fit)."""
    from macaw.behaviour import BehaviourConfig
    from macaw.meta_train import MetaTrainConfig, check_batches_fit

    steps = {
        family: BehaviourConfig.from_dict(
            family, {**spec["behaviour"], "tasks": family_tasks(family)}
        ).steps
        for family, spec in config["families"].items()
    }
    runs = {(family, m) for figure in FIGURE_TITLES for _, _, family, _, m in figure_runs(figure)}
    runs |= {("cheetah-vel", m) for m in ONLINE_METHODS if online_files()}
    for family, run_method in sorted(runs):
        method, params = meta_train_params(family, run_method)
        cfg = MetaTrainConfig.from_dict({**params, "family": family, "method": method})
        check_batches_fit(
            cfg,
            steps[family],
            get_family(family).episode_steps,
            f"config: meta-training run {family}/{run_method}",
        )


check_fields_together()

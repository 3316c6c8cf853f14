# Config loading and validation, and the input functions shared by the stages.
import json
import os
import shlex

from snakemake.utils import min_version, validate

from macaw.algos.registry import labels as method_labels, run_method_pattern
from macaw.results import (
    RESULTS,
    common_test_tasks,
    config_window,
    families_drawn,
    get_result,
    missing_family,
    sparse_splits,
    of_kind,
    runs as result_runs,
)
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


def result_families(result_id):
    """The families of a figure or table (macaw/results.py) that this config builds."""
    return families_drawn(get_result(result_id), config["families"])


def mujoco_buffer_files():
    """Buffers of the MuJoCo families (Fig. 8); ml45's go to Fig. 9."""
    return [path for family in result_families("fig8") for path in buffer_files(family)]


def split_tasks(family, split):
    from macaw.data.splits import make_split

    n_tasks = get_family(family).n_tasks
    return make_split(family, split, n_tasks, available=family_tasks(family))


def split_buffer_files(family, split):
    s = split_tasks(family, split)
    ids = sorted(set(s["train"]) | set(s["test"]))
    return [f"results/buffers/{family}/task{t:02d}.h5" for t in ids]


def run_dir(family, split, method, seed):
    return f"results/runs/{family}/{split}/{method}/seed{seed}"


def meta_train_params(family, run_method):
    """A run directory's method may carry an adaptation-window suffix: macaw_noadv-bad. Params
    are meta_training.params with meta_training.family_params[family] merged over them (one
    level deep: e.g. the walker's MT+FT value rate, paper Table 3), then
    meta_training.method_params[method] (e.g. fewer steps for the costliest methods)."""
    method, _, window = run_method.partition("-")
    params = merge_params(
        config["meta_training"]["params"],
        config["meta_training"].get("family_params", {}).get(family, {}),
        config["meta_training"].get("method_params", {}).get(method, {}),
    )
    if window:
        params["inner_window"] = window
    return method, params


def merge_params(params, *overrides):
    """A copy of `params` with each of `overrides` merged over it in turn, a section (a
    mapping: `macaw`, `mt_ft`, ...) key by key, one level deep."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in params.items()}
    for override in overrides:
        for key, value in override.items():
            out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


def target_family_missing(target):
    """Why this config cannot build `target` ("" when it can): a custom config's `families`
    may leave out the family a figure needs (macaw/workflow_config.py)."""
    return missing_family(get_result(target), config["families"])


def built_targets(targets):
    """The figures and tables of `targets` that this config's families can build."""
    return [t for t in targets if not target_family_missing(t)]


def all_result_files():
    """Every output of every figure and table this config can build (rule all)."""
    return [f"results/{r}.{ext}" for r in built_targets(RESULTS) for ext in RESULTS[r].outputs]


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
    """(panel, label, family, split, run_method) of every curve in a figure (its entry in
    macaw/results.py); none when the config does not build the figure's family."""
    return [
        (r.panel, METHOD_LABELS[r.method], r.family, r.split, r.run_method)
        for r in result_runs(
            get_result(figure),
            config["families"],
            lambda family, split: len(split_tasks(family, split)["train"]),
            config_window(config),
        )
    ]


def sparsity_common_tasks():
    """The test tasks that every sparse split of Fig. 4 right shares (its second panel)."""
    return common_test_tasks(
        get_result("fig4_right"),
        config["families"],
        lambda family, split: split_tasks(family, split)["test"],
    )


def report_category(wildcards):
    """The report section of a curves figure (its rule makes several)."""
    return RESULTS[wildcards.figure].category


def summary_runs():
    """(family, split, label, run_method) of every meta-training run a figure of the summary
    shows, once; a window run's label names its window."""
    seen = {}
    for figure in RESULTS:
        if not RESULTS[figure].summary:
            continue
        for _, _, family, split, m in figure_runs(figure):
            method, _, window = m.partition("-")
            label = METHOD_LABELS[method] + (f" ({window} data)" if window else "")
            seen.setdefault((family, split, m), label)
    return [(family, split, label, m) for (family, split, m), label in seen.items()]


def summary_run_args():
    return " ".join(
        f"--run {family} {split} {shlex.quote(label)} {seed}"
        f" {run_dir(family, split, m, seed)}/eval.csv"
        for family, split, label, m in summary_runs()
        for seed in run_seeds(m)
    )


def summary_common_args():
    """The summary's --common-tasks / --common-splits: Fig. 4 right's sparse splits again, on
    the test tasks they all share (nothing when the config builds no sparse split)."""
    tasks = sparsity_common_tasks()
    if not tasks or not RESULTS["fig4_right"].summary:
        return ""
    splits = sparse_splits(get_result("fig4_right"), config["families"])
    return f"--common-tasks {' '.join(map(str, tasks))} --common-splits {' '.join(splits)}"


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


ONLINE = get_result("table1")  # its runs: one family, one split, its methods


def online_file(method, seed):
    return f"results/online/{ONLINE.families[0]}/{ONLINE.splits[0]}/{method}/seed{seed}.csv"


def online_files():
    """Table 1's online fine-tuning results, one per method and seed (none without its
    family)."""
    if target_family_missing("table1"):
        return []
    return [online_file(m, seed) for m in ONLINE.methods for seed in online_seeds()]


def diagnostic_run_dirs():
    """(method, seed, run directory) of the diagnostics figure's runs."""
    result = get_result("diagnostics")
    return [
        (m, seed, run_dir(result.families[0], result.splits[0], m, seed))
        for m in result.methods
        for seed in run_seeds(m)
    ]


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


# ---------------------------------------------------------------- studies (studies.smk)


def study_run_spec(study, split, name, seed):
    """(family, method, params, memorisation_check, test_time_steps) of one study run: the
    default params of its family and method (meta_train_params), then the study's `params`,
    then the run's (sections merged one level deep)."""
    spec = config.get("studies", {}).get(study, {})
    run = spec.get("runs", {}).get(name)
    if run is None or split not in run.get("splits", ["standard"]):
        raise ValueError(f"config: studies.{study} has no run {name!r} on split {split!r}")
    family = spec["family"]
    method, params = meta_train_params(family, run["method"])
    return (
        family,
        method,
        merge_params(params, spec.get("params", {}), run.get("params", {})),
        run.get("memorisation_check", False),
        run.get("test_time_steps", []),
    )


def study_run_dirs():
    """(study, split, name, seed, run directory) of every study run of this config."""
    return [
        (study, split, name, seed, f"results/studies/{study}/{split}/{name}/seed{seed}")
        for study, spec in config.get("studies", {}).items()
        for name, run in spec["runs"].items()
        for split in run.get("splits", ["standard"])
        for seed in run.get("seeds", spec.get("seeds", config["meta_training"]["seeds"]))
    ]


def study_outputs():
    """Every file the `studies` target builds."""
    out = []
    for study, split, name, seed, d in study_run_dirs():
        out.append(f"{d}/eval.csv")
        if study_run_spec(study, split, name, seed)[4]:
            out.append(f"{d}/test_time_steps.csv")
    return out


def study_split_file(w):
    """The run's split file: a memorisation check's makes the training tasks its test tasks."""
    family, _, _, memorise, _ = study_run_spec(w.study, w.split, w.name, w.seed)
    if memorise:
        return f"results/studies/{w.study}/splits/{w.split}-memorise.json"
    return f"results/splits/{family}/{w.split}.json"


def check_fields_together():
    """Constraints between config fields, which the schema cannot state, checked here so that
    a bad config fails before any job (this imports the config classes, and torch with them;
    the registries above import neither): each family's behaviour config (batch_size within
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
    runs = {(family, m) for figure in RESULTS for _, _, family, _, m in figure_runs(figure)}
    runs |= {(ONLINE.families[0], m) for m in ONLINE.methods if online_files()}
    checks = [
        (family, *meta_train_params(family, run_method), f"{family}/{run_method}")
        for family, run_method in sorted(runs)
    ]
    checks += [
        (*study_run_spec(study, split, name, seed)[:3], f"studies.{study}.runs.{name}")
        for study, split, name, seed, _ in study_run_dirs()
    ]
    for family, method, params, where in checks:
        cfg = MetaTrainConfig.from_dict(
            {**params, "family": family, "method": method}, where=f"config: {where}"
        )
        check_batches_fit(
            cfg,
            steps[family],
            get_family(family).episode_steps,
            f"config: meta-training run {where}",
        )


check_fields_together()

# Config loading and validation, and the input functions shared by the stages.
import json
import os
import shlex

from snakemake.utils import min_version, validate

from macaw.envs import get_family

min_version("8.0")


configfile: "config/config.yaml"


validate(config, "../schemas/config.schema.yaml")


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

METHOD_LABELS = {
    "macaw": "MACAW",
    "macaw_noadv": "MAML+AWR (no L_ADV)",
    "macaw_nowt_width": "No WT, equal width",
    "macaw_nowt_params": "No WT, equal params",
}
WT_ABLATION = ("macaw", "macaw_nowt_width", "macaw_nowt_params")


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


def meta_train_params(run_method):
    """A run directory's method may carry a data-quality suffix: macaw_noadv-bad."""
    method, _, quality = run_method.partition("-")
    params = dict(config["meta_training"]["params"])
    params["inner_quality"] = quality or "good"
    return method, params


def figure_runs(figure):
    """(panel, label, family, split, run_method) of every curve in a figure."""
    if figure == "fig4_left":
        return [
            (f"{q} data", METHOD_LABELS[m], "cheetah-vel", "standard", m if q == "good" else f"{m}-{q}")
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
            for family in config["families"]
            for m in WT_ABLATION
        ]
    raise ValueError(f"unknown figure {figure!r}")


FIGURE_TITLES = {
    "fig4_left": "cheetah-vel: data quality of the adaptation batch",
    "fig4_center": "cheetah-vel: weight-transform ablation",
    "fig5": "Weight-transform ablation on the MuJoCo families",
}


def figure_eval_files(figure):
    return [
        f"{run_dir(family, split, m, seed)}/eval.csv"
        for _, _, family, split, m in figure_runs(figure)
        for seed in config["meta_training"]["seeds"]
    ]


def figure_run_args(figure):
    return " ".join(
        f"--run {shlex.quote(panel)} {shlex.quote(label)} {seed}"
        f" {run_dir(family, split, m, seed)}/eval.csv"
        for panel, label, family, split, m in figure_runs(figure)
        for seed in config["meta_training"]["seeds"]
    )

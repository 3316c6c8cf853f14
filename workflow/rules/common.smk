# Config loading and validation, input functions shared by the stages, and the default target.
import json

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

"""How the workflow's config files compose (docs/usage.md "Scales", config/README.md).

Snakemake merges every `--configfile` over `config/config.yaml` key by key, so a custom config
could add families and change fields but never leave a family out: the default's ml45 entry
would leak into every config that did not mention it. The `families` section is therefore
*replaced*, not merged: the last config file that has a `families` section lists every family
the build makes, each entry complete. Every other section keeps Snakemake's merge, so
`config/workstation.yaml` can change only the meta-training steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import yaml

REPLACED_SECTIONS = ("families",)


def load_config_file(path: str | PathLike) -> dict:
    """One config file as a mapping; a clear error naming the file otherwise."""
    try:
        with open(path) as f:
            values = yaml.safe_load(f)
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from None
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ValueError(f"{path}: expected a mapping of config sections, found "
                         f"{type(values).__name__}")
    return dict(values)


def replace_sections(config: dict, configfiles: Sequence[str | PathLike],
                     command_line: Mapping | None = None,
                     sections: Sequence[str] = REPLACED_SECTIONS) -> dict:
    """`config` (Snakemake's merged config) with each of `sections` taken whole from the last
    of `configfiles` that has it; `command_line` (`--config`) still overrides that, key by
    key, as Snakemake does. Files without the section leave the merged value alone."""
    for section in sections:
        chosen, source = _MISSING, None
        for path in configfiles:
            values = load_config_file(Path(path))
            if section in values:
                chosen, source = values[section], path
        if chosen is _MISSING:
            continue
        if not isinstance(chosen, Mapping):
            raise ValueError(f"{source}: {section}: expected a mapping of {section}, found "
                             f"{type(chosen).__name__}")
        override = (command_line or {}).get(section)
        config[section] = _merged(chosen, override) if isinstance(override, Mapping) \
            else dict(chosen)
    return config


_MISSING = object()


def _merged(base: Mapping, override: Mapping) -> dict:
    """`override` over `base`, recursively, as Snakemake merges config files."""
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        merged[key] = (_merged(old, value) if isinstance(old, Mapping)
                       and isinstance(value, Mapping) else value)
    return merged

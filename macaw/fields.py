"""Checking config dictionaries against the dataclasses they configure."""

from __future__ import annotations

import dataclasses


def check_known_fields(cls, values: dict, where: str, exclude: frozenset[str] = frozenset()) -> None:
    """Raise ValueError naming ``where``, the unknown keys of ``values`` and the valid ones."""
    names = {f.name for f in dataclasses.fields(cls)} - exclude
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; expected a subset of {sorted(names)}")

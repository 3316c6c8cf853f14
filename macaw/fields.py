"""Config dataclasses: their field types (with ranges) and the one validator every config uses.

Every config dataclass (:class:`macaw.meta_train.MetaTrainConfig`, the algorithms' configs,
:class:`macaw.behaviour.trainer.BehaviourConfig`, :class:`macaw.online.OnlineConfig`,
:class:`macaw.fewshot.FewShotConfig`) is decorated with :func:`config_class` and annotated with
the types below, so that pydantic checks each field's type and range from the annotation
(:func:`parse_config`) and writes the Snakemake JSON schema from the same source
(:mod:`macaw.schema`). Validation is strict, as JSON: ``"4"`` is not an integer, ``4.0`` is not
an integer, ``true`` is not a number; a list is accepted where a tuple is declared.

A config class that renamed fields lists them in a ``RENAMED`` class attribute (a ``ClassVar``,
old name -> new name, e.g. ``BehaviourConfig.RENAMED["total_steps"] == "steps"``): a config that
still uses an old name fails with that one rename, not the generic unknown-field error.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from typing import Annotated

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config

PositiveInt = Annotated[int, Field(ge=1)]
"""An integer >= 1 (a count, a length, a width)."""
NonNegativeInt = Annotated[int, Field(ge=0)]
"""An integer >= 0 (a seed; 0 meaning "never" or "none")."""
PositiveFloat = Annotated[float, Field(gt=0)]
"""A number > 0 (a learning rate, a temperature)."""
NonNegativeFloat = Annotated[float, Field(ge=0)]
"""A number >= 0 (a loss weight, a rate that may be switched off)."""
UnitFraction = Annotated[float, Field(gt=0, le=1)]
"""A number in (0, 1] (a discount, a Polyak rate)."""

QUALITY_WINDOWS = ("bad", "medium", "good")
"""The data windows of paper Fig. 4 left: the first / middle / last ``window_episodes`` episodes
of a behaviour lifetime (a run directory's method may carry one as a suffix: ``macaw-bad``)."""
WINDOWS = ("all", *QUALITY_WINDOWS)
"""Every window a run can sample from: the whole lifetime or one of the quality windows."""

_CONFIG = ConfigDict(strict=True, extra="forbid", use_attribute_docstrings=True)


def config_class(cls):
    """Make ``cls`` a config dataclass whose annotations pydantic validates strictly."""
    return with_config(_CONFIG)(dataclasses.dataclass(cls))


def renamed_fields(cls) -> dict[str, str]:
    """Old field name -> new name, for the fields config class ``cls`` renamed (its ``RENAMED``
    class attribute; none by default)."""
    return dict(getattr(cls, "RENAMED", {}))


@functools.cache
def _nested_configs(cls) -> dict[str, type]:
    """The fields of ``cls`` that are config dataclasses themselves (``MetaTrainConfig.macaw``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)
            if isinstance(hints[f.name], type) and dataclasses.is_dataclass(hints[f.name])}


def check_renamed_fields(cls, values: dict, where: str, prefix: str = "") -> None:
    """Raise ValueError naming ``where`` and the first key of ``values`` (or of a nested
    config section's values) that is an old name of a renamed field, with its new name."""
    for old, new in renamed_fields(cls).items():
        if old in values:
            raise ValueError(f"{where}: {prefix}{old} was renamed to {new} "
                             "(see config/README.md)")
    for name, nested in _nested_configs(cls).items():
        if isinstance(values.get(name), dict):
            check_renamed_fields(nested, values[name], where, prefix=f"{prefix}{name}.")


def check_known_fields(cls, values: dict, where: str, exclude: frozenset[str] = frozenset()) -> None:
    """Raise ValueError naming ``where``, the unknown keys of ``values`` and the valid ones."""
    names = {f.name for f in dataclasses.fields(cls)} - exclude
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; expected a subset of {sorted(names)}")


@functools.cache
def _adapter(cls) -> TypeAdapter:
    """pydantic's validator of ``cls``, built once per class."""
    return TypeAdapter(cls)


def parse_config(cls, values: dict, where: str, supplied: dict | None = None):
    """``cls`` built from ``values`` (and ``supplied``) after checking every field's name, type
    and range.

    ``supplied`` holds fields the caller sets itself (e.g. the family of a behaviour config):
    they are validated too, but a key of them in ``values`` is an unknown field. Raises
    ValueError naming ``where`` and, for each bad field, its dotted path, what was expected and
    what was found; an old name of a renamed field (``cls.RENAMED``) is named with its new one."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping of field names to values, found {values!r}")
    supplied = supplied or {}
    check_renamed_fields(cls, values, where)
    check_known_fields(cls, values, where, exclude=frozenset(supplied))
    try:
        text = json.dumps({**values, **supplied}, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: values must be plain JSON data (numbers, strings, lists, "
                         f"mappings; no NaN): {err}") from None
    try:
        return _adapter(cls).validate_json(text)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: "
                             f"{e['msg'][0].lower()}{e['msg'][1:]}, found {e.get('input')!r}"
                             for e in err.errors())
        raise ValueError(f"{where}: {problems}") from None

"""The method registry: every method's name, display label, hyperparameter section, learner
class and config class in one place. The training loop, the config check, the schema, the
CLI's ``--method`` choices and the workflow's labels and wildcard all read it.

Adding a method:

- a MACAW variant (an ablation, Meta-BC): one entry whose ``switch`` maps the ``macaw``
  section to the method's config (paper Fig. 4 left / center, Section 5);
- a baseline with hyperparameters of its own: its module, with a learner class built as
  ``Learner(obs_dim, act_dim, n_train_tasks, config, seed=seed)`` (the
  :class:`macaw.algos.base.MetaLearner` protocol) and a config dataclass, then one entry here
  naming both and its section: :class:`macaw.meta_train.MetaTrainConfig` gets the section
  from this table (``python -m macaw.schema --write`` then regenerates the checked-in
  schema and ``config/README.md``).

Importing this module imports no torch (the CLI's ``--help`` and the workflow read it); a
learner and its config class are imported when first used.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Callable

from typing import TYPE_CHECKING

from macaw.fields import QUALITY_WINDOWS

if TYPE_CHECKING:        # annotations only: the registry imports no torch
    from macaw.algos.base import BatchDemand, MetaLearner


@dataclass(frozen=True)
class MethodSpec:
    name: str
    label: str
    """Legend label of the figures and tables."""
    section: str
    """The config section of its hyperparameters: ``macaw``, ``pearl`` or ``mt_ft``."""
    switch: Callable | None = None
    """MACAW switch: (MACAWConfig, obs_dim, act_dim) -> MACAWConfig; None for baselines."""
    learner: str = "macaw.algos.macaw:MACAW"
    """``module:Class`` of the learner, imported only when one is built."""
    config: str = "macaw.algos.macaw:MACAWConfig"
    """``module:Class`` of the section's hyperparameter dataclass."""


def _nowt_params(base, obs_dim: int, act_dim: int):
    from macaw.nets.networks import equal_params_width, policy_net, value_net

    width = equal_params_width(
        lambda w, lat: (policy_net(obs_dim, act_dim, w, lat, base.n_hidden),
                        value_net(obs_dim, w, lat, base.n_hidden)), base.width, base.latent)
    return dataclasses.replace(base, latent=0, width=width)


def _load(path: str) -> type:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("macaw", "MACAW", "macaw", lambda c, o, a: c),
    MethodSpec("macaw_noadv", "MAML+AWR (no L_ADV)", "macaw",
               lambda c, o, a: dataclasses.replace(c, adv_loss=False)),
    MethodSpec("macaw_nowt_width", "No WT, equal width", "macaw",
               lambda c, o, a: dataclasses.replace(c, latent=0)),
    MethodSpec("macaw_nowt_params", "No WT, equal params", "macaw", _nowt_params),
    MethodSpec("meta_bc", "Meta-BC", "macaw",
               lambda c, o, a: dataclasses.replace(c, behaviour_cloning=True, adv_loss=False)),
    MethodSpec("pearl", "Offline PEARL", "pearl", learner="macaw.algos.pearl:PEARL",
               config="macaw.algos.pearl:PEARLConfig"),
    MethodSpec("mt_ft", "Offline MT+FT", "mt_ft", learner="macaw.algos.mt_ft:MTFT",
               config="macaw.algos.mt_ft:MTFTConfig"),
)}


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {tuple(METHODS)}")
    return METHODS[name]


def sections() -> dict[str, type]:
    """Every hyperparameter section and its dataclass (``macaw`` first), imported now."""
    return {spec.section: _load(spec.config) for spec in METHODS.values()}


def _section_names(specs) -> tuple[str, ...]:
    return tuple(dict.fromkeys(spec.section for spec in specs))


def baseline_sections() -> tuple[str, ...]:
    """The sections of the baselines (every one but ``macaw``, which the switches share)."""
    return _section_names(s for s in METHODS.values() if s.switch is None)


def config_class(section: str) -> type:
    """The hyperparameter dataclass of a config section (imported only when used)."""
    for spec in METHODS.values():
        if spec.section == section:
            return _load(spec.config)
    raise ValueError(f"unknown config section {section!r}; expected one of "
                     f"{_section_names(METHODS.values())}")


def method_config(name: str, base, obs_dim: int, act_dim: int):
    """The MACAW config of a MACAW-family method (its switch applied to ``base``)."""
    spec = get_method(name)
    if spec.switch is None:
        raise ValueError(f"method {name!r} is not a MACAW switch")
    return spec.switch(base, obs_dim, act_dim)


def build(cfg, obs_dim: int, act_dim: int, n_train_tasks: int) -> MetaLearner:
    """The learner of ``cfg.method`` (:class:`macaw.meta_train.MetaTrainConfig`)."""
    spec = get_method(cfg.method)
    learner = _load(spec.learner)
    if spec.switch is not None:
        return learner(obs_dim, act_dim, method_config(spec.name, cfg.macaw, obs_dim, act_dim),
                       seed=cfg.seed)
    hyper = config_class(spec.section)(**getattr(cfg, spec.section))
    return learner(obs_dim, act_dim, n_train_tasks, hyper, seed=cfg.seed)


def batch_demand(cfg) -> BatchDemand:
    """What a training step of ``cfg.method`` draws from each task: its learner's
    ``batch_demand`` of the run config ``cfg`` (:class:`macaw.meta_train.MetaTrainConfig`) and
    the method's section of it."""
    spec = get_method(cfg.method)
    return _load(spec.learner).batch_demand(cfg, getattr(cfg, spec.section))


def run_method_pattern() -> str:
    """Regex of a run directory's method, with an optional quality suffix (Snakemake)."""
    names = "|".join(sorted(METHODS, key=len, reverse=True))
    return rf"({names})(-{'|-'.join(QUALITY_WINDOWS)})?"


def labels() -> dict[str, str]:
    return {name: spec.label for name, spec in METHODS.items()}


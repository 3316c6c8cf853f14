"""The method registry: every method's name, display label, hyperparameter section and
builder in one place. The training loop, the CLI's ``--method`` choices and the workflow's
labels and wildcard read it; adding a method is one entry here plus its module.

MACAW's ablations and Meta-BC are switches of MACAW (paper Fig. 4 left / center, Section 5):
``switch`` maps the ``macaw`` section to the method's config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from macaw.algos.base import MetaLearner


@dataclass(frozen=True)
class MethodSpec:
    name: str
    label: str
    """Legend label of the figures and tables."""
    section: str
    """The config section of its hyperparameters: ``macaw``, ``pearl`` or ``mt_ft``."""
    switch: Callable | None = None
    """MACAW switch: (MACAWConfig, obs_dim, act_dim) -> MACAWConfig; None for baselines."""


def _nowt_params(base, obs_dim: int, act_dim: int):
    from macaw.nets.networks import equal_params_width

    width = equal_params_width(obs_dim, act_dim, base.width, base.latent, base.n_hidden)
    return dataclasses.replace(base, latent=0, width=width)


METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("macaw", "MACAW", "macaw", lambda c, o, a: c),
    MethodSpec("macaw_noadv", "MAML+AWR (no L_ADV)", "macaw",
               lambda c, o, a: dataclasses.replace(c, adv_loss=False)),
    MethodSpec("macaw_nowt_width", "No WT, equal width", "macaw",
               lambda c, o, a: dataclasses.replace(c, latent=0)),
    MethodSpec("macaw_nowt_params", "No WT, equal params", "macaw", _nowt_params),
    MethodSpec("meta_bc", "Meta-BC", "macaw",
               lambda c, o, a: dataclasses.replace(c, behaviour_cloning=True, adv_loss=False)),
    MethodSpec("pearl", "Offline PEARL", "pearl"),
    MethodSpec("mt_ft", "Offline MT+FT", "mt_ft"),
)}
QUALITY_SUFFIXES = ("bad", "medium", "good")
"""A run directory's method may carry ``-bad`` / ``-medium`` / ``-good``: Fig. 4 left's
adaptation window."""


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {tuple(METHODS)}")
    return METHODS[name]


def config_class(section: str) -> type:
    """The hyperparameter dataclass of a config section (imported only when used)."""
    if section == "macaw":
        from macaw.algos.macaw import MACAWConfig
        return MACAWConfig
    if section == "pearl":
        from macaw.algos.pearl import PEARLConfig
        return PEARLConfig
    if section == "mt_ft":
        from macaw.algos.mt_ft import MTFTConfig
        return MTFTConfig
    raise ValueError(f"unknown config section {section!r}")


def method_config(name: str, base, obs_dim: int, act_dim: int):
    """The MACAW config of a MACAW-family method (its switch applied to ``base``)."""
    spec = get_method(name)
    if spec.switch is None:
        raise ValueError(f"method {name!r} is not a MACAW switch")
    return spec.switch(base, obs_dim, act_dim)


def build(cfg, obs_dim: int, act_dim: int, n_train_tasks: int) -> MetaLearner:
    """The learner of ``cfg.method`` (:class:`macaw.meta_train.MetaTrainConfig`)."""
    spec = get_method(cfg.method)
    if spec.section == "macaw":
        from macaw.algos.macaw import MACAW
        return MACAW(obs_dim, act_dim, method_config(spec.name, cfg.macaw, obs_dim, act_dim),
                     seed=cfg.seed)
    hyper = config_class(spec.section)(**getattr(cfg, spec.section))
    if spec.section == "pearl":
        from macaw.algos.pearl import PEARL
        return PEARL(obs_dim, act_dim, n_train_tasks, hyper, seed=cfg.seed)
    from macaw.algos.mt_ft import MTFT
    return MTFT(obs_dim, act_dim, n_train_tasks, hyper, seed=cfg.seed)


def run_method_pattern() -> str:
    """Regex of a run directory's method, with an optional quality suffix (Snakemake)."""
    names = "|".join(sorted(METHODS, key=len, reverse=True))
    return rf"({names})(-{'|-'.join(QUALITY_SUFFIXES)})?"


def labels() -> dict[str, str]:
    return {name: spec.label for name, spec in METHODS.items()}


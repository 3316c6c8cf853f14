"""MACAW's policy (with its advantage head) and value networks (paper Fig. 2, docs/design.md §4).

Networks are described by :class:`MetaNet` (an ordered list of :class:`LayerSpec`) and
evaluated by pure functions of the layers' effective weights ``[(W, b), ...]`` — shared
``(out, in)`` weights, or per-task ``(T, out, in)`` ones with inputs ``(T, B, in)``.

- Value: ``obs -> h -> h -> h -> 1`` (ReLU).
- Policy: ``obs -> h -> h -> h -> act``, ReLU hidden, ``tanh`` mean, Gaussian with fixed std
  0.2. Advantage head: ``[last hidden layer (after its ReLU), action] -> 32 -> 1``, used only
  by the inner-loop loss (Eq. 3-4). The authors' code (``MLP.head_seq`` in ``src/nn.py``,
  docs/design.md §4.1) applies a ReLU to the concatenated ``[pre-activation, action]``, so its head
  reads the post-ReLU hidden state too; it also zeroes the negative action components, which we
  do not (the action enters as it is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from macaw.nets.layers import LayerSpec, Params, affine, effective_weights, init_layer

POLICY_STD = 0.2
ADVANTAGE_HIDDEN = 32
ADVANTAGE_HEAD = frozenset({"adv0", "adv1"})
"""Layer names of the policy's advantage head (inner-loop only)."""


@dataclass(frozen=True)
class MetaNet:
    """An ordered list of layers; ``kind`` is ``policy`` or ``value``."""

    kind: str
    layers: tuple[LayerSpec, ...]

    def init_params(self, seed: int, dtype: torch.dtype = torch.float32,
                    wt_init: str = "authors") -> Params:
        """Initial parameters (:func:`macaw.nets.layers.init_layer`; ``wt_init`` for WT layers)."""
        gen = torch.Generator().manual_seed(seed)
        params: Params = {}
        for spec in self.layers:
            params.update(init_layer(spec, gen, dtype, wt_init))
        return params

    def n_params(self) -> int:
        return sum(spec.n_params() for spec in self.layers)

    def weights(self, params: Params) -> list:
        """Each layer's effective ``(W, b)`` from the parameter dict ``params``
        (:func:`macaw.nets.layers.effective_weights`)."""
        return [effective_weights(spec, params) for spec in self.layers]


def _trunk(obs_dim: int, width: int, latent: int, n_hidden: int) -> list[LayerSpec]:
    sizes = [obs_dim] + [width] * n_hidden
    return [LayerSpec(f"l{i}", a, b, latent) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]


def value_net(obs_dim: int, width: int = 100, latent: int = 100, n_hidden: int = 3) -> MetaNet:
    """``latent=0`` gives plain linear layers (the "No WT" ablations)."""
    return MetaNet("value", (*_trunk(obs_dim, width, latent, n_hidden),
                             LayerSpec("out", width, 1, latent)))


def policy_net(obs_dim: int, act_dim: int, width: int = 100, latent: int = 100,
               n_hidden: int = 3) -> MetaNet:
    return MetaNet("policy", (*_trunk(obs_dim, width, latent, n_hidden),
                              LayerSpec("mean", width, act_dim, latent),
                              LayerSpec("adv0", width + act_dim, ADVANTAGE_HIDDEN, latent),
                              LayerSpec("adv1", ADVANTAGE_HIDDEN, 1, latent)))


Weights = list[tuple[torch.Tensor, torch.Tensor]]


def value_forward(weights: Weights, obs: torch.Tensor) -> torch.Tensor:
    """``V(s)`` with shape ``obs.shape[:-1]``."""
    x = obs
    for w, b in weights[:-1]:
        x = torch.relu(affine(x, w, b))
    return affine(x, *weights[-1]).squeeze(-1)


def policy_forward(weights: Weights, obs: torch.Tensor, actions: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean action ``tanh(...)`` and, if ``actions`` is given, the advantage head's output."""
    *trunk, mean_layer, adv0, adv1 = weights
    x = obs
    for w, b in trunk[:-1]:
        x = torch.relu(affine(x, w, b))
    hidden = torch.relu(affine(x, *trunk[-1]))
    mean = torch.tanh(affine(hidden, *mean_layer))
    if actions is None:
        return mean, None
    h = torch.relu(affine(torch.cat([hidden, actions], dim=-1), *adv0))
    return mean, affine(h, *adv1).squeeze(-1)


def gaussian_log_prob(mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``log N(a; mean, 0.2^2 I)`` summed over action dims (fixed-variance policy)."""
    var = POLICY_STD ** 2
    return (-0.5 / var * (actions - mean).pow(2)).sum(-1) \
        - 0.5 * mean.shape[-1] * math.log(2 * math.pi * var)


def equal_params_width(nets: Callable[[int, int], Sequence[MetaNet]], width: int,
                       latent: int) -> int:
    """Hidden width ``w`` of the plain networks ``nets(w, 0)`` whose parameter count is
    closest to that of the WT networks ``nets(width, latent)`` (the "No WT, equal params"
    ablations: MACAW's policy + value pair, paper Fig. 4 center; the few-shot classifier,
    Fig. 6). ``nets(width, latent)`` builds the networks of one model."""
    def count(w: int, lat: int = 0) -> int:
        return sum(net.n_params() for net in nets(w, lat))

    return closest_width(count, count(width, latent), width)


def closest_width(count, target: int, start: int) -> int:
    """The width ``w >= start`` whose ``count(w)`` (increasing in ``w``) is closest to
    ``target`` (a parameter count), by bisection up to ``100 * start``."""
    lo, hi = start, start * 100
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    return min((lo, hi), key=lambda w: abs(count(w) - target))

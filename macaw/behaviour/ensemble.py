"""Batched ensembles: many independent MLPs evaluated as one batched matrix product.

Behaviour policies are trained per task (paper Section 5, Appendix C). On a CPU, training
40 small networks one after another wastes most of the time in Python and in tiny matrix
products. Here member ``m`` of an ensemble owns its own weights ``W[m]``; a forward pass is
``x[m] @ W[m] + b[m]`` for all members at once (``torch.baddbmm``). Members never share
parameters, and every loss is a *sum* over members of per-member means, so each member's
gradient is exactly the gradient it would get alone, and Adam (element-wise) keeps them
independent. Each member can draw its initial weights from its own generator (its task's), so
a member's weights do not depend on which other members share the ensemble.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """``n_members`` independent affine maps; input ``(M, B, in)`` -> output ``(M, B, out)``."""

    def __init__(self, n_members: int, in_features: int, out_features: int,
                 generators: Sequence[torch.Generator | None] | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_features))
        # Same initialisation as torch.nn.Linear, member by member, each member from its own
        # generator (None: torch's global one).
        bound = 1.0 / math.sqrt(in_features)
        for m, g in enumerate(generators or [None] * n_members):
            nn.init.uniform_(self.weight.data[m], -bound, bound, generator=g)
            nn.init.uniform_(self.bias.data[m], -bound, bound, generator=g)

    def forward(self, x: torch.Tensor, members: slice = slice(None)) -> torch.Tensor:
        """``members`` evaluates only those members (``x`` then has their count first)."""
        return torch.baddbmm(self.bias[members], x, self.weight[members])


class EnsembleMLP(nn.Module):
    """ReLU MLP with independent weights per member: ``(M, B, in)`` -> ``(M, B, out)``."""

    def __init__(self, n_members: int, in_features: int, hidden: Sequence[int], out_features: int,
                 generators: Sequence[torch.Generator | None] | None = None):
        super().__init__()
        sizes = [in_features, *hidden, out_features]
        self.layers = nn.ModuleList(
            EnsembleLinear(n_members, a, b, generators) for a, b in zip(sizes[:-1], sizes[1:])
        )

    def forward(self, x: torch.Tensor, members: slice = slice(None)) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x, members))
        return self.layers[-1](x, members)


def member_randn(shape: Sequence[int], generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """Standard normal noise of ``shape`` = ``(members, ...)``, member ``m``'s slice drawn from
    ``generators[m]``: a member's noise does not depend on the other members."""
    return torch.stack([torch.randn(tuple(shape[1:]), generator=g) for g in generators])


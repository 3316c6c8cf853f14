"""Plumbing the gradient learners share (MACAW and its variants, MT+FT): their parameter
dicts, their optimisers and their bootstrapped value targets."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from macaw.algos.losses import bootstrapped_returns
from macaw.data import Batch
from macaw.nets.layers import Params
from macaw.nets.networks import value_forward


# Parameter dicts are keyed "l0.z"; ParameterDict forbids dots, so its keys swap "." -> ":".
def param_dict(params: Params) -> nn.ParameterDict:
    """``params`` as a module's ``nn.ParameterDict`` (trainable, saved with the module)."""
    return nn.ParameterDict({k.replace(".", ":"): nn.Parameter(v) for k, v in params.items()})


def plain_params(store: nn.ParameterDict) -> Params:
    """A :func:`param_dict` back under the layers' own keys."""
    return {k.replace(":", "."): v for k, v in store.items()}


def adam(params: Iterable[torch.Tensor], lr: float) -> torch.optim.Adam:
    """Adam, fused (one kernel per step instead of a dozen passes over millions of parameters)
    where the parameters' device supports it."""
    params = list(params)
    fused = {"fused": True} if params[0].device.type in ("cpu", "cuda") else {}
    return torch.optim.Adam(params, lr=lr, **fused)


def value_targets(batch: Batch, tail_weights: list | None, tail_inputs: torch.Tensor,
                  bootstrap: bool) -> torch.Tensor:
    """``R_t + gamma^(T-t) V(x_T)`` with the value ``tail_weights`` read at ``tail_inputs``
    (the tails' inputs: observations, with a task code for MT+FT), a constant; ``R_t`` alone
    without bootstrapping or without a value."""
    if not bootstrap or tail_weights is None:
        return batch.mc_returns
    with torch.no_grad():
        tail = value_forward(tail_weights, tail_inputs)
    return bootstrapped_returns(batch.mc_returns, batch.tail_discounts, tail)

"""Parameter updates shared by the learners: a differentiable SGD step on a parameter dict
(MACAW's inner loop, the few-shot MAML of Fig. 6) and the Polyak average of target networks
(behaviour SAC/TD3, PEARL's target value)."""

from __future__ import annotations

import math

import torch
from torch import nn

from macaw.nets.layers import Params


def sgd_step(params: Params, lrs: dict[str, torch.Tensor], loss: torch.Tensor,
             create_graph: bool = True) -> Params:
    """``params - lrs * d loss / d params``, tensor by tensor (a tensor ``loss`` does not reach
    stays as it is). With ``create_graph`` the step is differentiable (meta-gradients flow
    through it); without, the result is a fresh leaf per tensor."""
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph,
                                allow_unused=True)
    if not create_graph:
        return {k: (v if g is None else v - lrs[k] * g).detach().requires_grad_()
                for (k, v), g in zip(params.items(), grads)}
    return {k: v if g is None else v - lrs[k] * g for (k, v), g in zip(params.items(), grads)}


def inverse_softplus(y: float) -> float:
    """``rho`` with ``softplus(rho) = y`` (learned rates and lambda are softplus of a logit)."""
    return math.log(math.expm1(y))


def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) * target + tau * source``, in place."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, tau)

"""MACAW's losses as pure functions of network outputs (paper Section 4, Eq. 1-4).

Inputs carry a batch dimension last: ``(B,)`` for one task or ``(T, B)`` for a batch of
tasks; every loss averages over the batch and returns one value per task.
"""

from __future__ import annotations

import torch


def value_loss(values: torch.Tensor, mc_returns: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ``mean (V(s) - R(s, a))^2``, regression onto Monte-Carlo returns."""
    return (values - mc_returns).pow(2).mean(-1)


def bootstrapped_returns(mc_returns: torch.Tensor, tail_discounts: torch.Tensor,
                         tail_values: torch.Tensor) -> torch.Tensor:
    """``R_t + gamma^(T-t) V(s_T)``: the Monte-Carlo return to the end of the episode plus the
    value of the state the time limit cut it at (docs/design.md §4.1; ``tail_discounts`` is 0 after
    a true termination)."""
    return mc_returns + tail_discounts * tail_values


def awr_weights(advantages: torch.Tensor, temperature: float = 1.0,
                max_weight: float = 20.0) -> torch.Tensor:
    """Eq. 1's weights ``min(exp(A_hat / T), max_weight)`` with ``A_hat`` the advantages
    normalised to zero mean and unit (unbiased) standard deviation over the batch.

    Clipping the *weight* at 20 follows the authors' code (``exp(clamp(A_hat, max=3))``,
    e^3 = 20.1) and Table 4's "max advantage clip 20". No gradient flows through them.
    """
    advantages = advantages.detach()
    mean = advantages.mean(-1, keepdim=True)
    std = advantages.std(-1, keepdim=True)
    normalised = (advantages - mean) / (std + 1e-8)
    return torch.exp(normalised / temperature).clamp(max=max_weight)


def awr_loss(log_probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 1: ``L_AWR = -mean w(s, a) log pi(a | s)``."""
    return -(weights * log_probs).mean(-1)


def advantage_loss(predicted: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Eq. 4: ``L_ADV = mean (A_theta(s, a) - (R - V_phi'(s)))^2``; targets are constants."""
    return (predicted - advantages.detach()).pow(2).mean(-1)

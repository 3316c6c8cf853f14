"""MACAW meta-learner: adaptation, the meta-training objective, two implementations of it.

Algorithm 1 of the paper. For each task of a meta-batch, with an inner batch ``D_tr`` and a
disjoint outer batch ``D_ts``:

1. ``phi' = phi - eta * grad L_V(phi, D_tr)``                          (Eq. 2)
2. ``theta' = theta - alpha * grad [L_AWR + lambda L_ADV](theta, phi', D_tr)``   (Eq. 3)
3. outer losses ``L_V(phi', D_ts)`` and ``L_AWR(theta', phi', D_ts)``, summed over tasks,
   differentiated through the inner steps (full second order).

``eta`` and ``alpha`` are one learned rate per parameter tensor (``softplus(rho)``); lambda is
``softplus(rho_lambda)``, always positive, learned with the rates unless ``learn_adv_coef`` is
off. With ``inner_steps = n > 1`` the value takes its n steps first (``inner_value_steps``
if set), then the policy takes n steps against the adapted value (as at meta-test,
Algorithm 2). AWR weights and advantage targets are constants (no gradient into the value).

Where the paper is silent this follows the authors' code (docs/design.md §4.1, ``src/macaw.py``):

- **Bootstrapped advantages** (``bootstrap``). Every advantage the policy sees (inner, outer,
  meta-test: the AWR weights and the L_ADV target) is ``R_t + gamma^(T-t) V'(s_T) - V'(s_t)``
  with the adapted value ``V'``, ``s_T`` the last state of the transition's 200-step episode.
  The inner value loss (Eq. 2) regresses on the plain ``R_t`` (their ``no_bootstrap: true``
  applies to inner losses only); the outer value loss regresses on
  ``R_t + gamma^(T-t) Vbar(s_T)``, ``Vbar`` a fresh copy of the value meta-parameters moved
  towards the adapted value after each inner step, ``Vbar <- (1-tau) Vbar + tau V'`` with
  ``tau = value_target_tau`` (0.1; their ``target_vf_alpha`` is ``1 - tau`` = 0.9). The observations carry no time
  index, so without the tail a return to a fixed horizon is largely time-to-go noise to the
  value net. We average the *effective* weights of ``Vbar`` and ``V'``; the authors average the
  raw WT parameters, which differs only by a term second order in the inner rates.
- **lambda = softplus(rho_lambda)** in the learned-rate optimiser (their ``_adv_coef`` with
  its own Adam at ``lrlr``); ``rho_lambda`` starts at ``softplus^-1(adv_coef)`` so lambda
  starts at exactly ``adv_coef`` (theirs at ``log(1 + adv_coef)``, 0.00995 for 0.01).
- **WT initialisation** (``wt_init``): :func:`macaw.nets.layers.init_layer`.

:func:`meta_loss_reference` is the straightforward per-task loop of the authors' code (each
adapted parameter tensor materialised). :func:`meta_loss` is the fast one: all tasks at once,
adapting *effective* weights in closed form (:func:`macaw.nets.layers.adapt_state`), so no
per-task copy of a weight-transform matrix is ever built. Both compute the same function;
the tests check their gradients agree in float64.
"""

from __future__ import annotations

import math
from typing import Callable, ClassVar, Literal, NamedTuple

import numpy as np
import torch
from torch import nn

from macaw.algos.base import BatchDemand, MetaBatchShape
from macaw.algos.common import adam, param_dict, plain_params, value_targets
from macaw.algos.losses import advantage_loss, awr_loss, awr_weights, value_loss
from macaw.data import Batch, MetaBatch, TaskData, sample_meta_batch
from macaw.fields import (NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt,
                          UnitFraction, config_class)
from macaw.nets.layers import (WT_INITS, LayerState, Params, adapt_state, initial_state,
                               state_weights)
from macaw.nets.networks import (ADVANTAGE_HEAD, POLICY_STD, MetaNet, gaussian_log_prob,
                                 policy_forward, policy_net, value_forward, value_net)
from macaw.nets.optim import inverse_softplus, sgd_step


@config_class
class MACAWConfig:
    """Hyperparameters of MACAW (paper Table 4, standard configuration)."""

    width: PositiveInt = 100
    """Hidden units per layer."""
    latent: NonNegativeInt = 100
    """Weight-transform latent size; 0 gives plain linear layers ("No WT")."""
    n_hidden: PositiveInt = 3
    """Hidden layers of policy and value."""
    adv_loss: bool = True
    """Add the advantage-regression loss to the inner policy loss (off: MAML+AWR)."""
    adv_coef: PositiveFloat = 1e-2
    """Initial lambda of Eq. 3 (lambda = softplus(rho_lambda), always positive)."""
    learn_adv_coef: bool = True
    """Learn lambda in the outer loop with the inner rates (authors' code) or keep it fixed."""
    wt_init: Literal[WT_INITS] = "authors"
    """WT layer initialisation: ``authors`` (z ~ N(0, 1/out^2), their WLinear) or ``uniform``
    (z ~ U(-1, 1), our earlier choice; the ablation)."""
    bootstrap: bool = True
    """Bootstrap the policy's advantages and the outer value target at the episode's time
    limit, as the authors' code (off: plain Monte-Carlo returns everywhere; the ablation)."""
    value_target_tau: UnitFraction = 0.1
    """Weight of the adapted (new) value in the outer value target's per-step Polyak average,
    the sense of every ``tau`` here (PEARL's, the behaviour agents'); the authors'
    ``target_vf_alpha: 0.9`` is the old value's weight, ``1 - tau``."""
    inner_lr: PositiveFloat = 1e-3
    """Initial inner learning rate of every parameter tensor (learned)."""
    inner_value_lr: PositiveFloat | None = None
    """Initial inner rate of the value tensors; None: ``inner_lr`` (Table 4, Meta-World: 1e-4)."""
    inner_policy_lr: PositiveFloat | None = None
    """Initial inner rate of the policy tensors; None: ``inner_lr`` (Table 4, Meta-World: 1e-2)."""
    online_value_lr: PositiveFloat = 1e-4
    """Adam rate of the value during online fine-tuning (Table 1; not given for MACAW in the
    paper, Table 3's value fine-tuning rate)."""
    online_policy_lr: PositiveFloat = 1e-4
    """Adam rate of the policy during online fine-tuning (not given for MACAW in the paper)."""
    lr_lr: NonNegativeFloat = 1e-3
    """Adam rate of the learned inner learning rates."""
    outer_value_lr: NonNegativeFloat = 1e-5
    """Adam rate of the value meta-parameters."""
    outer_policy_lr: NonNegativeFloat = 1e-4
    """Adam rate of the policy meta-parameters (and lambda)."""
    inner_steps: PositiveInt = 1
    """Gradient steps of adaptation (value, then policy)."""
    inner_value_steps: PositiveInt | None = None
    """Value steps of adaptation; None: ``inner_steps`` (Algorithm 2). A learned value rate is
    tuned for the steps it was trained with, and repeating it can diverge
    (docs/results/cheetah_vel_steps/); 1 with ``inner_steps`` > 1 repeats only the policy step."""
    temperature: PositiveFloat = 1.0
    """AWR temperature T."""
    max_weight: PositiveFloat = 20.0
    """Clip of the AWR weights."""
    behaviour_cloning: bool = False
    """Meta-BC: behaviour-cloning likelihood in both loops instead of AWR (every weight 1,
    no value function, no L_ADV). Same adaptation code as MACAW."""

    RENAMED: ClassVar[dict[str, str]] = {
        "finetune_value_lr": "online_value_lr", "finetune_policy_lr": "online_policy_lr",
        "value_target_polyak": "value_target_tau, the new value's weight; "
                               "value_target_polyak: 0.9 is value_target_tau: 0.1"}
    """Old field name -> its new name (:func:`macaw.fields.parse_config` names it)."""


class MACAW(nn.Module):
    """Meta-parameters: value ``phi``, policy ``theta``, inner-rate logits ``rho``, lambda."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: MACAWConfig, seed: int = 0,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.cfg = cfg
        self.value_net = value_net(obs_dim, cfg.width, cfg.latent, cfg.n_hidden)
        self.policy_net = policy_net(obs_dim, act_dim, cfg.width, cfg.latent, cfg.n_hidden)
        self.value = param_dict(self.value_net.init_params(seed, dtype, cfg.wt_init))
        self.policy = param_dict(self.policy_net.init_params(seed + 1, dtype, cfg.wt_init))
        value_rho0, policy_rho0 = (
            inverse_softplus(cfg.inner_lr if lr is None else lr)
            for lr in (cfg.inner_value_lr, cfg.inner_policy_lr))
        self.value_rho = nn.ParameterDict(
            {k: nn.Parameter(torch.tensor(value_rho0, dtype=dtype)) for k in self.value})
        self.policy_rho = nn.ParameterDict(
            {k: nn.Parameter(torch.tensor(policy_rho0, dtype=dtype)) for k in self.policy})
        if cfg.adv_coef <= 0:
            raise ValueError(f"MACAWConfig: adv_coef {cfg.adv_coef}; lambda = softplus(rho) "
                             "is positive, so its initial value must be > 0 (adv_loss: false "
                             "turns the term off)")
        self.adv_coef_rho = nn.Parameter(
            torch.tensor(inverse_softplus(cfg.adv_coef), dtype=dtype),
            requires_grad=cfg.learn_adv_coef and cfg.adv_loss)
        if cfg.behaviour_cloning and cfg.adv_loss:
            raise ValueError("MACAWConfig: behaviour_cloning needs adv_loss=False "
                             "(Meta-BC has no advantage head loss)")
        if cfg.wt_init not in WT_INITS:
            raise ValueError(f"MACAWConfig: wt_init {cfg.wt_init!r}; expected one of {WT_INITS}")
        if not 0.0 < cfg.value_target_tau <= 1.0:
            raise ValueError(f"MACAWConfig: value_target_tau {cfg.value_target_tau}; "
                             "expected a number in (0, 1]")

    @property
    def adv_coef(self) -> torch.Tensor:
        """lambda of Eq. 3, ``softplus(rho_lambda)`` (docs/design.md §4.1)."""
        return nn.functional.softplus(self.adv_coef_rho)

    @staticmethod
    def batch_demand(data: MetaBatchShape, section: object = None) -> BatchDemand:
        """A contiguous inner batch and a disjoint outer batch per task (Algorithm 1)."""
        return BatchDemand(data.tasks_per_batch, data.inner_batch, data.outer_batch, True)

    def train_step(self, optimizers: dict[str, torch.optim.Optimizer], tasks: list[TaskData],
                   data: MetaBatchShape, rng: np.random.Generator) -> dict[str, float]:
        """One meta-step on a freshly sampled meta-batch of ``tasks``."""
        batch = sample_meta_batch(tasks, data.tasks_per_batch, data.inner_batch,
                                  data.outer_batch, rng)
        return meta_step(self, optimizers, batch)

    def adapt_policies(self, batch: Batch) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """Algorithm 2: adapt on each task's batch ``(T, B, ...)``; one deterministic policy
        (the mean action) per task."""
        with torch.enable_grad():
            p_weights = adapt(self, batch, self.cfg.inner_steps).policy
        policies = []
        for k in range(batch.observations.shape[0]):
            # Layers that were not adapted (an unused head) still hold the shared weights.
            weights = [(w[k].detach(), b[k].detach()) if w.dim() == 3
                       else (w.detach(), b.detach()) for w, b in p_weights]
            policies.append(lambda obs, weights=weights: policy_forward(weights, obs)[0])
        return policies

    def unadapted_policy(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The meta-policy before adaptation (the baseline of the adaptation gain)."""
        weights = [(w.detach(), b.detach())
                   for w, b in self.policy_net.weights(self.params("policy"))]
        return lambda obs: policy_forward(weights, obs)[0]

    def inner_rate_summary(self) -> dict[str, float]:
        """Mean learned inner rate of the value and of the policy tensors, and lambda."""
        with torch.no_grad():
            out = {f"{w}_inner_lr": float(torch.stack(list(self.inner_lrs(w).values())).mean())
                   for w in ("value", "policy")}
            out["adv_coef"] = float(self.adv_coef)
        return out

    def adaptation_stats(self, tasks: list[TaskData], data: MetaBatchShape,
                         rng: np.random.Generator) -> dict[str, float]:
        """What limits the single adaptation step (``train.csv``): the mean learned inner
        rates, lambda, and on a fresh meta-batch the value loss on the outer (held-out)
        transitions before and after the inner step."""
        batch = sample_meta_batch(tasks, data.tasks_per_batch, data.inner_batch,
                                  data.outer_batch, rng)
        adapted = None
        if not self.cfg.behaviour_cloning:       # one inner loop serves both statistics
            with torch.enable_grad():
                adapted = adapt(self, batch.inner, self.cfg.inner_steps)
        before, after = held_out_value_losses(self, batch, adapted)
        return {**self.inner_rate_summary(), "heldout_value_loss_before": before,
                "heldout_value_loss_after": after,
                **advantage_weight_summary(self, batch, adapted)}

    def online_agent(self, context: Batch) -> "MACAWOnlineAgent":
        """Online fine-tuning on one test task (paper C.2), starting from ``context`` (B, ...)."""
        return MACAWOnlineAgent(self, context)

    def params(self, which: str) -> Params:
        return plain_params(getattr(self, which))

    def inner_lrs(self, which: str) -> dict[str, torch.Tensor]:
        rho = self.value_rho if which == "value" else self.policy_rho
        return {k: nn.functional.softplus(v) for k, v in plain_params(rho).items()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        # lambda's logit trains with the inner rates, as the authors' own Adam at lrlr does.
        rates = [*self.value_rho.values(), *self.policy_rho.values()]
        if self.adv_coef_rho.requires_grad:
            rates.append(self.adv_coef_rho)
        return {
            "value": adam(self.value.values(), self.cfg.outer_value_lr),
            "policy": adam(self.policy.values(), self.cfg.outer_policy_lr),
            "lr": adam(rates, self.cfg.lr_lr),
        }


# ----------------------------------------------------------------------------- fast path

def _batched_grad_step(net: MetaNet, params: Params, lrs: dict[str, torch.Tensor],
                       states: list[LayerState], n_tasks: int, loss_fn,
                       skip: frozenset[str] = frozenset(), last: bool = False,
                       ) -> list[LayerState]:
    """One inner step for all tasks: per-task gradients w.r.t. each layer's effective
    weights (one backward pass), then the closed-form update of :func:`adapt_state` for
    every layer not named in ``skip`` (layers whose adapted weights nobody reads)."""
    flats = [s.flat if s.flat.dim() == 2 else s.flat.expand(n_tasks, -1) for s in states]
    weights = [state_weights(spec, s._replace(flat=f))
               for spec, s, f in zip(net.layers, states, flats)]
    loss = loss_fn(weights).sum()
    # allow_unused: without L_ADV the advantage head gets no gradient and stays as it is.
    grads = torch.autograd.grad(loss, flats, create_graph=True, allow_unused=True)
    return [s if g is None or spec.name in skip
            else adapt_state(spec, params, s._replace(flat=f), lrs, g, last)
            for spec, s, f, g in zip(net.layers, states, flats, grads)]


class Adapted(NamedTuple):
    """Per-task effective weights ``[(W, b), ...]`` after the inner loop: the adapted value and
    policy, and ``value_target`` (the Polyak-averaged value of the outer value target; None
    without bootstrapping or for Meta-BC)."""

    value: list
    policy: list
    value_target: list | None


def policy_advantages(cfg: MACAWConfig, v_weights: list, batch: Batch) -> torch.Tensor:
    """Advantages of the batch's actions under the (adapted) value, constants: with
    ``bootstrap`` ``R_t + gamma^(T-t) V(s_T) - V(s_t)`` (the authors' code), else
    ``R_t - V(s_t)``."""
    with torch.no_grad():
        values = value_forward(v_weights, batch.observations)
        return _targets(cfg, batch, v_weights) - values


def _targets(cfg: MACAWConfig, batch: Batch, tail_weights: list | None) -> torch.Tensor:
    """``R_t + gamma^(T-t) V(s_T)`` with the value ``tail_weights`` (no gradient), or ``R_t``."""
    return value_targets(batch, tail_weights, batch.tail_observations, cfg.bootstrap)


def polyak(cfg: MACAWConfig, target: list, weights: list) -> list:
    """``(1 - tau) * target + tau * weights`` layer by layer, detached (the value target)."""
    keep, tau = 1 - cfg.value_target_tau, cfg.value_target_tau
    return [(keep * tw + tau * w.detach(), keep * tb + tau * b.detach())
            for (tw, tb), (w, b) in zip(target, weights)]


def policy_inner_loss(model: MACAW, batch: Batch, v_weights: list,
                      adv_coef: torch.Tensor | None = None):
    """Eq. 3 (Meta-BC: the behaviour-cloning NLL, every weight 1) as a function of the
    policy's weights, with the advantages of ``batch`` under the (adapted) value ``v_weights``
    (unread by Meta-BC) and L_ADV's weight ``adv_coef`` (default: the learned lambda). The
    inner loops and online fine-tuning all take their policy steps on it."""
    cfg = model.cfg
    if cfg.behaviour_cloning:
        advantages, weights_awr = None, torch.ones_like(batch.mc_returns)
    else:
        advantages = policy_advantages(cfg, v_weights, batch)
        weights_awr = awr_weights(advantages, cfg.temperature, cfg.max_weight)
    coef = model.adv_coef if adv_coef is None else adv_coef

    def loss_fn(w):
        mean, adv_pred = policy_forward(w, batch.observations,
                                        batch.actions if cfg.adv_loss else None)
        loss = awr_loss(gaussian_log_prob(mean, batch.actions), weights_awr)
        if cfg.adv_loss:
            loss = loss + coef * advantage_loss(adv_pred, advantages)
        return loss
    return loss_fn


def value_steps(cfg: MACAWConfig, n_steps: int) -> int:
    """The value's steps of an ``n_steps`` adaptation: ``inner_value_steps``, else ``n_steps``."""
    return n_steps if cfg.inner_value_steps is None else cfg.inner_value_steps


def adapt(model: MACAW, batch: Batch, n_steps: int) -> Adapted:
    """Adapted value and policy effective weights for each task (Algorithm 2 / inner loop of
    Algorithm 1) on ``batch`` ``(T, B, ...)``."""
    cfg, n_tasks = model.cfg, batch.observations.shape[0]
    obs, returns = batch.observations, batch.mc_returns
    v_params, p_params = model.params("value"), model.params("policy")
    v_target = None
    v_weights = []
    if not cfg.behaviour_cloning:
        v_states = [initial_state(s, v_params) for s in model.value_net.layers]
        if cfg.bootstrap:      # the outer value target; unused without bootstrapping
            v_target = [(w.detach(), b.detach()) for w, b in model.value_net.weights(v_params)]
        v_steps = value_steps(cfg, n_steps)
        for step in range(v_steps):
            # Eq. 2 on the plain Monte-Carlo return (the authors' no_bootstrap, inner only).
            v_states = _batched_grad_step(
                model.value_net, v_params, model.inner_lrs("value"), v_states, n_tasks,
                lambda w: value_loss(value_forward(w, obs), returns), last=step == v_steps - 1)
            v_weights = [state_weights(s, st) for s, st in zip(model.value_net.layers, v_states)]
            if cfg.bootstrap:
                v_target = polyak(cfg, v_target, v_weights)

    loss_fn = policy_inner_loss(model, batch, v_weights)
    p_states = [initial_state(s, p_params) for s in model.policy_net.layers]
    for step in range(n_steps):
        # After the last step only the trunk and mean are read (outer loss, rollouts).
        skip = ADVANTAGE_HEAD if step == n_steps - 1 else frozenset()
        p_states = _batched_grad_step(model.policy_net, p_params, model.inner_lrs("policy"),
                                      p_states, n_tasks, loss_fn, skip,
                                      last=step == n_steps - 1)
    p_weights = [state_weights(s, st) for s, st in zip(model.policy_net.layers, p_states)]
    return Adapted(v_weights, p_weights, v_target)


def outer_losses(cfg: MACAWConfig, adapted: Adapted, batch: Batch,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task outer losses ``L_V(phi', D_ts)`` (onto ``R_t + gamma^(T-t) Vbar(s_T)`` with
    bootstrapping) and ``L_AWR(theta', phi', D_ts)`` (Meta-BC: no value loss and every weight
    1, i.e. the behaviour-cloning NLL)."""
    obs, actions, returns = batch.observations, batch.actions, batch.mc_returns
    mean, _ = policy_forward(adapted.policy, obs)
    if cfg.behaviour_cloning:
        return (returns.new_zeros(returns.shape[:-1]),
                awr_loss(gaussian_log_prob(mean, actions), torch.ones_like(returns)))
    values = value_forward(adapted.value, obs)
    target = _targets(cfg, batch, adapted.value_target)
    weights = awr_weights(policy_advantages(cfg, adapted.value, batch), cfg.temperature,
                          cfg.max_weight)
    return value_loss(values, target), awr_loss(gaussian_log_prob(mean, actions), weights)


def meta_loss(model: MACAW, batch: MetaBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Outer value and policy losses summed over the tasks of ``batch`` (fast path)."""
    adapted = adapt(model, batch.inner, model.cfg.inner_steps)
    lv, lp = outer_losses(model.cfg, adapted, batch.outer)
    return lv.sum(), lp.sum()


def held_out_value_losses(model: MACAW, batch: MetaBatch, adapted: Adapted | None,
                          ) -> tuple[float, float]:
    """Diagnostic: the mean over tasks of the value loss on the outer (held-out) transitions
    before and after the inner step, both against the same target (the outer value target).
    ``adapted``: the inner loop's result on ``batch.inner`` (None for Meta-BC, which has no
    value: NaN)."""
    cfg = model.cfg
    if cfg.behaviour_cloning:
        return math.nan, math.nan
    with torch.no_grad():
        target = _targets(cfg, batch.outer, adapted.value_target)
        before = value_loss(value_forward(model.value_net.weights(model.params("value")),
                                          batch.outer.observations), target)
        after = value_loss(value_forward(adapted.value, batch.outer.observations), target)
    return float(before.mean()), float(after.mean())


def effective_sample_size(weights: torch.Tensor) -> torch.Tensor:
    """``(sum w)^2 / sum w^2 / B`` over the last axis: 1 for uniform weights, ``1/B`` when one
    sample carries them all (Kish's effective sample size, as a fraction of the batch)."""
    return weights.sum(-1) ** 2 / (weights ** 2).sum(-1) / weights.shape[-1]


def advantage_weight_summary(model: MACAW, batch: MetaBatch, adapted: Adapted | None,
                             ) -> dict[str, float]:
    """Diagnostic: does the value carry signal into AWR's weights? The mean over tasks of the
    variance of the outer value target (the scale that the held-out value loss is measured
    against: a value that predicts nothing has a loss of about this) and the effective
    sample size (:func:`effective_sample_size`) of the normalised, clipped weights of the
    inner and the outer policy loss."""
    cfg = model.cfg
    if cfg.behaviour_cloning:
        return {"heldout_target_var": math.nan, "inner_weight_ess": math.nan,
                "outer_weight_ess": math.nan}
    with torch.no_grad():
        target = _targets(cfg, batch.outer, adapted.value_target)
        # both policy losses weigh by the adapted value's advantages (Algorithm 1)
        inner = awr_weights(policy_advantages(cfg, adapted.value, batch.inner),
                            cfg.temperature, cfg.max_weight)
        outer = awr_weights(policy_advantages(cfg, adapted.value, batch.outer),
                            cfg.temperature, cfg.max_weight)
    return {"heldout_target_var": float(target.var(-1).mean()),          # (tasks, batch)
            "inner_weight_ess": float(effective_sample_size(inner).mean()),
            "outer_weight_ess": float(effective_sample_size(outer).mean())}


# ------------------------------------------------------------------------ reference path

def adapt_params(model: MACAW, batch: Batch, n_steps: int, phi: Params, theta: Params,
                 create_graph: bool = True) -> tuple[Params, Params, list | None]:
    """One task's inner loop on full parameter dicts (``batch`` of shape ``(B, ...)``):
    ``n_steps`` (``inner_value_steps`` if set) SGD steps of Eq. 2 on the value ``phi``, then
    ``n_steps`` of Eq. 3 on the policy ``theta`` against the adapted value (the reference path,
    and online fine-tuning with ``create_graph=False``). Also returns the outer value target's
    effective weights."""
    cfg = model.cfg
    v_target = None
    if not cfg.behaviour_cloning:
        if cfg.bootstrap:
            v_target = [(w.detach(), b.detach()) for w, b in model.value_net.weights(phi)]
        for _ in range(value_steps(cfg, n_steps)):
            phi = sgd_step(phi, model.inner_lrs("value"), value_loss(
                value_forward(model.value_net.weights(phi), batch.observations),
                batch.mc_returns), create_graph)
            if cfg.bootstrap:
                v_target = polyak(cfg, v_target, model.value_net.weights(phi))
    loss_fn = policy_inner_loss(model, batch,
                                [] if cfg.behaviour_cloning else model.value_net.weights(phi))
    for _ in range(n_steps):
        theta = sgd_step(theta, model.inner_lrs("policy"),
                          loss_fn(model.policy_net.weights(theta)), create_graph)
    return phi, theta, v_target


def _task(batch: Batch, t: int) -> Batch:
    return Batch(*(x[t] for x in batch))


def meta_loss_reference(model: MACAW, batch: MetaBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The same objective as :func:`meta_loss`, task by task, every adapted parameter tensor
    (including each ``wt_weight``) materialised, as in the authors' implementation."""
    cfg = model.cfg
    total_v = total_p = 0.0
    for t in range(batch.inner.observations.shape[0]):
        phi, theta, v_target = adapt_params(model, _task(batch.inner, t), cfg.inner_steps,
                                            model.params("value"), model.params("policy"))
        adapted = Adapted(model.value_net.weights(phi), model.policy_net.weights(theta),
                          v_target)
        lv, lp = outer_losses(cfg, adapted, _task(batch.outer, t))
        total_v, total_p = total_v + lv, total_p + lp
    return total_v, total_p


def meta_step(model: MACAW, optimizers: dict[str, torch.optim.Optimizer], batch: MetaBatch,
              reference: bool = False) -> dict[str, float]:
    """One meta-training step (Algorithm 1, lines 5-10): losses, backward, optimiser steps."""
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    lv, lp = (meta_loss_reference if reference else meta_loss)(model, batch)
    (lv + lp).backward()
    for opt in optimizers.values():
        opt.step()
    n = batch.inner.observations.shape[0]
    return {"value_loss": lv.item() / n, "policy_loss": lp.item() / n,
            "adv_coef": model.adv_coef.item()}


class MACAWOnlineAgent:
    """MACAW with online fine-tuning (paper Appendix C.2, Table 1) on one task.

    Starts with the offline adaptation of Algorithm 2 on the context batch (``inner_steps``
    steps of Eq. 2 then Eq. 3 with the learned inner rates), then each :meth:`update` is one
    Adam step of the same losses (Eq. 2 on the value; Eq. 3 on the policy, with advantages from
    the current value) on a batch of the growing buffer ("taking more steps of gradient descent
    on the MACAW losses"). The paper gives no fine-tuning rates for MACAW: plain SGD with the
    learned inner rates, meta-trained for one step, diverged within a few hundred steps at
    default scale, so Adam with ``online_value_lr`` / ``online_policy_lr`` is used. Works
    on its own copies of the parameters: the meta-trained model never changes.
    """

    def __init__(self, model: MACAW, context: Batch):
        self.model = model
        detached = {w: {k: v.detach().clone().requires_grad_() for k, v in model.params(w).items()}
                    for w in ("value", "policy")}
        self._set(*adapt_params(model, context, model.cfg.inner_steps, detached["value"],
                                detached["policy"], create_graph=False)[:2])
        self.optimizers = [
            torch.optim.Adam(self.phi.values(), lr=model.cfg.online_value_lr),
            torch.optim.Adam(self.theta.values(), lr=model.cfg.online_policy_lr)]

    def _set(self, phi: Params, theta: Params) -> None:
        self.phi, self.theta = phi, theta
        self._refresh()

    def _refresh(self) -> None:
        with torch.no_grad():          # effective weights once per update, not per env step
            self.policy_weights = self.model.policy_net.weights(self.theta)

    def losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 2 on the value (plain returns, as the inner loss) and Eq. 3 on the policy
        (advantages bootstrapped as in the inner loop), at the current parameters."""
        model = self.model
        v_weights = model.value_net.weights(self.phi)
        policy = policy_inner_loss(model, batch, v_weights, model.adv_coef.detach())
        return (value_loss(value_forward(v_weights, batch.observations), batch.mc_returns),
                policy(model.policy_net.weights(self.theta)))

    def update(self, batch: Batch) -> dict[str, float]:
        value, policy = self.losses(batch)
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        (value + policy).backward()
        for opt in self.optimizers:
            opt.step()
        self._refresh()
        return {"value_loss": value.item(), "policy_loss": policy.item()}

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The adapted policy's mean action (evaluation rollouts)."""
        with torch.no_grad():
            return policy_forward(self.policy_weights, obs)[0]

    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        """A sample of the fixed-std Gaussian policy, clipped to the action box (data
        collection)."""
        mean = self.act(obs)
        return (mean + POLICY_STD * torch.randn_like(mean)).clamp(-1.0, 1.0)

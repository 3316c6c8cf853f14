"""Offline multi-task training + fine-tuning (MT+FT): the paper's multi-task AWR baseline.

Paper Section 5 ("Offline MT+FT"), Table 3, docs/design.md §5. One policy and one value network
serve every training task; the task enters as a one-hot input appended to the observation:

    x = [s, e_k]  for training task k (index among the run's training tasks),
    x = [s, 0]    at meta-test (a test task is unseen, so it has no one-hot).

Meta-training (no inner loop): per step, ``tasks_per_batch`` training tasks, for each
``outer_batch`` transitions drawn uniformly from its outer window (the same data MACAW's outer
batches come from, :func:`macaw.data.sample_meta_batch`); value regression (Eq. 2) and AWR
(Eq. 1) with advantages from the value *before* this step's update, one Adam step on each
network. As in the authors' multi-task code (docs/design.md §4.1) both are bootstrapped at the time
limit (``bootstrap``): the value target is ``R_t + gamma^(T-t) V(x_T)`` and the advantage
``R_t + gamma^(T-t) V(x_T) - V(x_t)``, ``V`` the current value (a constant); fine-tuning does
the same with the copy being tuned. Losses are averaged over the
sampled tasks (the authors' code summed them and divided by the number of training tasks:
a constant factor, which Adam ignores).

Meta-test: copy both networks, then ``adapt_steps`` (20) rounds of one Adam step on the
value loss followed by one Adam step on the AWR loss whose advantages come from the value as
just updated -- interleaved, as in the authors' code (``eval_multitask``) -- all on the same
adaptation batch. The task's policy is the fine-tuned copy's mean action.

Networks follow the authors' multi-task configuration: plain linear layers (no weight
transform), ``width x n_hidden`` ReLU MLPs, ``tanh`` mean, fixed std 0.2, and no advantage
head (MT+FT has no L_ADV).
"""

from __future__ import annotations

from typing import Callable, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from macaw.algos.base import BatchDemand, MetaBatchShape
from macaw.algos.common import adam, param_dict, plain_params, value_targets
from macaw.algos.losses import awr_loss, awr_weights, value_loss
from macaw.data import Batch, TaskData, sample_meta_batch
from macaw.fields import NonNegativeInt, PositiveFloat, PositiveInt, config_class
from macaw.nets.layers import LayerSpec, Params, affine
from macaw.nets.networks import MetaNet, Weights, gaussian_log_prob, value_forward, value_net


@config_class
class MTFTConfig:
    """Hyperparameters of offline MT+FT (paper Table 3, standard configuration).

    Batch sizes are the run's: ``tasks_per_batch`` (5), ``outer_batch`` (256) for training and
    ``eval_batch`` (256) for fine-tuning (:class:`macaw.meta_train.MetaTrainConfig`)."""

    width: PositiveInt = 100
    """Hidden units per layer (Table 3: 100; Meta-World 300)."""
    n_hidden: PositiveInt = 3
    """Hidden layers of policy and value (Table 3: 3)."""
    value_lr: PositiveFloat = 1e-4
    """Adam rate of the value network in training (Table 3: 1e-4; walker 1e-5; Meta-World 1e-6)."""
    policy_lr: PositiveFloat = 1e-4
    """Adam rate of the policy network in training (Table 3: 1e-4)."""
    adapt_value_lr: PositiveFloat = 1e-4
    """Adam rate of the value copy at meta-test (Table 3: 1e-4; walker 1e-5; Meta-World 1e-6)."""
    adapt_policy_lr: PositiveFloat = 1e-3
    """Adam rate of the policy copy at meta-test (Table 3: 1e-3)."""
    adapt_steps: NonNegativeInt = 20
    """Adaptation rounds at meta-test, each one value step then one policy step (paper: 20; 0:
    the unadapted network)."""
    temperature: PositiveFloat = 1.0
    """AWR temperature T."""
    max_weight: PositiveFloat = 20.0
    """Clip of the AWR weights (Table 3: max advantage clip 20)."""
    bootstrap: bool = True
    """Bootstrap value targets and advantages at the episode's time limit (authors' code)."""

    RENAMED: ClassVar[dict[str, str]] = {
        "finetune_value_lr": "adapt_value_lr", "finetune_policy_lr": "adapt_policy_lr",
        "finetune_steps": "adapt_steps"}
    """Old field name -> its new name (:func:`macaw.fields.parse_config` names it)."""


# ------------------------------------------------------------------------------ networks

def policy_mean_net(in_dim: int, act_dim: int, width: int, n_hidden: int) -> MetaNet:
    """Plain MLP ``in -> width (x n_hidden) -> act``: the value net's trunk with a mean head."""
    trunk = value_net(in_dim, width, latent=0, n_hidden=n_hidden).layers[:-1]
    return MetaNet("policy", (*trunk, LayerSpec("mean", width, act_dim)))


def policy_mean(weights: Weights, x: torch.Tensor) -> torch.Tensor:
    """Mean action ``tanh(...)``; shared ``(out, in)`` or per-task ``(T, out, in)`` weights."""
    for w, b in weights[:-1]:
        x = torch.relu(affine(x, w, b))
    return torch.tanh(affine(x, *weights[-1]))


def task_inputs(obs: torch.Tensor, task_index: torch.Tensor | None, n_tasks: int) -> torch.Tensor:
    """``[obs, one-hot(task)]`` of size ``obs_dim + n_tasks``. ``obs`` is ``(T, B, obs_dim)``
    with ``task_index (T,)``, or any shape with ``task_index=None``: zeros (an unseen task)."""
    if task_index is None:
        code = obs.new_zeros(*obs.shape[:-1], n_tasks)
    else:
        one_hot = nn.functional.one_hot(task_index, n_tasks).to(obs.dtype)    # (T, n_tasks)
        code = one_hot.unsqueeze(-2).expand(*obs.shape[:-1], n_tasks)
    return torch.cat([obs, code], dim=-1)


# --------------------------------------------------------------------------------- losses

def multitask_losses(v_weights: Weights, p_weights: Weights, batch: Batch,
                     task_index: torch.Tensor | None, n_tasks: int, cfg: "MTFTConfig",
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task value loss (Eq. 2) and AWR loss (Eq. 1) on ``batch`` ``(T, B, ...)``; the
    advantages ``target - V(x)`` come from ``v_weights`` as constants. ``task_index`` None:
    the zero one-hot of an unseen task."""
    inputs = task_inputs(batch.observations, task_index, n_tasks)
    tail_inputs = task_inputs(batch.tail_observations, task_index, n_tasks)
    values = value_forward(v_weights, inputs)
    targets = value_targets(batch, v_weights, tail_inputs, cfg.bootstrap)
    weights = awr_weights(targets - values, cfg.temperature, cfg.max_weight)
    log_probs = gaussian_log_prob(policy_mean(p_weights, inputs), batch.actions)
    return value_loss(values, targets), awr_loss(log_probs, weights)


# ---------------------------------------------------------------------------- fine-tuning

class Adapted(NamedTuple):
    """Fine-tuned copies, one per task: parameter tensors with a leading task dim ``T``; the
    Adam optimisers that took the steps (their state counts them)."""

    value: Params
    policy: Params
    optimizers: dict[str, torch.optim.Optimizer]


def _per_task_copy(params: Params, n_tasks: int) -> Params:
    return {k: v.detach().expand(n_tasks, *v.shape).clone().requires_grad_()
            for k, v in params.items()}


def adapt(model: "MTFT", batch: Batch) -> Adapted:
    """Meta-test fine-tuning of fresh copies of ``model``'s networks on each task's batch
    ``(T, B, ...)``, task one-hot zero: ``adapt_steps`` rounds of one value Adam step (Eq. 2)
    then one policy Adam step (Eq. 1, advantages from the value as just updated).

    All T tasks are tuned at once: the copies are stacked along a leading task dim and the
    per-task losses summed, so each task's slice gets exactly its own gradient, and Adam
    (elementwise) takes exactly the steps it would take on that task alone."""
    cfg, n = model.cfg, model.n_tasks
    inputs = task_inputs(batch.observations, None, n)
    tail_inputs = task_inputs(batch.tail_observations, None, n)
    value = _per_task_copy(model.params("value"), inputs.shape[0])
    policy = _per_task_copy(model.params("policy"), inputs.shape[0])
    optimizers = {"value": torch.optim.Adam(value.values(), lr=cfg.adapt_value_lr),
                  "policy": torch.optim.Adam(policy.values(), lr=cfg.adapt_policy_lr)}
    for _ in range(cfg.adapt_steps):
        v_weights = model.value_net.weights(value)
        targets = value_targets(batch, v_weights, tail_inputs, cfg.bootstrap)
        optimizers["value"].zero_grad(set_to_none=True)
        value_loss(value_forward(v_weights, inputs), targets).sum().backward()
        optimizers["value"].step()

        with torch.no_grad():
            targets = value_targets(batch, v_weights, tail_inputs, cfg.bootstrap)
            advantages = targets - value_forward(v_weights, inputs)
        weights = awr_weights(advantages, cfg.temperature, cfg.max_weight)
        log_probs = gaussian_log_prob(policy_mean(model.policy_net.weights(policy), inputs),
                                      batch.actions)
        optimizers["policy"].zero_grad(set_to_none=True)
        awr_loss(log_probs, weights).sum().backward()
        optimizers["policy"].step()
    return Adapted(value, policy, optimizers)


# -------------------------------------------------------------------------------- learner

class MTFT(nn.Module):
    """One policy and one value network for all ``n_tasks`` training tasks, conditioned on
    a one-hot task id; fine-tuned per test task at meta-test."""

    def __init__(self, obs_dim: int, act_dim: int, n_tasks: int, cfg: MTFTConfig,
                 seed: int = 0, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.cfg, self.n_tasks = cfg, n_tasks
        self.value_net = value_net(obs_dim + n_tasks, cfg.width, latent=0, n_hidden=cfg.n_hidden)
        self.policy_net = policy_mean_net(obs_dim + n_tasks, act_dim, cfg.width, cfg.n_hidden)
        self.value = param_dict(self.value_net.init_params(seed, dtype))
        self.policy = param_dict(self.policy_net.init_params(seed + 1, dtype))

    def params(self, which: str) -> Params:
        return plain_params(getattr(self, which))

    def weights(self, which: str) -> Weights:
        return getattr(self, f"{which}_net").weights(self.params(which))

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"value": adam(self.value.values(), self.cfg.value_lr),
                "policy": adam(self.policy.values(), self.cfg.policy_lr)}

    @staticmethod
    def batch_demand(data: MetaBatchShape, section: object = None) -> BatchDemand:
        """Outer batches only: multi-task training has no inner loop."""
        return BatchDemand(data.tasks_per_batch, 0, data.outer_batch, False)

    def train_step(self, optimizers: dict[str, torch.optim.Optimizer], tasks: list[TaskData],
                   data: MetaBatchShape, rng: np.random.Generator) -> dict[str, float]:
        """One multi-task AWR step on ``data.tasks_per_batch`` tasks x ``data.outer_batch``
        transitions (``data``: the run config's batch sizes)."""
        batch = sample_meta_batch(tasks, data.tasks_per_batch, 0, data.outer_batch, rng)
        lv, lp = multitask_losses(self.weights("value"), self.weights("policy"), batch.outer,
                                  batch.task_index, self.n_tasks, self.cfg)
        lv, lp = lv.mean(), lp.mean()
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        (lv + lp).backward()        # the networks share no parameter: two independent losses
        for opt in optimizers.values():
            opt.step()
        return {"value_loss": lv.item(), "policy_loss": lp.item()}

    def unadapted_policy(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The multi-task policy with the zero one-hot, not fine-tuned."""
        weights = [(w.detach(), b.detach()) for w, b in self.weights("policy")]
        return lambda obs: policy_mean(weights, task_inputs(obs, None, self.n_tasks))

    def adapt_policies(self, batch: Batch) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """Fine-tune copies on each task's batch ``(T, B, ...)`` (:func:`adapt`); one
        deterministic policy (the mean action, zero task one-hot) per task. The meta-trained
        networks are not touched."""
        with torch.enable_grad():
            tuned = adapt(self, batch)
        p_weights = self.policy_net.weights(tuned.policy)
        policies = []
        for k in range(batch.observations.shape[0]):
            weights = [(w[k].detach(), b[k].detach()) for w, b in p_weights]
            policies.append(lambda obs, weights=weights: policy_mean(
                weights, task_inputs(obs, None, self.n_tasks)))
        return policies

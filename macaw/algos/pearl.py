"""Offline PEARL (Rakelly et al., 2019), the paper's context-based baseline (Section 5, Table 2).

PEARL infers a task latent ``z`` from a context of transitions and trains a soft actor-critic
(SAC, Haarnoja et al., 2018, the version with a state-value network) whose Q, V and policy
all take ``z`` as an extra input. "Offline" means every batch comes from the fixed task
buffers and nothing is ever collected: for each of ``tasks_per_batch`` training tasks per step,

- the context ``c`` is ``context_batch`` transitions ``(s, a, r, s')`` drawn uniformly from
  the task's inner (adaptation-quality) window, as at meta-test (:mod:`macaw.evaluate` draws
  ``eval_batch`` transitions uniformly from the same window);
- the RL batch is ``batch_size`` transitions drawn uniformly from the task's good window.

Following the authors' code (``katerakelly/oyster``, ``rlkit/torch/sac/{agent,sac}.py``):

- The encoder maps every context transition to a diagonal Gaussian factor; the posterior
  ``q(z | c)`` is their product (PEARL Sec. 4.1), in closed form
  (:func:`product_of_gaussians`). One reparameterised sample of ``z`` per task and step.
- The encoder is trained only by the Q loss plus ``kl_weight * KL(q(z | c) || N(0, I))``
  (summed over tasks, as rlkit's ``compute_kl_div``); V and the policy see ``z`` detached.
- SAC with a fixed entropy weight of 1 and rewards multiplied by ``reward_scale`` (which sets
  the entropy trade-off); Q target ``r * scale + gamma (1 - d) V_target(s', z)``; soft target
  V; rlkit's 1e-3 penalties on the policy's pre-tanh mean and log-std.
- Step order of rlkit's ``_take_step``: critics and encoder, then V (its target uses the
  updated critics), target V, then the policy.

Meta-test (:meth:`PEARL.adapt_policies`) is deterministic: ``z`` is the posterior *mean* of
the test context (PEARL samples ``z``; the mean removes sampling noise from a single
evaluation rollout, as MACAW's mean action does) and the action is ``tanh`` of the policy's
mean. Online fine-tuning (paper Appendix C.2, Table 1) lives in :class:`PEARLOnlineAgent`.

Where we differ from rlkit: hidden layers use PyTorch's default initialisation (rlkit: its
``fanin_init`` and bias 0.1; the last layers are ±3e-3 in both); one Adam over both Q
networks (identical to rlkit's two, Adam being element-wise); training tasks are drawn without
replacement (rlkit: with), like MACAW's meta-batches.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from macaw.algos.base import BatchDemand, MetaBatchShape
from macaw.data import Batch, TaskData, sample_meta_batch
from macaw.fields import NonNegativeFloat, PositiveFloat, PositiveInt, UnitFraction, config_class
from macaw.nets.optim import polyak_update

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
"""Clamp of the policy's log standard deviation (rlkit's ``TanhGaussianPolicy``)."""


@config_class
class PEARLConfig:
    """Hyperparameters of offline PEARL (paper Table 2, standard configuration; rlkit's
    defaults where the table is silent)."""

    latent: PositiveInt = 5
    """Size of the task latent z."""
    width: PositiveInt = 300
    """Hidden units per layer of the policy, Q and V networks."""
    n_hidden: PositiveInt = 3
    """Hidden layers of every network, encoder included."""
    encoder_width: PositiveInt = 200
    """Hidden units per layer of the context encoder (rlkit's launcher: 200)."""
    tasks_per_batch: PositiveInt = 5
    """Training tasks per step (Table 2: 4-10); PEARL's own, in place of the run's
    ``tasks_per_batch`` (also 5) that MACAW and MT+FT use."""
    batch_size: PositiveInt = 256
    """RL (SAC) transitions per task and step, uniform from the task's good window."""
    context_batch: PositiveInt = 256
    """Context transitions per task and step, uniform from the inner window (Table 2: 100-256;
    keep it equal to the run's eval_batch, the meta-test context)."""
    kl_weight: NonNegativeFloat = 0.1
    """Weight of KL(q(z|c) || N(0, I)) in the encoder loss."""
    reward_scale: PositiveFloat = 5.0
    """Rewards are multiplied by this in the Q target (sets the entropy trade-off)."""
    gamma: UnitFraction = 0.99
    """Discount of the Q target."""
    tau: UnitFraction = 0.005
    """Soft (Polyak) update rate of the target V network."""
    policy_lr: PositiveFloat = 3e-4
    """Adam rate of the policy."""
    critic_lr: PositiveFloat = 3e-4
    """Adam rate of the two Q networks."""
    value_lr: PositiveFloat = 3e-4
    """Adam rate of the V network."""
    encoder_lr: PositiveFloat = 3e-4
    """Adam rate of the context encoder."""
    policy_mean_reg: NonNegativeFloat = 1e-3
    """Weight of the penalty on the policy's squared pre-tanh mean (rlkit)."""
    policy_std_reg: NonNegativeFloat = 1e-3
    """Weight of the penalty on the policy's squared log-std (rlkit)."""

    RENAMED: ClassVar[dict[str, str]] = {
        "meta_batch": "tasks_per_batch", "q_lr": "critic_lr", "v_lr": "value_lr",
        "discount": "gamma"}
    """Old field name -> its new name (:func:`macaw.fields.parse_config` names it)."""


# ------------------------------------------------------------------------------ maths

def product_of_gaussians(means: torch.Tensor, variances: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """PEARL Sec. 4.1, ``q(z | c_1:N) ∝ prod_n N(mu_n, sigma_n^2)``, reduced over dim -2:
    ``var = 1 / sum_n 1/sigma_n^2`` and ``mean = var * sum_n mu_n / sigma_n^2``.
    ``(..., N, L)`` -> ``(..., L)``; variances clamped at 1e-7 as in rlkit."""
    precisions = 1.0 / variances.clamp(min=1e-7)
    variance = 1.0 / precisions.sum(-2)
    return variance * (means * precisions).sum(-2), variance


def kl_to_standard_normal(mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, diag variance) || N(0, I)) = 1/2 sum (var + mean^2 - 1 - log var)``, the
    information bottleneck of PEARL Sec. 4.1; ``(..., L)`` -> ``(...)``."""
    return 0.5 * (variance + mean.pow(2) - 1.0 - variance.log()).sum(-1)


def q_target(rewards: torch.Tensor, terminals: torch.Tensor, next_values: torch.Tensor,
             reward_scale: float, gamma: float) -> torch.Tensor:
    """SAC Eq. 8 with PEARL's reward scale: ``r * scale + gamma (1 - d) V_target(s', z)``."""
    return rewards * reward_scale + gamma * (1.0 - terminals) * next_values


def critic_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SAC Eq. 7 (PEARL's L_critic) for both Q networks: ``mean (Q1 - y)^2 + mean (Q2 - y)^2``;
    the target ``y`` is a constant."""
    target = target.detach()
    return (q1 - target).pow(2).mean() + (q2 - target).pow(2).mean()


def soft_value_loss(values: torch.Tensor, min_q: torch.Tensor,
                    log_probs: torch.Tensor) -> torch.Tensor:
    """SAC Eq. 5: ``mean (V(s) - (min_i Q_i(s, a~pi) - log pi(a|s)))^2``; target constant."""
    return (values - (min_q - log_probs).detach()).pow(2).mean()


def policy_loss(log_probs: torch.Tensor, min_q: torch.Tensor, mean: torch.Tensor,
                log_std: torch.Tensor, mean_reg: float, std_reg: float) -> torch.Tensor:
    """SAC Eq. 12 (PEARL's L_actor), reparameterised: ``mean (log pi(a|s) - min_i Q_i(s, a))``
    with ``a`` a differentiable sample, plus rlkit's ``mean_reg * mean(mu^2) +
    std_reg * mean(log_std^2)`` on the pre-tanh Gaussian."""
    return ((log_probs - min_q).mean() + mean_reg * mean.pow(2).mean()
            + std_reg * log_std.pow(2).mean())


def tanh_gaussian_sample(mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised ``a = tanh(mean + std * noise)`` and its log-density ``(...)``, with the
    tanh change of variables (SAC Appendix C; rlkit's ``TanhNormal``, eps 1e-6)."""
    pre_tanh = mean + log_std.exp() * noise
    action = torch.tanh(pre_tanh)
    log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    return action, log_prob - torch.log(1.0 - action.pow(2) + 1e-6).sum(-1)


def standard_normal(shape: torch.Size | tuple, like: torch.Tensor) -> torch.Tensor:
    """N(0, 1) noise drawn from torch's global *CPU* generator, then moved to ``like``'s
    device: the training loop checkpoints that generator, so a resumed run draws the same
    noise on CPU and on CUDA."""
    return torch.randn(shape, dtype=like.dtype).to(like.device)


# ----------------------------------------------------------------------------- networks

def mlp(in_features: int, width: int, n_hidden: int, out_features: int) -> nn.Sequential:
    """ReLU MLP; the last layer starts at U(±3e-3) (rlkit's ``init_w``) so Q, V and the
    policy mean start near 0."""
    layers: list[nn.Module] = []
    for i in range(n_hidden):
        layers += [nn.Linear(in_features if i == 0 else width, width), nn.ReLU()]
    last = nn.Linear(width if n_hidden else in_features, out_features)
    nn.init.uniform_(last.weight, -3e-3, 3e-3)
    nn.init.uniform_(last.bias, -3e-3, 3e-3)
    return nn.Sequential(*layers, last)


def with_latent(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``[x, z]`` on the last dim; ``z (T, L)`` is broadcast over ``x (T, B, D)``'s batch."""
    if z.dim() < x.dim():
        z = z.unsqueeze(-2).expand(*x.shape[:-1], z.shape[-1])
    return torch.cat([x, z], dim=-1)


def context_features(context: Batch) -> torch.Tensor:
    """Encoder input ``(s, a, r, s')`` per transition: ``(..., N, 2 obs_dim + act_dim + 1)``.
    Rewards enter unscaled (rlkit). Next observations are included for every family (rlkit
    does so only where dynamics differ, e.g. walker-params)."""
    return torch.cat([context.observations, context.actions, context.rewards.unsqueeze(-1),
                      context.next_observations], dim=-1)


class PEARL(nn.Module):
    """Context encoder, latent-conditioned Q1, Q2, V, target V and tanh-Gaussian policy."""

    def __init__(self, obs_dim: int, act_dim: int, n_train_tasks: int, cfg: PEARLConfig,
                 seed: int = 0):
        super().__init__()
        # n_train_tasks: part of the learner interface; PEARL has no per-task parameters.
        self.cfg, self.act_dim = cfg, act_dim
        w, n, latent = cfg.width, cfg.n_hidden, cfg.latent
        with torch.random.fork_rng(devices=[]):  # initialise from `seed`, leave the global RNG
            torch.manual_seed(seed)
            self.encoder = mlp(2 * obs_dim + act_dim + 1, cfg.encoder_width, n, 2 * latent)
            self.q1 = mlp(obs_dim + act_dim + latent, w, n, 1)
            self.q2 = mlp(obs_dim + act_dim + latent, w, n, 1)
            self.value = mlp(obs_dim + latent, w, n, 1)
            self.policy = mlp(obs_dim + latent, w, n, 2 * act_dim)
        self.target_value = copy.deepcopy(self.value).requires_grad_(False)

    # -- forward passes: observations (..., obs_dim), z broadcast by `with_latent`
    def posterior(self, context: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of ``q(z | c)``: context ``(T, N, ...)`` -> ``(T, latent)``."""
        mu, raw = self.encoder(context_features(context)).chunk(2, dim=-1)
        return product_of_gaussians(mu, nn.functional.softplus(raw))

    def q_values(self, obs: torch.Tensor, actions: torch.Tensor, z: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        x = with_latent(torch.cat([obs, actions], dim=-1), z)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def state_value(self, obs: torch.Tensor, z: torch.Tensor, target: bool = False) -> torch.Tensor:
        return (self.target_value if target else self.value)(with_latent(obs, z)).squeeze(-1)

    def policy_gaussian(self, obs: torch.Tensor, z: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh mean and clamped log-std of pi(. | s, z)."""
        mean, log_std = self.policy(with_latent(obs, z)).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    # -- the learner interface of macaw.meta_train
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"encoder": torch.optim.Adam(self.encoder.parameters(), lr=self.cfg.encoder_lr),
                **sac_optimizers(self)}

    @staticmethod
    def batch_demand(data: MetaBatchShape, section: dict) -> BatchDemand:
        """A uniform context and an RL batch per task, both PEARL's own sizes (its
        ``pearl`` section)."""
        cfg = PEARLConfig(**section)
        return BatchDemand(cfg.tasks_per_batch, cfg.context_batch, cfg.batch_size, False,
                           ("pearl.tasks_per_batch", "pearl.context_batch", "pearl.batch_size"))

    def train_step(self, optimizers: dict[str, torch.optim.Optimizer], tasks: list[TaskData],
                   data: MetaBatchShape, rng: np.random.Generator) -> dict[str, float]:
        """One offline PEARL step on a fresh meta-batch of ``tasks``. ``data`` (the run
        config's batch sizes) is not read: batch sizes are PEARL's own."""
        batch = sample_meta_batch(tasks, self.cfg.tasks_per_batch, self.cfg.context_batch,
                                  self.cfg.batch_size, rng, contiguous_inner=False,
                                  disjoint=False)
        return pearl_step(self, optimizers, batch.inner, batch.outer)

    @torch.no_grad()
    def adapt_policies(self, batch: Batch) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """Task inference on each test task's context ``(T, B, ...)``; per task the
        deterministic policy ``tanh(mean(s, z))`` with ``z`` the posterior mean."""
        z_means, _ = self.posterior(batch)
        return [lambda obs, z=z: torch.tanh(self.policy_gaussian(obs, z)[0]) for z in z_means]

    def unadapted_policy(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The policy with ``z`` the prior mean (zero), before any task inference."""
        z = next(self.parameters()).new_zeros(self.cfg.latent)

        def policy(obs: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return torch.tanh(self.policy_gaussian(obs, z)[0])
        return policy

    def online_agent(self, context: Batch) -> "PEARLOnlineAgent":
        """Offline PEARL + fine-tuning (Appendix C.2) for one task's context ``(B, ...)``, on a
        copy of the networks: fine-tuning never changes this learner."""
        return PEARLOnlineAgent(self, context)


def sac_optimizers(model: PEARL) -> dict[str, torch.optim.Optimizer]:
    """Adam for the policy, both Q networks and V (Table 2 rates)."""
    cfg = model.cfg
    return {"q": torch.optim.Adam([*model.q1.parameters(), *model.q2.parameters()],
                                  lr=cfg.critic_lr),
            "value": torch.optim.Adam(model.value.parameters(), lr=cfg.value_lr),
            "policy": torch.optim.Adam(model.policy.parameters(), lr=cfg.policy_lr)}


# ------------------------------------------------------------------------------ training

def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def sac_step(model: PEARL, optimizers: dict[str, torch.optim.Optimizer], batch: Batch,
             z: torch.Tensor, kl_loss: torch.Tensor | None = None) -> dict[str, float]:
    """One latent-conditioned SAC step on ``batch (T, B, ...)`` with task latents ``z (T, L)``.

    If ``z`` carries the encoder's graph, ``kl_loss`` is added to the critic loss and
    ``optimizers["encoder"]`` steps with the critics, so the encoder learns from the Q loss
    and the KL only; V and the policy always see ``z`` detached.
    """
    cfg = model.cfg
    obs, actions = batch.observations, batch.actions

    # Critics (and encoder): PEARL's L_critic (+ beta KL).
    with torch.no_grad():
        target = q_target(batch.rewards, batch.terminals,
                          model.state_value(batch.next_observations, z, target=True),
                          cfg.reward_scale, cfg.gamma)
    q1, q2 = model.q_values(obs, actions, z)
    loss_q = critic_loss(q1, q2, target)
    loss_critic = loss_q if kl_loss is None else loss_q + kl_loss
    critic_opts = [optimizers["q"]] + ([optimizers["encoder"]] if kl_loss is not None else [])
    for opt in critic_opts:
        opt.zero_grad(set_to_none=True)
    loss_critic.backward()
    for opt in critic_opts:
        opt.step()

    # Value, against the updated critics, then the target value.
    z = z.detach()
    mean, log_std = model.policy_gaussian(obs, z)
    new_actions, log_probs = tanh_gaussian_sample(mean, log_std, standard_normal(mean.shape, mean))
    min_q = torch.min(*model.q_values(obs, new_actions, z))
    loss_v = soft_value_loss(model.state_value(obs, z), min_q, log_probs)
    _step(optimizers["value"], loss_v)
    polyak_update(model.target_value, model.value, cfg.tau)

    # Policy (gradients reach Q's parameters too; they are cleared before the next use).
    loss_pi = policy_loss(log_probs, min_q, mean, log_std, cfg.policy_mean_reg,
                          cfg.policy_std_reg)
    _step(optimizers["policy"], loss_pi)
    return {"q_loss": loss_q.item(), "value_loss": loss_v.item(), "policy_loss": loss_pi.item(),
            "q_mean": q1.mean().item(), "log_prob": log_probs.mean().item()}


def pearl_step(model: PEARL, optimizers: dict[str, torch.optim.Optimizer], context: Batch,
               batch: Batch) -> dict[str, float]:
    """One meta-training step: infer ``q(z | c)`` for each task's context, sample ``z``
    (reparameterised), then :func:`sac_step` with the KL penalty (summed over tasks)."""
    z_mean, z_var = model.posterior(context)
    z = z_mean + z_var.sqrt() * standard_normal(z_mean.shape, z_mean)
    kl = kl_to_standard_normal(z_mean, z_var).sum()
    stats = sac_step(model, optimizers, batch, z, model.cfg.kl_weight * kl)
    return {**stats, "kl": kl.item() / z.shape[0], "z_var": z_var.mean().item()}


# ------------------------------------------------------------------------ online fine-tuning

class PEARLOnlineAgent:
    """Offline PEARL + fine-tuning (paper Appendix C.2, Table 1) on one test task.

    Task inference happens once, on the given offline context; ``z`` is then fixed to that
    posterior's mean, and fine-tuning is plain SAC on Q, V and the policy conditioned on it
    (the paper: "essentially performs the SAC algorithm on the test task after the initial
    task inference step"). The encoder is not trained and online data never enters the
    context. All of it happens on a deep copy of the networks with fresh Adam optimisers.
    """

    def __init__(self, model: PEARL, context: Batch):
        self.model = copy.deepcopy(model)
        self.optimizers = sac_optimizers(self.model)
        with torch.no_grad():
            self.z = self.model.posterior(Batch(*(x.unsqueeze(0) for x in context)))[0][0]

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action ``tanh(mean(s, z))`` (evaluation)."""
        return torch.tanh(self.model.policy_gaussian(obs, self.z)[0])

    @torch.no_grad()
    def explore(self, obs: torch.Tensor) -> torch.Tensor:
        """An action sampled from ``pi(. | s, z)`` (data collection)."""
        mean, log_std = self.model.policy_gaussian(obs, self.z)
        return tanh_gaussian_sample(mean, log_std, standard_normal(mean.shape, mean))[0]

    def update(self, batch: Batch) -> dict[str, float]:
        """One SAC step on ``batch (B, ...)`` from the task's aggregate (offline + online) data."""
        return sac_step(self.model, self.optimizers, Batch(*(x.unsqueeze(0) for x in batch)),
                        self.z.unsqueeze(0))

"""SAC and TD3 for a batch of independent tasks (one network per task).

The paper trains its behaviour policies with SAC, except TD3 for cheetah-vel (Appendix C).
Both agents here follow CleanRL's single-task scripts (``sac_continuous_action.py``,
``td3_continuous_action.py``) line for line, with a leading task dimension ``T`` on every
tensor: observations ``(T, B, obs_dim)``, actions ``(T, B, act_dim)``, rewards ``(T, B)``.
Losses are sums over tasks of per-task means, so task ``t``'s networks see exactly the
gradients they would see if trained alone (see :mod:`macaw.behaviour.ensemble`), and every
random draw of task ``t`` (initial weights, exploration and policy noise) comes from its own
generator, so that a task's training does not depend on which tasks share its ensemble.

Actions live in ``[-1, 1]`` (all four MuJoCo families have that action box).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
import torch.nn.functional as F

from macaw.behaviour.ensemble import EnsembleMLP, member_randn
from macaw.nets.optim import polyak_update

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class TransitionBatch(NamedTuple):
    """A batch of transitions for every task at once; leading dims ``(T, B)``."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminals: torch.Tensor  # 1.0 where the episode truly ended (not a time-out)


class TwinCritic(torch.nn.Module):
    """Two Q-networks per task, stored as one ensemble of ``2T`` members."""

    def __init__(self, n_tasks: int, obs_dim: int, act_dim: int, hidden: list[int],
                 generators: list[torch.Generator | None] | None = None):
        super().__init__()
        self.n_tasks = n_tasks
        gens = list(generators or [None] * n_tasks)
        self.net = EnsembleMLP(2 * n_tasks, obs_dim + act_dim, hidden, 1, gens + gens)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Returns ``(2, T, B)``: Q1 and Q2 for every task."""
        x = torch.cat([obs, act], dim=-1).repeat(2, 1, 1)
        return self.net(x).squeeze(-1).view(2, self.n_tasks, -1)

    def q1(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Returns ``(T, B)``: Q1 only (members ``0..T-1``), half the work of ``forward``."""
        return self.net(torch.cat([obs, act], dim=-1), slice(0, self.n_tasks)).squeeze(-1)


def critic_regression_step(critic: TwinCritic, optimizer: torch.optim.Optimizer,
                           batch: TransitionBatch, target: torch.Tensor) -> float:
    """One Adam step on the twin critics' TD regression; returns the per-task mean loss."""
    q = critic(batch.observations, batch.actions)
    # Sum over tasks of each task's mean squared TD error (x2 critics).
    loss = F.mse_loss(q, target.expand_as(q), reduction="none").mean(-1).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item() / q.shape[1]


class EnsembleSAC:
    """Soft actor-critic with automatic entropy tuning, one per task (Haarnoja et al., 2018)."""

    algorithm = "sac"

    def __init__(self, n_tasks: int, obs_dim: int, act_dim: int, hidden: list[int],
                 policy_lr: float = 3e-4, critic_lr: float = 1e-3, gamma: float = 0.99,
                 tau: float = 0.005, policy_delay: int = 2,
                 generators: list[torch.Generator | None] | None = None,
                 device: torch.device | str = "cpu", **_unused):
        """``generators``: one per task (CPU), for its initial weights and noise (None: torch's
        global generator); the networks live on ``device``."""
        self.gamma, self.tau, self.policy_delay = gamma, tau, policy_delay
        self.generators = list(generators or [None] * n_tasks)
        self.actor = EnsembleMLP(n_tasks, obs_dim, hidden, 2 * act_dim, self.generators).to(device)
        self.critic = TwinCritic(n_tasks, obs_dim, act_dim, hidden, self.generators).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros(n_tasks, device=device, requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=policy_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=policy_lr)
        self.n_updates = 0

    def _policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sampled tanh-Gaussian action, its log-probability ``(T, B)``, and the mean action."""
        mean, log_std = self.actor(obs).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        std = log_std.exp()
        pre_tanh = mean + std * member_randn(mean.shape, self.generators).to(mean.device)
        action = torch.tanh(pre_tanh)
        log_prob = (-0.5 * ((pre_tanh - mean) / std) ** 2 - log_std
                    - 0.5 * torch.log(torch.tensor(2 * torch.pi))).sum(-1)
        log_prob = log_prob - torch.log(1 - action.pow(2) + 1e-6).sum(-1)
        return action, log_prob, torch.tanh(mean)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """``obs (T, obs_dim)`` -> ``actions (T, act_dim)``."""
        action, _, mean = self._policy(obs.unsqueeze(1))
        return (mean if deterministic else action).squeeze(1)

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        with torch.no_grad():
            next_action, next_log_prob, _ = self._policy(batch.next_observations)
            alpha = self.log_alpha.exp().unsqueeze(-1)
            q_next = self.critic_target(batch.next_observations, next_action).min(0).values
            target = batch.rewards + self.gamma * (1 - batch.terminals) * (
                q_next - alpha * next_log_prob)
        stats = {"critic_loss": critic_regression_step(self.critic, self.critic_opt, batch,
                                                       target)}

        self.n_updates += 1
        if self.n_updates % self.policy_delay == 0:
            # CleanRL's delayed actor update: policy_delay actor steps every policy_delay steps.
            for _ in range(self.policy_delay):
                action, log_prob, _ = self._policy(batch.observations)
                q_pi = self.critic(batch.observations, action).min(0).values
                alpha = self.log_alpha.exp().detach().unsqueeze(-1)
                actor_loss = (alpha * log_prob - q_pi).mean(-1).sum()
                self.actor_opt.zero_grad(set_to_none=True)
                actor_loss.backward()
                self.actor_opt.step()
                alpha_loss = (-self.log_alpha.exp().unsqueeze(-1)
                              * (log_prob.detach() + self.target_entropy)).mean(-1).sum()
                self.alpha_opt.zero_grad(set_to_none=True)
                alpha_loss.backward()
                self.alpha_opt.step()
            stats["actor_loss"] = actor_loss.item() / batch.rewards.shape[0]
        polyak_update(self.critic_target, self.critic, self.tau)
        return stats

    def state_dict(self) -> dict:
        return {
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(), "n_updates": self.n_updates,
        }

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.n_updates = state["n_updates"]


class EnsembleTD3:
    """Twin delayed DDPG, one per task (Fujimoto et al., 2018); the paper's cheetah-vel choice."""

    algorithm = "td3"

    def __init__(self, n_tasks: int, obs_dim: int, act_dim: int, hidden: list[int],
                 policy_lr: float = 3e-4, critic_lr: float = 3e-4, gamma: float = 0.99,
                 tau: float = 0.005, policy_delay: int = 2, exploration_noise: float = 0.1,
                 policy_noise: float = 0.2, noise_clip: float = 0.5,
                 generators: list[torch.Generator | None] | None = None,
                 device: torch.device | str = "cpu", **_unused):
        """``generators``: one per task (CPU), for its initial weights and noise (None: torch's
        global generator); the networks live on ``device``."""
        self.gamma, self.tau, self.policy_delay = gamma, tau, policy_delay
        self.exploration_noise, self.policy_noise, self.noise_clip = (
            exploration_noise, policy_noise, noise_clip)
        self.generators = list(generators or [None] * n_tasks)
        self.actor = EnsembleMLP(n_tasks, obs_dim, hidden, act_dim, self.generators).to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = TwinCritic(n_tasks, obs_dim, act_dim, hidden, self.generators).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=policy_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=critic_lr)
        self.n_updates = 0

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        action = torch.tanh(self.actor(obs.unsqueeze(1))).squeeze(1)
        if not deterministic:
            noise = member_randn(action.shape, self.generators).to(action.device)
            action = (action + self.exploration_noise * noise).clamp(-1, 1)
        return action

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        with torch.no_grad():
            next_action = torch.tanh(self.actor_target(batch.next_observations))
            noise = member_randn(next_action.shape, self.generators).to(next_action.device)
            noise = (self.policy_noise * noise).clamp(
                -self.noise_clip, self.noise_clip)
            next_action = (next_action + noise).clamp(-1, 1)
            q_next = self.critic_target(batch.next_observations, next_action).min(0).values
            target = batch.rewards + self.gamma * (1 - batch.terminals) * q_next
        stats = {"critic_loss": critic_regression_step(self.critic, self.critic_opt, batch,
                                                       target)}

        self.n_updates += 1
        if self.n_updates % self.policy_delay == 0:
            action = torch.tanh(self.actor(batch.observations))
            actor_loss = -self.critic.q1(batch.observations, action).mean(-1).sum()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            polyak_update(self.actor_target, self.actor, self.tau)
            polyak_update(self.critic_target, self.critic, self.tau)
            stats["actor_loss"] = actor_loss.item() / batch.rewards.shape[0]
        return stats

    def state_dict(self) -> dict:
        return {
            "actor": self.actor.state_dict(), "actor_target": self.actor_target.state_dict(),
            "critic": self.critic.state_dict(), "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "n_updates": self.n_updates,
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("actor", "actor_target", "critic", "critic_target", "actor_opt", "critic_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.n_updates = state["n_updates"]


AGENTS = {"sac": EnsembleSAC, "td3": EnsembleTD3}

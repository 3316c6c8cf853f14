"""Online fine-tuning (paper C.2, Table 1): buffer growth, step accounting, MACAW's agent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import kill_on_call, run_killed_then_resumed

from macaw.algos.macaw import MACAW, MACAWConfig
from macaw.data import Batch, TaskData
from macaw.meta_train import MetaTrainConfig, run_meta_training
from macaw.online import GrowingBuffer, OnlineConfig, finetune_task, online_table, \
    run_online_finetuning
from macaw.runs import Checkpoint


def _context(n: int = 4, obs_dim: int = 17, act_dim: int = 6) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g),
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g),
                 torch.zeros(n), torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g),
                 torch.rand(n, generator=g))


def test_growing_buffer_appends_episodes_with_mc_returns_by_hand():
    buffer = GrowingBuffer(_context(4))
    rewards = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    next_obs = np.arange(3 * 17, dtype=np.float32).reshape(3, 17)
    buffer.add_episode(np.ones((3, 17)), np.zeros((3, 6)), rewards, next_obs,
                       np.zeros(3), gamma=0.5)
    assert len(buffer) == 7
    # R_2 = 3, R_1 = 2 + 0.5 * 3, R_0 = 1 + 0.5 * 3.5 (to the episode's end, no value tail)
    np.testing.assert_allclose(buffer.fields[5][4:], [2.75, 3.5, 3.0])
    # The time limit cut it: tails s_T = the last next observation, gamma^(T-t).
    np.testing.assert_array_equal(buffer.fields[6][4:], np.repeat(next_obs[-1:], 3, axis=0))
    np.testing.assert_allclose(buffer.fields[7][4:], [0.125, 0.25, 0.5])
    buffer.add_episode(np.ones((2, 17)), np.zeros((2, 6)), rewards[:2], next_obs[:2],
                       np.array([0.0, 1.0]), gamma=0.5)         # a true termination: no tail
    np.testing.assert_allclose(buffer.fields[7][7:], [0.0, 0.0])
    np.testing.assert_array_equal(buffer.fields[2][4:7], rewards)
    batch = buffer.sample(5, np.random.default_rng(0), "cpu")
    assert batch.observations.shape == (5, 17) and batch.mc_returns.shape == (5,)
    assert batch.tail_observations.shape == (5, 17)


class CountingAgent:
    """A stand-in learner's agent: random actions, counts calls."""

    def __init__(self):
        self.updates, self.explores, self.batch_sizes = 0, 0, set()

    def act(self, obs):
        return torch.zeros(6)

    def explore(self, obs):
        self.explores += 1
        return torch.zeros(6)

    def update(self, batch):
        self.updates += 1
        self.batch_sizes.add(batch.observations.shape[0])
        return {}


def test_finetune_task_alternates_episodes_and_updates(tiny_buffers):
    agent = CountingAgent()

    class Learner:
        def online_agent(self, context):
            return agent

    task = TaskData(tiny_buffers[11], "good", 100, torch.device("cpu"))
    cfg = OnlineConfig(env_steps=400, report_at=[0, 200, 400], grad_steps_per_rollout=3,
                       batch_size=8, eval_rollouts=2)
    rows = finetune_task(Learner(), task, _context(4), cfg, 0.99, np.random.default_rng(0))
    assert [s for s, _ in rows] == [0, 200, 400]
    assert agent.explores == 400                     # two 200-step episodes collected
    assert agent.updates == 2 * 3                    # 3 gradient steps after each episode
    assert agent.batch_sizes == {8}
    # A zero action on cheetah-vel task 11 (v* = 0.9): reward -|v - 0.9| per step.
    assert all(-200 * 2 < r < 0 for _, r in rows)


def test_macaw_online_agent_starts_at_the_offline_adaptation_and_keeps_the_model():
    model = MACAW(17, 6, MACAWConfig(width=8, latent=3, inner_lr=0.05), seed=1)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    context = _context(16)
    agent = model.online_agent(context)
    # The first policy is the offline-adapted one of Algorithm 2 (same as adapt_policies).
    obs = torch.randn(17)
    policy = model.adapt_policies(Batch(*(f.unsqueeze(0) for f in context)))[0]
    torch.testing.assert_close(agent.act(obs), policy(obs), rtol=1e-5, atol=1e-6)
    first = agent.act(obs)
    agent.update(_context(16))
    assert (agent.act(obs) - first).abs().max() > 0              # fine-tuning moves the policy
    for k, v in model.state_dict().items():                      # ... not the meta-learner
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    # One update = one Adam step of Eq. 2 + Eq. 3: Adam's first step moves every parameter
    # element by lr * sign(gradient) (up to Adam's eps).
    fresh = model.online_agent(context)
    b = _context(16, obs_dim=17)
    before_theta = {k: v.detach().clone() for k, v in fresh.theta.items()}
    value, policy = fresh.losses(b)
    grads = torch.autograd.grad(value + policy, list(fresh.theta.values()), allow_unused=True)
    fresh.update(b)
    lr = model.cfg.online_policy_lr
    for (k, v), g in zip(fresh.theta.items(), grads):
        if g is None:
            continue
        # m_hat / (sqrt(v_hat) + eps) = g / (|g| + 1e-8) after one step
        torch.testing.assert_close(v.detach() - before_theta[k], -lr * g / (g.abs() + 1e-8),
                                   rtol=1e-3, atol=1e-9)
    a = torch.stack([agent.explore(obs) for _ in range(200)])
    assert a.abs().max() <= 1.0 and 0.1 < a.std(0).mean() < 0.25   # std-0.2 Gaussian, clipped


def _meta_trained_run(tiny_buffers, run_dir, test_tasks=(11,)):
    meta = MetaTrainConfig.from_dict({
        "family": "cheetah-vel", "steps": 2, "eval_every": 2, "checkpoint_every": 2,
        "inner_batch": 32, "outer_batch": 32, "eval_batch": 32, "device": "cpu",
        "outer_stride": 2, "inner_stride": 2, "eval_episodes": 1,
        "macaw": {"width": 16, "latent": 4}})
    # The tiny lifetime has two tasks: a second test task is the training task (opted in).
    run_meta_training(meta, [tiny_buffers[3]], [tiny_buffers[t] for t in test_tasks], run_dir,
                      progress=False, memorisation_check=3 in test_tasks)


def test_online_finetuning_of_a_meta_trained_run_and_table(tiny_buffers, tmp_path):
    _meta_trained_run(tiny_buffers, tmp_path / "run")
    cfg = OnlineConfig(env_steps=200, report_at=[0, 200], grad_steps_per_rollout=2,
                       batch_size=16, eval_rollouts=1)
    out = run_online_finetuning(tmp_path / "run", [tiny_buffers[11]], cfg,
                                tmp_path / "online.csv", progress=False)
    df = pd.read_csv(out)
    assert df.env_steps.tolist() == [0, 200] and set(df.task_id) == {11}
    table = online_table({"MACAW": [out, out]}, tmp_path / "t.csv", tmp_path / "t.md")
    assert table.env_steps.tolist() == [0, 200]
    assert table.improvement.iloc[0] == 0.0
    np.testing.assert_allclose(table.improvement.iloc[1], df["return"][1] - df["return"][0],
                               rtol=1e-6)
    assert "| MACAW | 0 |" in (tmp_path / "t.md").read_text()


def test_killed_online_finetuning_resumes_to_the_same_file(tiny_buffers, tmp_path, monkeypatch):
    import macaw.online as online

    _meta_trained_run(tiny_buffers, tmp_path / "run", test_tasks=(11, 3))
    buffers = [tiny_buffers[11], tiny_buffers[3]]
    cfg = OnlineConfig(env_steps=400, report_at=[0, 200, 400], grad_steps_per_rollout=3,
                       batch_size=16, eval_rollouts=1, seed=4)
    whole = run_online_finetuning(tmp_path / "run", buffers, cfg, tmp_path / "whole" / "s.csv",
                                  progress=False)
    killed = tmp_path / "killed" / "s.csv"
    # The second task is killed: the checkpoint holds the first task's rows.
    run_killed_then_resumed(
        lambda _: run_online_finetuning(tmp_path / "run", buffers, cfg, killed, progress=False),
        killed.parent, monkeypatch, online, "finetune_task", kill_at=2, expect_step=1,
        checkpoint="s.checkpoint.pt", key="tasks_done")
    assert pd.read_csv(killed).task_id.tolist() == [11] * 3 + [3] * 3
    assert killed.read_text() == whole.read_text()
    assert not Checkpoint.beside(killed).exists()


def test_online_checkpoint_of_another_config_is_refused_or_set_aside(tiny_buffers, tmp_path,
                                                                     monkeypatch):
    import macaw.online as online

    _meta_trained_run(tiny_buffers, tmp_path / "run", test_tasks=(11, 3))
    buffers = [tiny_buffers[11], tiny_buffers[3]]
    cfg = OnlineConfig(env_steps=200, report_at=[0, 200], grad_steps_per_rollout=1,
                       batch_size=16, eval_rollouts=1)
    out = tmp_path / "seed0.csv"
    original = kill_on_call(monkeypatch, online, "finetune_task", kill_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_online_finetuning(tmp_path / "run", buffers, cfg, out, progress=False)
    monkeypatch.setattr(online, "finetune_task", original)
    other = OnlineConfig(env_steps=200, report_at=[0, 200], grad_steps_per_rollout=2,
                         batch_size=16, eval_rollouts=1)
    with pytest.raises(ValueError, match=r"seed0.checkpoint.pt: .*another config "
                                         r"\(online.grad_steps_per_rollout: 1 -> 2\)"):
        run_online_finetuning(tmp_path / "run", buffers, other, out, progress=False)
    run_online_finetuning(tmp_path / "run", buffers, other, out, progress=False,
                          restart_on_config_change=True)
    assert (tmp_path / "seed0.checkpoint.stale.pt").exists()
    fresh = run_online_finetuning(tmp_path / "run", buffers, other, tmp_path / "fresh.csv",
                                  progress=False)
    assert out.read_text() == fresh.read_text()          # started afresh, not after task 1


def test_online_config_rejects_bad_report_points():
    with pytest.raises(ValueError, match="report_at"):
        OnlineConfig.from_dict({"env_steps": 100, "report_at": [0, 200]})
    with pytest.raises(ValueError, match="unknown field"):
        OnlineConfig.from_dict({"env_stepz": 100})

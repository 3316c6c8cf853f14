"""Offline PEARL: posterior and losses by hand, a training step, meta-test policies, the
meta-training loop (resume = uninterrupted) and online fine-tuning on a copy."""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_killed_then_resumed

from macaw.algos.pearl import (PEARL, PEARLConfig, critic_loss, kl_to_standard_normal,
                               pearl_step, policy_loss, product_of_gaussians, q_target,
                               soft_value_loss, tanh_gaussian_sample)
from macaw.data import Batch, TaskData
from macaw.meta_train import MetaTrainConfig, build_learner, run_meta_training

F64 = torch.float64
OBS, ACT = 17, 6
SMALL = {"width": 16, "encoder_width": 8, "tasks_per_batch": 2, "batch_size": 32,
         "context_batch": 32}


def random_batch(shape: tuple[int, ...], seed: int) -> Batch:
    """Random cheetah-shaped transitions; about one in ten terminal."""
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(*shape, OBS, generator=g),
                 torch.rand(*shape, ACT, generator=g) * 2 - 1,
                 torch.randn(*shape, generator=g),
                 torch.randn(*shape, OBS, generator=g),
                 (torch.rand(*shape, generator=g) < 0.1).float(),
                 torch.randn(*shape, generator=g), torch.randn(*shape, OBS, generator=g),
                 torch.rand(*shape, generator=g))


def small_pearl(**kw) -> PEARL:
    return PEARL(OBS, ACT, 3, PEARLConfig(**{**SMALL, **kw}), seed=0)


def pearl_config(**kw) -> MetaTrainConfig:
    base = {"family": "cheetah-vel", "method": "pearl", "steps": 6, "eval_every": 3,
            "checkpoint_every": 2, "eval_batch": 32, "device": "cpu", "pearl": SMALL,
            "outer_stride": 2, "inner_stride": 2}
    return MetaTrainConfig.from_dict({**base, **kw})


# ---------------------------------------------------------------------------- maths by hand

def test_product_of_gaussians_is_the_precision_weighted_closed_form():
    mus = torch.tensor([[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0]], dtype=F64)
    variances = torch.tensor([[0.5, 2.0], [1.0, 0.25], [4.0, 1.0]], dtype=F64)
    mean, var = product_of_gaussians(mus, variances)
    for d in range(2):
        precision = sum(1 / variances[i, d].item() for i in range(3))
        expected_mean = sum(mus[i, d].item() / variances[i, d].item() for i in range(3)) / precision
        assert var[d].item() == pytest.approx(1 / precision, rel=1e-12)
        assert mean[d].item() == pytest.approx(expected_mean, rel=1e-12)
    # Dimension 0: precisions 2, 1, 0.25 -> var 1/3.25, mean (2 + 3 - 0.25) / 3.25.
    assert mean[0].item() == pytest.approx(4.75 / 3.25) and var[0].item() == pytest.approx(1 / 3.25)
    # Two factors, batched over tasks (T, N, L): equal variances give the plain average.
    m2, v2 = product_of_gaussians(torch.tensor([[[2.0], [4.0]]], dtype=F64),
                                  torch.tensor([[[3.0], [3.0]]], dtype=F64))
    assert m2.shape == (1, 1)
    assert m2.item() == pytest.approx(3.0) and v2.item() == pytest.approx(1.5)


def test_kl_to_standard_normal_by_hand_and_against_torch():
    mean, var = torch.tensor([1.0, -0.5], dtype=F64), torch.tensor([0.25, 2.0], dtype=F64)
    by_hand = 0.5 * ((0.25 + 1.0 - 1 - math.log(0.25)) + (2.0 + 0.25 - 1 - math.log(2.0)))
    assert kl_to_standard_normal(mean, var).item() == pytest.approx(by_hand, rel=1e-12)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mean, var.sqrt()),
                                            torch.distributions.Normal(0.0, 1.0)).sum()
    assert kl_to_standard_normal(mean, var).item() == pytest.approx(ref.item(), rel=1e-12)
    assert kl_to_standard_normal(torch.zeros(5), torch.ones(5)).item() == 0.0


def test_sac_targets_and_losses_by_hand():
    rewards = torch.tensor([1.0, -2.0, 0.5])
    terminals = torch.tensor([0.0, 1.0, 0.0])
    next_v = torch.tensor([10.0, 10.0, -4.0])
    y = q_target(rewards, terminals, next_v, reward_scale=5.0, gamma=0.99)
    torch.testing.assert_close(y, torch.tensor([5 + 9.9, -10.0, 2.5 - 3.96]))
    q1, q2 = torch.tensor([14.9, -9.0, 0.0]), torch.tensor([0.0, -10.0, -1.46])
    expected = (0 + 1 + 1.46 ** 2) / 3 + (14.9 ** 2 + 0 + 0) / 3
    assert critic_loss(q1, q2, y).item() == pytest.approx(expected, rel=1e-5)
    # Soft value target min Q - log pi, a constant.
    v = torch.tensor([1.0, 2.0], requires_grad=True)
    min_q = torch.tensor([3.0, 1.0], requires_grad=True)
    log_pi = torch.tensor([-1.0, 0.5], requires_grad=True)
    loss_v = soft_value_loss(v, min_q, log_pi)
    assert loss_v.item() == pytest.approx(((1 - 4) ** 2 + (2 - 0.5) ** 2) / 2)
    loss_v.backward()
    assert min_q.grad is None and log_pi.grad is None and v.grad is not None
    loss_pi = policy_loss(log_pi, min_q, torch.tensor([[1.0, -1.0]]), torch.tensor([[0.5, 0.0]]),
                          mean_reg=0.1, std_reg=0.2)
    assert loss_pi.item() == pytest.approx(((-1 - 3) + (0.5 - 1)) / 2 + 0.1 * 1 + 0.2 * 0.125)


def test_tanh_gaussian_log_prob_is_the_change_of_variables():
    mean, log_std = torch.tensor([0.3, -0.2], dtype=F64), torch.tensor([-0.5, 0.1], dtype=F64)
    noise = torch.tensor([0.7, -1.2], dtype=F64)
    action, log_prob = tanh_gaussian_sample(mean, log_std, noise)
    pre = mean + log_std.exp() * noise
    expected = (torch.distributions.Normal(mean, log_std.exp()).log_prob(pre)
                - torch.log(1 - torch.tanh(pre) ** 2 + 1e-6)).sum()
    torch.testing.assert_close(action, torch.tanh(pre))
    assert log_prob.item() == pytest.approx(expected.item(), rel=1e-10)


# ---------------------------------------------------------------------------- the learner

def test_train_step_changes_every_network_and_returns_finite_stats():
    torch.manual_seed(0)
    model = small_pearl()
    opts = model.optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = pearl_step(model, opts, random_batch((2, 32), 1), random_batch((2, 32), 2))
    assert set(stats) >= {"q_loss", "value_loss", "policy_loss", "kl"}
    assert all(math.isfinite(v) for v in stats.values())
    after = model.state_dict()
    for prefix in ("encoder", "q1", "q2", "value", "policy", "target_value"):
        changed = [not torch.equal(before[k], after[k]) for k in after if k.startswith(prefix)]
        assert any(changed), prefix
    # The target moved by tau toward the new value network, not onto it.
    k = "target_value.0.weight"
    torch.testing.assert_close(after[k], 0.995 * before[k] + 0.005 * after["value.0.weight"])


def test_encoder_learns_from_critic_and_kl_only():
    torch.manual_seed(0)
    model = small_pearl()
    opts = model.optimizers()
    # Zero-rate everything but the encoder: its update comes from the critic loss + KL.
    for name in ("q", "value", "policy"):
        for group in opts[name].param_groups:
            group["lr"] = 0.0
    captured = {}
    original = opts["encoder"].step

    def spy(*a, **kw):
        captured["grads"] = [p.grad.clone() for p in model.encoder.parameters()]
        return original(*a, **kw)

    opts["encoder"].step = spy
    context, batch = random_batch((2, 32), 1), random_batch((2, 32), 2)
    rng_state = torch.get_rng_state()
    pearl_step(model, opts, context, batch)

    # Recompute the encoder's gradient by hand with the same z noise (first draw).
    torch.set_rng_state(rng_state)
    fresh = small_pearl()
    mean, var = fresh.posterior(context)
    z = mean + var.sqrt() * torch.randn(mean.shape)
    with torch.no_grad():
        y = q_target(batch.rewards, batch.terminals,
                     fresh.state_value(batch.next_observations, z, target=True), 5.0, 0.99)
    loss = critic_loss(*fresh.q_values(batch.observations, batch.actions, z), y) \
        + 0.1 * kl_to_standard_normal(mean, var).sum()
    grads = torch.autograd.grad(loss, list(fresh.encoder.parameters()))
    for got, want in zip(captured["grads"], grads):
        torch.testing.assert_close(got, want)


def test_adapt_policies_gives_bounded_actions_that_depend_on_the_context():
    torch.manual_seed(0)
    model = small_pearl()
    opts = model.optimizers()
    for i in range(5):
        pearl_step(model, opts, random_batch((2, 32), 10 + i), random_batch((2, 32), 20 + i))
    context = random_batch((3, 32), 3)
    context = context._replace(rewards=context.rewards + torch.tensor([[-5.0], [0.0], [5.0]]))
    policies = model.adapt_policies(context)
    assert len(policies) == 3
    obs = torch.randn(OBS)
    actions = [p(obs) for p in policies]
    for policy, a in zip(policies, actions):
        assert a.shape == (ACT,) and a.abs().max() <= 1.0
        torch.testing.assert_close(policy(obs), a, rtol=0, atol=0)   # deterministic
    assert not torch.allclose(actions[0], actions[1])
    assert not torch.allclose(actions[0], actions[2])
    # The posterior mean is the z used: equal contexts give equal policies.
    same = model.adapt_policies(Batch(*(x[[1, 1]] for x in context)))
    torch.testing.assert_close(same[0](obs), actions[1], rtol=0, atol=0)


def test_build_learner_and_config_validation():
    cfg = pearl_config(pearl={"latent": 3, "width": 8})
    model = build_learner(cfg, OBS, ACT, 4, torch.device("cpu"))
    assert isinstance(model, PEARL) and model.cfg.latent == 3 and model.cfg.kl_weight == 0.1
    assert model.q1[0].in_features == OBS + ACT + 3
    assert model.encoder[0].in_features == 2 * OBS + ACT + 1
    with pytest.raises(ValueError, match=r"section 'pearl'.*\['kl'\]"):
        pearl_config(pearl={"kl": 0.2})
    # Same seed, same networks; another seed, others.
    a, b = small_pearl(), small_pearl()
    c = PEARL(OBS, ACT, 3, PEARLConfig(**SMALL), seed=1)
    assert torch.equal(a.q1[0].weight, b.q1[0].weight)
    assert not torch.equal(a.q1[0].weight, c.q1[0].weight)


def test_sampled_batches_come_from_the_right_windows(tiny_buffers):
    tasks = [TaskData(tiny_buffers[t], "bad", 1, torch.device("cpu")) for t in (3, 11)]
    model = PEARL(OBS, ACT, 2, PEARLConfig(**{**SMALL, "tasks_per_batch": 5}), seed=0)
    seen = {}

    def record(model, optimizers, context, batch):
        seen["context"], seen["batch"] = context, batch
        return {}

    with mock.patch("macaw.algos.pearl.pearl_step", record):
        model.train_step(model.optimizers(), tasks, None, np.random.default_rng(0))
    context, batch = seen["context"], seen["batch"]
    assert context.observations.shape == (2, 32, OBS) and batch.actions.shape == (2, 32, ACT)
    # With one-episode windows, "bad" (first episode) and "good" (last) are disjoint.
    for task in tasks:
        first = {tuple(r) for r in task.obs[task.inner_window].tolist()}
        last = {tuple(r) for r in task.obs[task.outer_window].tolist()}
        assert not first & last
    obs_rows = [{tuple(r) for r in x.tolist()} for x in context.observations]
    rl_rows = [{tuple(r) for r in x.tolist()} for x in batch.observations]
    in_window = [{tuple(r) for r in t.obs[t.inner_window].tolist()} for t in tasks]
    out_window = [{tuple(r) for r in t.obs[t.outer_window].tolist()} for t in tasks]
    # Each row of the meta-batch is one task (in some order); context from its inner window.
    for rows_c, rows_b in zip(obs_rows, rl_rows):
        k = 0 if rows_c <= in_window[0] else 1
        assert rows_c <= in_window[k] and rows_b <= out_window[k]


# ------------------------------------------------------------------- the meta-training loop

def test_pearl_run_writes_eval_csv(tiny_buffers, tmp_path):
    eval_csv = run_meta_training(pearl_config(), [tiny_buffers[3]], [tiny_buffers[11]],
                                 tmp_path, progress=False)
    df = pd.read_csv(eval_csv)
    assert df.step.tolist() == [0] * 3 + [3] * 3 + [6] * 3 and set(df.task_id) == {11}
    assert (df["return"] <= 0).all() and (df["return"] > -200 * 4).all()
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 6 and set(ckpt["optimizers"]) == {"encoder", "q", "value", "policy"}


def test_killed_pearl_run_resumes_to_the_same_result(tiny_buffers, tmp_path, monkeypatch):
    cfg = pearl_config()
    full = run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path / "a",
                             progress=False)

    resumed = run_killed_then_resumed(
        lambda d: run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], d,
                                    progress=False),
        tmp_path / "b", monkeypatch, PEARL, "train_step", kill_at=5, expect_step=4)
    pd.testing.assert_frame_equal(pd.read_csv(full), pd.read_csv(resumed))
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert set(a["model"]) == set(b["model"])
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
    # Training moved the networks away from their initialisation.
    init = PEARL(OBS, ACT, 1, PEARLConfig(**SMALL), seed=cfg.seed).state_dict()
    assert not torch.equal(init["policy.0.weight"], a["model"]["policy.0.weight"])


# -------------------------------------------------------------------- online fine-tuning

def test_online_agent_fine_tunes_a_copy():
    torch.manual_seed(0)
    model = small_pearl()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    context = random_batch((32,), 5)
    agent = model.online_agent(context)
    torch.testing.assert_close(agent.z, model.posterior(
        Batch(*(x.unsqueeze(0) for x in context)))[0][0].detach())
    obs = torch.randn(OBS)
    a0 = agent.act(obs)
    torch.testing.assert_close(a0, model.adapt_policies(
        Batch(*(x.unsqueeze(0) for x in context)))[0](obs))
    explored = agent.explore(torch.randn(4, OBS))
    assert explored.shape == (4, ACT) and explored.abs().max() <= 1.0
    assert not torch.allclose(agent.explore(obs), agent.explore(obs))   # stochastic

    for i in range(3):
        stats = agent.update(random_batch((32,), 100 + i))
    assert all(math.isfinite(v) for v in stats.values())
    for k, v in model.state_dict().items():          # the meta-trained learner is untouched
        assert torch.equal(v, before[k]), k
    tuned = agent.model.state_dict()
    for prefix in ("q1", "q2", "value", "policy", "target_value"):
        assert any(not torch.equal(before[k], tuned[k]) for k in tuned if k.startswith(prefix))
    # Task inference is fixed: the encoder and z do not move during fine-tuning.
    assert all(torch.equal(before[k], tuned[k]) for k in tuned if k.startswith("encoder"))
    assert not torch.allclose(agent.act(obs), a0)

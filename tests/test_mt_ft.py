"""Offline MT+FT: one-hot task input, losses by hand, fine-tuning only touches copies (and
takes exactly ``adapt_steps`` Adam steps, task by task), training, run loop and resume."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_killed_then_resumed
import yaml

from macaw.algos.mt_ft import MTFT, MTFTConfig, adapt, multitask_losses, policy_mean, task_inputs
from macaw.data import Batch, TaskData, sample_meta_batch
from macaw.meta_train import MetaTrainConfig, build_learner, run_meta_training
from macaw.nets.networks import value_forward

from test_meta_train import tiny_config

F64 = torch.float64


def mt_config(**kw) -> MetaTrainConfig:
    return tiny_config(method="mt_ft", mt_ft={"width": 16}, **kw)


def random_batch(n_tasks: int, batch: int, obs_dim: int, act_dim: int, seed: int = 0,
                 dtype=torch.float32) -> Batch:
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    return Batch(r(n_tasks, batch, obs_dim), torch.tanh(r(n_tasks, batch, act_dim)),
                 r(n_tasks, batch), r(n_tasks, batch, obs_dim), torch.zeros(n_tasks, batch),
                 5 * r(n_tasks, batch), r(n_tasks, batch, obs_dim),
                 torch.rand(n_tasks, batch, generator=g, dtype=dtype))


def test_task_inputs_are_obs_then_one_hot_of_the_training_task_and_zero_at_test():
    obs = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    x = task_inputs(obs, torch.tensor([2, 0]), n_tasks=4)
    assert x.shape == (2, 3, 6)
    torch.testing.assert_close(x[..., :2], obs, rtol=0, atol=0)
    assert x[0, :, 2:].tolist() == [[0, 0, 1, 0]] * 3
    assert x[1, :, 2:].tolist() == [[1, 0, 0, 0]] * 3
    test_x = task_inputs(obs[0, 0], None, n_tasks=4)          # one observation at meta-test
    assert test_x.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_one_hot_enters_the_first_layer_as_a_per_task_bias():
    model = MTFT(obs_dim=3, act_dim=2, n_tasks=4, cfg=MTFTConfig(width=8), dtype=F64)
    obs = torch.randn(1, 5, 3, dtype=F64)
    w0, b0 = model.params("value")["l0.weight"], model.params("value")["l0.bias"]
    rest = model.weights("value")[1:]
    for k in range(4):
        h = torch.relu(obs @ w0[:, :3].T + b0 + w0[:, 3 + k])     # e_k picks column 3 + k
        x = h
        for w, b in rest[:-1]:
            x = torch.relu(x @ w.T + b)
        expected = (x @ rest[-1][0].T + rest[-1][1]).squeeze(-1)
        got = value_forward(model.weights("value"), task_inputs(obs, torch.tensor([k]), 4))
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_sampled_batches_carry_the_index_of_the_task_their_data_come_from(tiny_buffers):
    cfg = mt_config()
    tasks = [TaskData(tiny_buffers[t], cfg.inner_window, cfg.window_episodes,
                      torch.device("cpu")) for t in (3, 11)]
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(10):
        batch = sample_meta_batch(tasks, 1, 0, 32, rng)
        k = int(batch.task_index[0])
        seen.add(k)
        # Every observation is a row of task k's buffer (the two tasks' data differ).
        rows = (batch.outer.observations[0][:, None, :] == tasks[k].obs[None]).all(-1).any(-1)
        assert rows.all()
    assert seen == {0, 1}
    batch = sample_meta_batch(tasks, 5, 0, 32, rng)             # capped at the 2 tasks
    assert sorted(batch.task_index.tolist()) == [0, 1]
    assert batch.outer.actions.shape == (2, 32, 6)


def _constant_model(value: float, mean_pre: float, act_dim: int = 1) -> MTFT:
    """A model whose value is ``value`` and whose mean is ``tanh(mean_pre)`` everywhere."""
    model = MTFT(obs_dim=2, act_dim=act_dim, n_tasks=3, cfg=MTFTConfig(width=4), dtype=F64)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.value["out:bias"].fill_(value)
        model.policy["mean:bias"].fill_(mean_pre)
    return model


def _hand_batch(returns, actions, tail_discounts) -> Batch:
    t = torch.tensor
    obs = torch.randn(1, 3, 2, dtype=F64)
    return Batch(obs, t(actions, dtype=F64), torch.zeros(1, 3, dtype=F64), obs,
                 torch.zeros(1, 3, dtype=F64), t(returns, dtype=F64), obs,
                 t(tail_discounts, dtype=F64))


def test_losses_by_hand():
    model = _constant_model(value=2.0, mean_pre=0.0)
    actions = [[[0.2], [0.0], [-0.4]]]
    batch = _hand_batch([[1.0, 2.0, 3.0]], actions, [[0.0, 0.0, 0.0]])
    index = torch.tensor([1])
    plain = dataclasses.replace(model.cfg, bootstrap=False)
    lv, lp = multitask_losses(model.weights("value"), model.weights("policy"), batch, index, 3,
                              plain)
    assert lv.tolist() == pytest.approx([2 / 3], rel=1e-12)
    # Advantages (-1, 0, 1) have mean 0 and unbiased std 1: weights e^-1, 1, e.
    c = -0.5 * math.log(2 * math.pi * 0.04)
    log_probs = [-0.5 * 0.2 ** 2 / 0.04 + c, c, -0.5 * 0.4 ** 2 / 0.04 + c]
    expected = -(math.exp(-1) * log_probs[0] + log_probs[1] + math.e * log_probs[2]) / 3
    assert lp.tolist() == pytest.approx([expected], rel=1e-6)
    # Temperature 2 halves the normalised advantages; a clip of 2 caps e at 2.
    _, lp2 = multitask_losses(model.weights("value"), model.weights("policy"), batch, index, 3,
                              dataclasses.replace(plain, temperature=2.0, max_weight=2.0))
    expected2 = -(math.exp(-0.5) * log_probs[0] + log_probs[1]
                  + min(math.exp(0.5), 2.0) * log_probs[2]) / 3
    assert lp2.tolist() == pytest.approx([expected2], rel=1e-6)
    # Bootstrapped (the default): targets R + d V(s_T) = (1 + 0.5 * 2, 2, 3 - 0.5 * 2) = (2, 2, 2):
    # value loss 0, every advantage 0, so every AWR weight is e^0 = 1.
    boot = _hand_batch([[1.0, 2.0, 3.0]], actions, [[0.5, 0.0, -0.5]])
    lv3, lp3 = multitask_losses(model.weights("value"), model.weights("policy"), boot, index, 3,
                                model.cfg)
    assert lv3.tolist() == pytest.approx([0.0], abs=1e-12)
    assert lp3.tolist() == pytest.approx([-sum(log_probs) / 3], rel=1e-6)


def test_adaptation_changes_only_the_copies_and_takes_exactly_adapt_steps_steps():
    cfg = MTFTConfig(width=16, adapt_steps=7)
    model = MTFT(obs_dim=5, act_dim=3, n_tasks=4, cfg=cfg)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    batch = random_batch(3, 64, 5, 3)
    tuned = adapt(model, batch)
    after = model.state_dict()
    for k in before:
        assert torch.equal(before[k], after[k]), k
        assert after[k].grad is None
    for which in ("value", "policy"):
        for name, base in model.params(which).items():
            copy = getattr(tuned, which)[name]
            assert copy.shape == (3, *base.shape)
            for t in range(3):
                assert not torch.equal(copy[t], base), (which, name, t)
        opt = tuned.optimizers[which]
        steps = {int(opt.state[p]["step"]) for p in getattr(tuned, which).values()}
        assert steps == {7}


def test_finetuning_lowers_the_adaptation_losses():
    model = MTFT(obs_dim=5, act_dim=3, n_tasks=4, cfg=MTFTConfig(width=32, adapt_steps=20))
    batch = random_batch(2, 128, 5, 3, seed=1)
    lv0 = multitask_losses(model.weights("value"), model.weights("policy"), batch, None, 4,
                           model.cfg)[0]
    tuned = adapt(model, batch)
    v_w, p_w = (n.weights(p) for n, p in ((model.value_net, tuned.value),
                                                (model.policy_net, tuned.policy)))
    lv1 = multitask_losses(v_w, p_w, batch, None, 4, model.cfg)[0]
    assert (lv1 < lv0).all()


def test_tasks_adapted_together_equal_tasks_adapted_alone():
    model = MTFT(obs_dim=5, act_dim=3, n_tasks=4, cfg=MTFTConfig(width=16), dtype=F64)
    batch = random_batch(3, 32, 5, 3, seed=2, dtype=F64)
    together = adapt(model, batch)
    for t in range(3):
        alone = adapt(model, Batch(*(x[t:t + 1] for x in batch)))
        for which in ("value", "policy"):
            for name, v in getattr(alone, which).items():
                torch.testing.assert_close(getattr(together, which)[name][t], v[0],
                                           rtol=1e-10, atol=1e-12)


def test_adapt_policies_returns_the_adapted_mean_action_per_task():
    model = MTFT(obs_dim=5, act_dim=3, n_tasks=4, cfg=MTFTConfig(width=16))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    batch = random_batch(2, 32, 5, 3, seed=3)
    with torch.no_grad():                        # the evaluation may run under no_grad
        policies = model.adapt_policies(batch)
    assert len(policies) == 2
    for k, v in model.state_dict().items():
        assert torch.equal(before[k], v), k
    obs = torch.randn(5)
    tuned = adapt(model, batch)
    for t, policy in enumerate(policies):
        action = policy(obs)
        assert action.shape == (3,) and not action.requires_grad
        weights = [(w[t], b[t]) for w, b in model.policy_net.weights(tuned.policy)]
        expected = policy_mean(weights, torch.cat([obs, torch.zeros(4)]))
        torch.testing.assert_close(action, expected.detach())
    untuned = policy_mean(model.weights("policy"), torch.cat([obs, torch.zeros(4)]))
    assert not torch.allclose(policies[0](obs), untuned)


def test_train_step_returns_finite_losses_and_updates_both_networks(tiny_buffers):
    cfg = mt_config()
    tasks = [TaskData(tiny_buffers[t], cfg.inner_window, cfg.window_episodes,
                      torch.device("cpu")) for t in (3, 11)]
    model = build_learner(cfg, tasks[0].obs_dim, tasks[0].act_dim, len(tasks),
                          torch.device("cpu"))
    assert isinstance(model, MTFT) and model.cfg.width == 16 and model.n_tasks == 2
    optimizers = model.optimizers()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    stats = model.train_step(optimizers, tasks, cfg, np.random.default_rng(0))
    assert set(stats) == {"value_loss", "policy_loss"}
    assert all(math.isfinite(v) for v in stats.values())
    assert stats["value_loss"] > 0
    changed = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == set(before)
    for opt in optimizers.values():
        assert {int(s["step"]) for s in opt.state.values()} == {1}


def test_config_section_reaches_the_learner():
    cfg = MetaTrainConfig.from_dict({"family": "walker-params", "method": "mt_ft",
                                     "mt_ft": {"value_lr": 1e-5, "adapt_value_lr": 1e-5}})
    model = build_learner(cfg, 17, 6, 3, torch.device("cpu"))
    assert model.cfg.adapt_value_lr == 1e-5 and model.cfg.adapt_steps == 20
    assert model.optimizers()["value"].param_groups[0]["lr"] == 1e-5
    with pytest.raises(ValueError, match="section 'mt_ft'"):
        MetaTrainConfig.from_dict({"family": "cheetah-vel", "method": "mt_ft",
                                   "mt_ft": {"finetune_stepz": 3}})


def test_run_layout_and_eval_csv(tiny_buffers, tmp_path):
    cfg = mt_config()
    eval_csv = run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path,
                                 progress=False)
    df = pd.read_csv(eval_csv)
    assert df.step.tolist() == [0] * 3 + [3] * 3 + [6] * 3 and set(df.task_id) == {11}
    assert (df["return"] <= 0).all() and (df["return"] > -200 * 4).all()
    resolved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert resolved["method"] == "mt_ft"
    assert resolved["resolved_algorithm"]["adapt_steps"] == 20
    assert resolved["resolved_algorithm"]["width"] == 16
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 6


def test_killed_run_resumes_to_the_same_result(tiny_buffers, tmp_path, monkeypatch):
    cfg = mt_config()
    train = [tiny_buffers[3], tiny_buffers[11]]     # two training tasks, one of them tested
    full = run_meta_training(cfg, train, [tiny_buffers[11]], tmp_path / "a", progress=False,
                             memorisation_check=True)

    resumed = run_killed_then_resumed(
        lambda d: run_meta_training(cfg, train, [tiny_buffers[11]], d, progress=False,
                                    memorisation_check=True),
        tmp_path / "b", monkeypatch, MTFT, "train_step", kill_at=5, expect_step=4)
    pd.testing.assert_frame_equal(pd.read_csv(full), pd.read_csv(resumed))
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
    for name in a["optimizers"]:
        for i, state in a["optimizers"][name]["state"].items():
            for key, v in state.items():
                torch.testing.assert_close(v, b["optimizers"][name]["state"][i][key],
                                           rtol=0, atol=0)

"""Where the paper is silent, MACAW follows the authors' code (docs/design.md §4.1): the WT
initialisation, bootstrapped advantages and value targets, lambda = softplus(rho) learned with
the rates, and strided, contiguous inner batches. Each test here fails on the earlier choices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from macaw.algos.macaw import MACAW, MACAWConfig, meta_step, policy_advantages, polyak
from macaw.algos.common import value_targets
from macaw.data import (Batch, TaskData, contiguous_indices, load_task_buffer,
                        sample_meta_batch, window_indices, write_task_buffer)
from macaw.envs import task_params
from macaw.nets.layers import LayerSpec, adapt_state, init_layer, initial_state

F64 = torch.float64


def _orthogonal_share(wt_init: str) -> float:
    """Share of a 100 -> 100 WT layer's first inner-step change of its effective weights that
    is orthogonal to the plain-gradient direction G = dL/d[W; b]."""
    spec = LayerSpec("l1", 100, 100, 100)
    gen = torch.Generator().manual_seed(0)
    params = init_layer(spec, gen, F64, wt_init)
    state = initial_state(spec, params)
    x = torch.randn(64, 100, generator=gen, dtype=F64)
    flat = state.flat.detach().requires_grad_()
    w, b = flat[:-100].view(100, 100), flat[-100:]
    loss = torch.tanh(x @ w.T + b).pow(2).mean()
    grad = torch.autograd.grad(loss, flat)[0].unsqueeze(0)
    lrs = {name: torch.tensor(1e-3, dtype=F64) for name in spec.param_names()}
    new = adapt_state(spec, params, state._replace(flat=state.flat.unsqueeze(0)), lrs, grad,
                      last=True).flat
    change = (new - state.flat).squeeze(0).detach()
    g = grad.squeeze(0) / grad.norm()
    orthogonal = change - (change @ g) * g
    return float(orthogonal.norm() / change.norm())


def test_wt_init_of_the_authors_gives_an_inner_step_off_the_plain_gradient():
    """With z ~ N(0, 1/out^2) the step moves W mostly through A A^T G (rank latent); with the
    earlier z ~ U(-1, 1) the |z|^2 G term dominates and the step is ~ the plain gradient."""
    assert _orthogonal_share("authors") >= 0.3
    assert _orthogonal_share("uniform") < 0.05


def test_wt_init_of_the_authors_by_its_statistics():
    spec = LayerSpec("l1", 20, 100, 100)
    p = init_layer(spec, torch.Generator().manual_seed(1), F64, "authors")
    assert p["l1.z"].std().item() == pytest.approx(1 / 100, rel=0.2)
    for name in ("l1.wt_weight", "l1.wt_bias"):        # nn.Linear(100, P): U(+-1/sqrt(100))
        assert p[name].abs().max().item() <= 0.1
        assert p[name].std().item() == pytest.approx(0.1 / math.sqrt(3), rel=0.05)


def _write(path, rewards, ends_terminal, gamma=0.5):
    """A point-goal buffer whose observations are (s, 0) with s = 10, 20, ... and whose next
    observation is (s + 10, 0)."""
    n = sum(len(r) for r in rewards)
    obs = np.stack([10.0 * np.arange(1, n + 1), np.zeros(n)], axis=1)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    end = -1
    for r, terminal in zip(rewards, ends_terminal):
        end += len(r)
        (terminals if terminal else timeouts)[end] = True
    return write_task_buffer(
        path, observations=obs, actions=np.zeros((n, 2)), rewards=np.concatenate(rewards),
        next_observations=obs + [10.0, 0.0], terminals=terminals, timeouts=timeouts,
        env_id="MACAW/PointGoal-v0", family="point-goal", task_id=0,
        task_params=task_params("point-goal", 0), gamma=gamma, policy_steps=n,
        algorithm="hand", config={})


def test_bootstrap_tails_by_hand(tmp_path):
    """Episode 1: 3 steps cut by the time limit; episode 2: 2 steps ending in a termination."""
    buffer = load_task_buffer(_write(tmp_path / "b.h5", [[1.0, 2.0, 3.0], [1.0, 1.0]],
                                     [False, True]))
    tail_index, discount = buffer.bootstrap_tails()
    np.testing.assert_array_equal(tail_index, [2, 2, 2, 4, 4])
    np.testing.assert_allclose(discount, [0.125, 0.25, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(buffer.mc_returns[:3], [2.75, 3.5, 3.0])


def test_bootstrapped_advantages_and_targets_by_hand(tmp_path):
    """V(s, 0) = s. Episode s = 10, 20, 30 (rewards 1, 2, 3, gamma 0.5), s_T = 40:
    R + gamma^(T-t) V(s_T) - V(s) = 2.75 + 5 - 10, 3.5 + 10 - 20, 3 + 20 - 30."""
    task = TaskData(_write(tmp_path / "b.h5", [[1.0, 2.0, 3.0]], [False]), "all", 1,
                    torch.device("cpu"))
    batch = Batch(*(x.unsqueeze(0).to(F64) for x in task.batch(np.arange(3))))
    identity = [(torch.tensor([[1.0, 0.0]], dtype=F64), torch.zeros(1, dtype=F64))]
    expected = torch.tensor([[-2.25, -6.5, -7.0]], dtype=F64)
    torch.testing.assert_close(policy_advantages(MACAWConfig(), identity, batch), expected)
    # Without bootstrapping: the plain Monte-Carlo advantage R - V(s).
    torch.testing.assert_close(policy_advantages(MACAWConfig(bootstrap=False), identity, batch),
                               torch.tensor([[2.75 - 10, 3.5 - 20, 3.0 - 30]], dtype=F64))
    # MT+FT's value target R + gamma^(T-t) V(x_T) (here V reads the observation only).
    torch.testing.assert_close(
        value_targets(batch, identity, batch.tail_observations, bootstrap=True),
        torch.tensor([[7.75, 13.5, 23.0]], dtype=F64))


def test_outer_value_target_is_the_polyak_average_by_hand():
    cfg = MACAWConfig(value_target_tau=0.1)
    old = [(torch.tensor([[1.0]]), torch.tensor([2.0]))]
    new = [(torch.tensor([[3.0]]), torch.tensor([-2.0]))]
    (w, b), = polyak(cfg, old, new)
    assert w.item() == pytest.approx(1.2) and b.item() == pytest.approx(1.6)


def test_lambda_is_positive_and_learned_by_the_rate_optimiser(tiny_buffers):
    cfg = MACAWConfig(width=8, latent=4, adv_coef=0.01)
    task = TaskData(tiny_buffers[3], "all", 1, torch.device("cpu"))
    model = MACAW(task.obs_dim, task.act_dim, cfg, seed=0)
    assert model.adv_coef.item() == pytest.approx(0.01, rel=1e-6)
    optimizers = model.optimizers()
    in_rates = {id(p) for g in optimizers["lr"].param_groups for p in g["params"]}
    in_policy = {id(p) for g in optimizers["policy"].param_groups for p in g["params"]}
    assert id(model.adv_coef_rho) in in_rates and id(model.adv_coef_rho) not in in_policy
    rng = np.random.default_rng(0)
    for _ in range(3):
        meta_step(model, optimizers, sample_meta_batch([task], 1, 32, 32, rng))
    assert model.adv_coef.item() != pytest.approx(0.01, rel=1e-6)
    with torch.no_grad():
        model.adv_coef_rho.fill_(-40.0)          # far past where a linear lambda turns negative
    assert model.adv_coef.item() > 0


def test_strided_windows_and_contiguous_inner_batches_by_hand(tmp_path):
    """4 episodes of 5 steps. The good window of 2 episodes is transitions 10..19; stride 3
    keeps 10, 13, 16, 19; a contiguous batch of 2 is two consecutive rows of those."""
    buffer = load_task_buffer(_write(tmp_path / "b.h5", [[0.0] * 5] * 4, [False] * 4))
    window = window_indices(buffer, "good", 2, stride=3)
    np.testing.assert_array_equal(window, [10, 13, 16, 19])
    np.testing.assert_array_equal(window_indices(buffer, "all", 1, stride=7), [0, 7, 14])
    starts = set()
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = contiguous_indices(buffer, 2, rng, window)
        assert tuple(idx) in {(10, 13), (13, 16), (16, 19)}
        starts.add(int(idx[0]))
    assert starts == {10, 13, 16}


def test_meta_batch_inner_is_contiguous_and_disjoint_from_outer(tmp_path):
    path = _write(tmp_path / "b.h5", [[0.0] * 5] * 8, [False] * 8)
    task = TaskData(path, "all", 1, torch.device("cpu"), outer_window="all", inner_stride=2,
                    outer_stride=2)
    batch = sample_meta_batch([task], 1, 4, 10, np.random.default_rng(3))
    inner = (batch.inner.observations[0, :, 0] / 10 - 1).long()     # transition index
    outer = (batch.outer.observations[0, :, 0] / 10 - 1).long()
    assert (inner.diff() == 2).all() and (inner % 2 == 0).all()
    assert (outer % 2 == 0).all() and not set(inner.tolist()) & set(outer.tolist())

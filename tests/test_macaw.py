"""MACAW maths: losses by hand, Appendix B (rank of a WT update), Theorem 1 (the enriched
loss sees what AWR cannot), and fast meta-gradients equal to the reference loop."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from macaw.algos.losses import advantage_loss, awr_loss, awr_weights, value_loss
from macaw.algos.macaw import (MACAW, MACAWConfig, adapt, meta_loss, meta_loss_reference)
from macaw.data import Batch, MetaBatch
from macaw.nets.layers import LayerSpec, effective_weights, init_layer
from macaw.nets.networks import (equal_params_width, gaussian_log_prob, policy_forward,
                                 policy_net, value_net)

F64 = torch.float64


def test_awr_weights_by_hand():
    adv = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)
    std = math.sqrt((1.5 ** 2 + 0.5 ** 2 + 0.5 ** 2 + 1.5 ** 2) / 3)   # unbiased
    expected = [math.exp((a - 2.5) / std) for a in (1, 2, 3, 4)]
    torch.testing.assert_close(awr_weights(adv), torch.tensor(expected, dtype=F64),
                               rtol=1e-6, atol=0)
    # Temperature divides the normalised advantage.
    torch.testing.assert_close(awr_weights(adv, temperature=2.0),
                               torch.tensor([math.exp((a - 2.5) / std / 2) for a in (1, 2, 3, 4)],
                                            dtype=F64), rtol=1e-6, atol=0)


def test_awr_weights_are_clipped_at_20_and_carry_no_gradient():
    adv = torch.zeros(100, dtype=F64, requires_grad=True)
    with torch.no_grad():
        adv[-1] = 100.0   # normalised: 99 / sqrt(99) * ... ~ 9.95 -> exp ~ 2e4
    w = awr_weights(adv)
    assert w[-1].item() == 20.0
    normalised0 = (0 - 1.0) / adv.detach().std().item()
    assert w[0].item() == pytest.approx(math.exp(normalised0), rel=1e-9)
    assert not w.requires_grad


def test_losses_by_hand():
    torch.testing.assert_close(value_loss(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.0])),
                               torch.tensor(5.0))
    torch.testing.assert_close(awr_loss(torch.tensor([-1.0, -2.0]), torch.tensor([2.0, 0.5])),
                               torch.tensor(1.5))
    torch.testing.assert_close(advantage_loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 3.0]])),
                               torch.tensor([2.5]))
    # Fixed std 0.2: log N(a; m, 0.04) for one dimension.
    lp = gaussian_log_prob(torch.tensor([[0.1]]), torch.tensor([[0.3]]))
    expected = -0.5 * 0.2 ** 2 / 0.04 - 0.5 * math.log(2 * math.pi * 0.04)
    assert lp.item() == pytest.approx(expected, rel=1e-6)


def _effective_change_rank(latent: int) -> int:
    """Rank of W' - W after one SGD step on one example through a 4 -> 6 layer."""
    torch.manual_seed(0)
    spec = LayerSpec("l", 4, 6, latent)
    params = {k: v.to(F64).requires_grad_() for k, v in init_layer(spec, dtype=F64).items()}
    x = torch.randn(1, 4, dtype=F64)
    w, b = effective_weights(spec, params)
    loss = torch.tanh(x @ w.T + b).pow(2).sum()
    grads = torch.autograd.grad(loss, list(params.values()))
    adapted = {k: v - 0.1 * g for (k, v), g in zip(params.items(), grads)}
    w_new, _ = effective_weights(spec, adapted)
    return int(torch.linalg.matrix_rank(w_new - w, atol=1e-10))


def test_appendix_b_wt_update_has_rank_above_one_plain_update_rank_one():
    assert _effective_change_rank(latent=0) == 1
    assert _effective_change_rank(latent=8) > 1


def test_theorem_1_enriched_loss_distinguishes_batches_awr_cannot():
    """Advantages (1, -1) and (3, -3) normalise to the same AWR weights, so L_AWR's gradient
    is identical; the advantage-regression term sees the different targets."""
    torch.manual_seed(0)
    net = policy_net(3, 2, width=8, latent=0)
    params = {k: v.requires_grad_() for k, v in net.init_params(0, F64).items()}
    obs, act = torch.randn(2, 3, dtype=F64), torch.rand(2, 2, dtype=F64) * 2 - 1

    def grads(advantages, with_adv: bool):
        weights = [effective_weights(s, params) for s in net.layers]
        mean, pred = policy_forward(weights, obs, act)
        loss = awr_loss(gaussian_log_prob(mean, act), awr_weights(advantages))
        if with_adv:
            loss = loss + 0.01 * advantage_loss(pred, advantages)
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(params.values()),
                                                                    allow_unused=True)
                          if g is not None])

    a, b = torch.tensor([1.0, -1.0], dtype=F64), torch.tensor([3.0, -3.0], dtype=F64)
    torch.testing.assert_close(grads(a, False), grads(b, False))
    assert (grads(a, True) - grads(b, True)).abs().max() > 1e-4


def _task_batch(g, n_tasks, size, obs_dim, act_dim) -> Batch:
    def randn(*s):
        return torch.randn(*s, generator=g, dtype=F64)

    obs = randn(n_tasks, size, obs_dim)
    return Batch(obs, torch.rand(n_tasks, size, act_dim, generator=g, dtype=F64) * 2 - 1,
                 randn(n_tasks, size), randn(n_tasks, size, obs_dim),
                 torch.zeros(n_tasks, size, dtype=F64), randn(n_tasks, size),
                 randn(n_tasks, size, obs_dim),
                 torch.rand(n_tasks, size, generator=g, dtype=F64))


def _batch(n_tasks=3, size=16, obs_dim=5, act_dim=2, seed=0) -> MetaBatch:
    g = torch.Generator().manual_seed(seed)
    inner = _task_batch(g, n_tasks, size, obs_dim, act_dim)
    return MetaBatch(torch.arange(n_tasks), inner, _task_batch(g, n_tasks, size, obs_dim, act_dim))


@pytest.mark.parametrize("latent,adv_loss,inner_steps,bootstrap",
                         [(*c, True) for c in itertools.product([0, 7], [True, False], [1, 2])]
                         + [(7, True, 2, False)])
def test_fast_meta_gradients_equal_reference(latent, adv_loss, inner_steps, bootstrap):
    cfg = MACAWConfig(width=8, latent=latent, adv_loss=adv_loss, inner_steps=inner_steps,
                      inner_lr=0.05, bootstrap=bootstrap)
    model = MACAW(5, 2, cfg, seed=3, dtype=F64)
    batch = _batch()
    params = [p for p in model.parameters() if p.requires_grad]
    lv, lp = meta_loss(model, batch)
    rv, rp = meta_loss_reference(model, batch)
    torch.testing.assert_close(lv, rv, rtol=1e-10, atol=0)
    torch.testing.assert_close(lp, rp, rtol=1e-10, atol=0)
    fast = torch.autograd.grad(lv + lp, params, allow_unused=True)
    ref = torch.autograd.grad(rv + rp, params, allow_unused=True)
    n_nonzero = 0
    for f, r in zip(fast, ref):
        if f is None and r is None:
            continue
        f = torch.zeros_like(r) if f is None else f
        r = torch.zeros_like(f) if r is None else r
        scale = r.abs().max().clamp_min(1e-300)
        assert ((f - r).abs().max() / scale).item() <= 1e-6
        n_nonzero += bool(r.abs().max() > 0)
    # Meta-gradients reach every value and policy tensor, every learned rate and lambda,
    # except: without L_ADV the advantage head and its rates are unused; with one inner step
    # the *adapted* head is unused, so the head's rates get no gradient.
    n_head = sum(name.startswith("adv") for name in model.params("policy"))
    n_unused = 2 * n_head if not adv_loss else (n_head if inner_steps == 1 else 0)
    assert n_nonzero == len(params) - n_unused


def test_inner_value_steps_repeat_only_the_policy_step_on_both_paths():
    """``inner_value_steps=1`` with 3 inner steps: the value is the one-step value, the policy
    takes 3 steps against it (not the one-step policy), and the reference path agrees."""
    batch = _batch()

    def adapted(**kw):
        cfg = MACAWConfig(width=8, latent=7, inner_lr=0.05, **kw)
        model = MACAW(5, 2, cfg, seed=3, dtype=F64)
        return model, adapt(model, batch.inner, cfg.inner_steps)

    _, one = adapted(inner_steps=1)
    _, three = adapted(inner_steps=3)
    model, mixed = adapted(inner_steps=3, inner_value_steps=1)
    for (w1, b1), (wm, bm), (w3, _) in zip(one.value, mixed.value, three.value):
        torch.testing.assert_close(wm, w1, rtol=0, atol=0)
        torch.testing.assert_close(bm, b1, rtol=0, atol=0)
        assert not torch.allclose(w3, w1)
    assert not torch.allclose(mixed.policy[0][0], one.policy[0][0])
    assert not torch.allclose(mixed.policy[0][0], three.policy[0][0])
    lv, lp = meta_loss(model, batch)
    rv, rp = meta_loss_reference(model, batch)
    torch.testing.assert_close(lv, rv, rtol=1e-10, atol=0)
    torch.testing.assert_close(lp, rp, rtol=1e-10, atol=0)


@pytest.mark.parametrize("latent,inner_steps", [(0, 1), (7, 1), (7, 2)])
def test_meta_bc_fast_equals_reference_and_ignores_returns(latent, inner_steps):
    cfg = MACAWConfig(width=8, latent=latent, adv_loss=False, behaviour_cloning=True,
                      inner_steps=inner_steps, inner_lr=0.05)
    model = MACAW(5, 2, cfg, seed=3, dtype=F64)
    batch = _batch()
    params = [p for p in model.parameters() if p.requires_grad]
    lv, lp = meta_loss(model, batch)
    rv, rp = meta_loss_reference(model, batch)
    assert lv.item() == 0.0 and rv.item() == 0.0          # no value function in Meta-BC
    torch.testing.assert_close(lp, rp, rtol=1e-10, atol=0)
    for f, r in zip(torch.autograd.grad(lp, params, allow_unused=True),
                    torch.autograd.grad(rp, params, allow_unused=True)):
        if r is not None:
            assert ((f - r).abs().max() / r.abs().max().clamp_min(1e-300)).item() <= 1e-6
    # Returns play no part in behaviour cloning: other returns, same loss.
    shuffled = batch._replace(
        inner=batch.inner._replace(mc_returns=batch.inner.mc_returns * -3 + 1),
        outer=batch.outer._replace(mc_returns=batch.outer.mc_returns * 5))
    torch.testing.assert_close(meta_loss(model, shuffled)[1], lp, rtol=0, atol=0)


def test_meta_bc_inner_step_is_the_maml_step_on_the_bc_likelihood():
    """Meta-BC's inner loop (shared with MACAW) equals theta - alpha * grad(-mean log pi)."""
    cfg = MACAWConfig(width=8, latent=0, adv_loss=False, behaviour_cloning=True, inner_lr=0.05)
    model = MACAW(5, 2, cfg, seed=3, dtype=F64)
    b = _batch(n_tasks=1).inner
    adapted = adapt(model, b, n_steps=1).policy
    theta = model.params("policy")
    mean, _ = policy_forward(effective_layers(model, theta), b.observations[0])
    nll = -gaussian_log_prob(mean, b.actions[0]).mean()
    grads = dict(zip(theta, torch.autograd.grad(nll, list(theta.values()), allow_unused=True)))
    for spec, (w, bias) in zip(model.policy_net.layers, adapted):
        if spec.name.startswith("adv"):
            continue
        lr = model.inner_lrs("policy")
        torch.testing.assert_close(w[0], theta[f"{spec.name}.weight"]
                                   - lr[f"{spec.name}.weight"] * grads[f"{spec.name}.weight"])
        torch.testing.assert_close(bias[0], theta[f"{spec.name}.bias"]
                                   - lr[f"{spec.name}.bias"] * grads[f"{spec.name}.bias"])


def effective_layers(model, params):
    return [effective_weights(spec, params) for spec in model.policy_net.layers]


def test_adaptation_moves_only_with_data_and_per_task():
    """Two tasks with different data get different adapted policies; identical data, same."""
    model = MACAW(5, 2, MACAWConfig(width=8, latent=4, inner_lr=0.1), dtype=F64)
    b = _batch(n_tasks=2).inner
    first = Batch(*(torch.stack([x[0], x[0]]) for x in b))
    ret = torch.stack([b.mc_returns[0], b.mc_returns[1]])
    p_w = adapt(model, first._replace(mc_returns=ret), n_steps=1).policy
    p_same = adapt(model, first, n_steps=1).policy
    w_last = p_w[0][0]
    assert (w_last[0] - w_last[1]).abs().max() > 1e-8
    torch.testing.assert_close(p_same[0][0][0], p_same[0][0][1])


def test_equal_params_width_matches_parameter_counts():
    width = equal_params_width(lambda w, lat: (policy_net(17, 6, w, lat), value_net(17, w, lat)),
                               100, 100)
    wt = policy_net(17, 6).n_params() + value_net(17).n_params()
    def plain(w):
        return policy_net(17, 6, w, 0).n_params() + value_net(17, w, 0).n_params()
    assert plain(width - 1) < wt <= plain(width + 1)
    assert abs(plain(width) - wt) <= abs(plain(width + 1) - wt)
    # By hand: a 100 -> 100 WT layer has (100*100 + 100) * (100 + 1) + 100 parameters.
    assert LayerSpec("l", 100, 100, 100).n_params() == 1_020_200
    for net in (policy_net(17, 6), value_net(17), policy_net(17, 6, width, 0)):
        assert net.n_params() == sum(v.numel() for v in net.init_params(0).values())


@pytest.mark.parametrize("value_lr,policy_lr", [(1e-4, 1e-2), (None, 1e-2), (None, None)])
def test_separate_inner_rates_initialise_rho_to_inverse_softplus(value_lr, policy_lr):
    """Table 4, Meta-World: inner value rate 1e-4, inner policy rate 1e-2; unset -> inner_lr."""
    cfg = MACAWConfig(width=8, latent=4, inner_lr=3e-3, inner_value_lr=value_lr,
                      inner_policy_lr=policy_lr)
    model = MACAW(5, 2, cfg, dtype=F64)
    for which, lr in (("value", value_lr), ("policy", policy_lr)):
        expected = 3e-3 if lr is None else lr
        rho = getattr(model, f"{which}_rho")
        assert len(rho) == len(getattr(model, which)) > 0
        for value in rho.values():
            # softplus^-1(y) = log(e^y - 1), by hand
            assert value.item() == pytest.approx(math.log(math.exp(expected) - 1), rel=1e-12)
        for lr_tensor in model.inner_lrs(which).values():
            assert lr_tensor.item() == pytest.approx(expected, rel=1e-9)


def test_effective_sample_size_by_hand():
    """Kish's ESS as a share of the batch: uniform weights 1, one non-zero weight 1/B, and
    weights (1, 1, 2, 4) give 8^2 / 22 / 4."""
    from macaw.algos.macaw import effective_sample_size

    w = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 5.0, 0.0], [1.0, 1.0, 2.0, 4.0]])
    assert effective_sample_size(w).tolist() == pytest.approx([1.0, 0.25, 64 / 22 / 4])

"""Few-shot classification study (Fig. 6): the class split, task shapes, the three models'
parameter counts by hand, MAML's inner step and meta-gradient, runs, CSVs and the figure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import kill_on_call, run_killed_then_resumed

from macaw.cli import main as cli_main
from macaw.fewshot import (TEST_CLASSES, TRAIN_CLASSES, FewShotConfig, FewShotLearner, adapt,
                           classifier_logits, classifier_net, config_path,
                           load_digit_images, nowt_params_width, meta_loss, run_fewshot,
                           sample_tasks, task_losses, variant_net)
from macaw.runs import Checkpoint

F64 = torch.float64
TINY = {"ways": 3, "query_per_class": 2, "tasks_per_batch": 2, "steps": 5, "eval_every": 2,
        "eval_tasks": 4, "width": 8, "latent": 2, "n_hidden": 2}


@pytest.fixture(scope="module")
def images():
    return load_digit_images()


def test_split_has_disjoint_digits_and_forty_classes(images):
    assert {c % 10 for c in TRAIN_CLASSES} == {0, 1, 2, 3, 4}
    assert {c % 10 for c in TEST_CLASSES} == {5, 6, 7, 8, 9}
    assert len(TRAIN_CLASSES) == len(TEST_CLASSES) == 20
    assert set(np.unique(images.y)) == set(TRAIN_CLASSES) | set(TEST_CLASSES)
    # Class 13 is digit 3 turned by 90 degrees: its images are digit 3's, rotated.
    x3, x13 = images.x[images.y == 3], images.x[images.y == 13]
    torch.testing.assert_close(x13[0].reshape(8, 8), torch.rot90(x3[0].reshape(8, 8), 1))


@pytest.mark.parametrize("side", ["train", "test"])
def test_sampler_never_mixes_train_and_test_classes(images, side):
    classes, other = ((TRAIN_CLASSES, TEST_CLASSES) if side == "train"
                      else (TEST_CLASSES, TRAIN_CLASSES))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        tasks = sample_tasks(images, classes, 50, ways=5, shots=1, query=3, rng=rng)
        seen |= set(tasks.classes.ravel().tolist())
        assert set(tasks.classes.ravel().tolist()) <= set(classes)
        # Every image really is of the class its label stands for in its task.
        for idx, lab in ((tasks.support_index, tasks.support_y),
                         (tasks.query_index, tasks.query_y)):
            true_class = images.y[idx]
            assert (true_class == np.take_along_axis(tasks.classes, lab.numpy(), 1)).all()
            assert not set(true_class.ravel().tolist()) & set(other)
    assert seen == set(classes)        # 1000 tasks reach every class of the side


def test_task_shapes_labels_and_distinct_images(images):
    tasks = sample_tasks(images, TEST_CLASSES, 7, ways=5, shots=1, query=4,
                         rng=np.random.default_rng(1))
    assert tasks.support_x.shape == (7, 5, 64) and tasks.query_x.shape == (7, 20, 64)
    assert tasks.support_y.shape == (7, 5) and tasks.query_y.shape == (7, 20)
    for t in range(7):
        assert sorted(tasks.support_y[t].tolist()) == list(range(5))       # a permutation
        assert np.bincount(tasks.query_y[t].numpy()).tolist() == [4] * 5
        assert len(set(tasks.classes[t].tolist())) == 5
        used = np.concatenate([tasks.support_index[t], tasks.query_index[t]])
        assert len(set(used.tolist())) == 25                               # no image twice
    torch.testing.assert_close(tasks.support_x[3], images.x[tasks.support_index[3]])
    # Class order (the label permutation) varies between tasks.
    assert len({tuple(c) for c in tasks.classes.tolist()}) > 1


def test_parameter_counts_by_hand():
    # 64 -> 128 -> 128 -> 128 -> 128 -> 5. Plain layers: out * (in + 1).
    plain = 128 * 65 + 3 * (128 * 129) + 5 * 129
    assert plain == 8_320 + 49_536 + 645 == 58_501
    assert variant_net(FewShotConfig(variant="nowt_width")).n_params() == plain
    # WT layer: wt_weight (out*(in+1), 32) + wt_bias (out*(in+1)) + z (32), for 5 layers.
    wt = plain * 32 + plain + 5 * 32
    assert wt == 1_930_693
    assert variant_net(FewShotConfig(variant="wt")).n_params() == wt
    # Plain width w: 65w + 3(w^2 + w) + 5(w + 1) = 3w^2 + 73w + 5; w = 790.
    assert nowt_params_width(5, 128, 32, 4) == 790
    assert 3 * 790 ** 2 + 73 * 790 + 5 == 1_929_975
    net = variant_net(FewShotConfig(variant="nowt_params"))
    assert [s.out_features for s in net.layers] == [790] * 4 + [5]
    assert net.n_params() == 1_929_975


@pytest.mark.parametrize("ways,width,latent,n_hidden", [(5, 128, 32, 4), (3, 10, 4, 2),
                                                        (20, 64, 8, 3)])
def test_equal_params_width_is_the_closest_match(ways, width, latent, n_hidden):
    target = classifier_net(ways, width, latent, n_hidden).n_params()

    def gap(w):
        return abs(classifier_net(ways, w, 0, n_hidden).n_params() - target)

    best = nowt_params_width(ways, width, latent, n_hidden)
    assert gap(best) == min(gap(w) for w in range(1, 3 * best))


def _f64_learner(variant: str, seed: int = 0) -> FewShotLearner:
    cfg = FewShotConfig(variant=variant, inner_lr=0.3, **{**TINY, "ways": 5})
    learner = FewShotLearner.create(cfg)
    learner.params = {k: v.detach().to(F64).requires_grad_() for k, v in learner.params.items()}
    # Distinct rates per tensor, so a mix-up of names would show.
    learner.rho = {k: torch.tensor(-1.0 - 0.1 * i, dtype=F64, requires_grad=True)
                   for i, k in enumerate(learner.params)}
    return learner


def _f64_tasks(images, n_tasks=3):
    tasks = sample_tasks(images, TRAIN_CLASSES, n_tasks, ways=5, shots=1, query=2,
                         rng=np.random.default_rng(2))
    return tasks._replace(support_x=tasks.support_x.to(F64), query_x=tasks.query_x.to(F64))


@pytest.mark.parametrize("variant", ["wt", "nowt_width"])
def test_one_inner_step_is_minus_lr_times_each_tasks_gradient(images, variant):
    learner = _f64_learner(variant)
    tasks = _f64_tasks(images)
    lrs = learner.inner_lrs()
    adapted = adapt(learner.net, learner.params, lrs, tasks.support_x, tasks.support_y, 1)
    for t in range(3):
        loss = task_losses(classifier_logits(learner.net, learner.params,
                                             tasks.support_x[t:t + 1]),
                           tasks.support_y[t:t + 1]).sum()
        grads = torch.autograd.grad(loss, list(learner.params.values()))
        for (k, p), g in zip(learner.params.items(), grads):
            assert g.abs().max() > 0
            torch.testing.assert_close(adapted[k][t] - p, -lrs[k] * g, rtol=1e-10, atol=1e-13)


def test_meta_gradient_is_second_order(images):
    """The meta-gradient matches central finite differences of the meta-loss; a first-order
    approximation (no gradient through the inner gradient) would not."""
    learner = _f64_learner("wt")
    tasks = _f64_tasks(images, n_tasks=2)
    loss, _ = meta_loss(learner, tasks, inner_steps=2)
    name = "l1.z"
    grad = torch.autograd.grad(loss, [learner.params[name], learner.rho["l0.z"]])
    eps = 1e-6
    for which, (tensor, g) in enumerate(zip((learner.params[name], learner.rho["l0.z"]), grad)):
        for i in range(min(3, tensor.numel())):
            def shifted_loss(delta: float) -> float:
                with torch.no_grad():
                    tensor.view(-1)[i] += delta
                value = meta_loss(learner, tasks, 2)[0].item()
                with torch.no_grad():
                    tensor.view(-1)[i] -= delta
                return value

            up, down = shifted_loss(eps), shifted_loss(-eps)
            assert g.view(-1)[i].item() == pytest.approx((up - down) / (2 * eps),
                                                         rel=1e-5, abs=1e-9), which

    # First-order MAML (inner gradient detached) gives another gradient on the same task.
    one = _f64_tasks(images, n_tasks=1)
    params, lrs = learner.params, learner.inner_lrs()
    inner = task_losses(classifier_logits(learner.net, params, one.support_x), one.support_y)
    grads = torch.autograd.grad(inner.sum(), list(params.values()))
    adapted = {k: v - lrs[k] * g for (k, v), g in zip(params.items(), grads)}
    first_order = task_losses(classifier_logits(learner.net, adapted, one.query_x),
                              one.query_y).mean()
    second_order = meta_loss(learner, one, 1)[0]
    assert first_order.item() == pytest.approx(second_order.item(), rel=1e-12)
    first = torch.autograd.grad(first_order, [params[name]])[0]
    second = torch.autograd.grad(second_order, [params[name]])[0]
    assert not torch.allclose(first, second, rtol=1e-3, atol=0)


@pytest.mark.parametrize("variant", ["wt", "nowt_width", "nowt_params"])
def test_tiny_run_writes_steps_accuracies_and_config(tmp_path, variant):
    cfg = FewShotConfig.from_dict({**TINY, "variant": variant, "seed": 3})
    out = tmp_path / "run.csv"
    rows = run_fewshot(cfg, out, progress=False)
    df = pd.read_csv(out)
    assert list(df.columns) == ["step", "accuracy"]
    assert df.step.tolist() == [0, 2, 4, 5]                 # step 0, every 2, the last
    assert df.accuracy.between(0, 1).all()
    # 4 tasks x 3 ways x 2 queries = 24 answers: accuracies are multiples of 1/24.
    np.testing.assert_allclose(df.accuracy * 24, np.round(df.accuracy * 24), atol=1e-4)
    assert [s for s, _ in rows] == df.step.tolist()
    meta = yaml.safe_load(config_path(out).read_text())
    assert meta["config"] == dataclasses.asdict(cfg)
    assert meta["n_params"] == variant_net(cfg).n_params()
    assert meta["width"] == (nowt_params_width(3, 8, 2, 2) if variant == "nowt_params" else 8)
    assert not list(tmp_path.glob(".*tmp"))                  # atomic writes left no temp


def test_same_seed_same_csv_other_seed_differs(tmp_path):
    params = {**TINY, "steps": 6, "eval_tasks": 20}
    paths = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        paths.append(tmp_path / f"{name}.csv")
        run_fewshot(FewShotConfig.from_dict({**params, "seed": seed}), paths[-1],
                    progress=False)
    a, b, c = (p.read_text() for p in paths)
    assert a == b
    assert a != c


@pytest.mark.parametrize("variant", ["wt", "nowt_params"])
def test_killed_run_resumes_to_the_same_files(tmp_path, monkeypatch, variant):
    import macaw.fewshot as fewshot

    cfg = FewShotConfig.from_dict({**TINY, "variant": variant, "steps": 7, "seed": 2,
                                   "outer_lr": 0.01, "eval_tasks": 20})
    whole = tmp_path / "whole" / "seed2.csv"
    run_fewshot(cfg, whole, progress=False)
    killed = tmp_path / "killed" / "seed2.csv"
    # The 5th meta-step is killed: the checkpoint holds step 4 (evaluations at 2 and 4).
    rows = run_killed_then_resumed(lambda _: run_fewshot(cfg, killed, progress=False),
                                   killed.parent, monkeypatch, fewshot, "meta_loss", kill_at=5,
                                   expect_step=4, checkpoint="seed2.checkpoint.pt")
    assert [s for s, _ in rows] == [0, 2, 4, 6, 7]
    assert killed.read_text() == whole.read_text()
    # The learned inner rates are the meta-parameters' fingerprint (accuracies are coarse).
    final = [yaml.safe_load(config_path(p).read_text())["final_inner_lrs"] for p in (killed, whole)]
    assert final[0] == final[1]
    assert not Checkpoint.beside(killed).exists() and not Checkpoint.beside(whole).exists()


def test_checkpoint_of_another_config_is_refused_or_set_aside(tmp_path, monkeypatch):
    import macaw.fewshot as fewshot

    cfg = FewShotConfig.from_dict({**TINY, "steps": 7})
    out = tmp_path / "seed0.csv"
    original = kill_on_call(monkeypatch, fewshot, "meta_loss", kill_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_fewshot(cfg, out, progress=False)
    monkeypatch.setattr(fewshot, "meta_loss", original)
    other = FewShotConfig.from_dict({**TINY, "steps": 7, "outer_lr": 0.01})
    with pytest.raises(ValueError, match=r"seed0.checkpoint.pt: .*another config "
                                         r"\(outer_lr: 0.001 -> 0.01\)"):
        run_fewshot(other, out, progress=False)
    rows = run_fewshot(other, out, progress=False, restart_on_config_change=True)
    assert [s for s, _ in rows] == [0, 2, 4, 6, 7]
    assert (tmp_path / "seed0.checkpoint.stale.pt").exists()
    fresh = tmp_path / "fresh.csv"
    run_fewshot(other, fresh, progress=False)
    assert out.read_text() == fresh.read_text()          # started afresh, not from step 2


@pytest.mark.parametrize("bad,match", [({"variant": "big"}, "variant"),
                                       ({"ways": 21}, "ways"), ({"nope": 1}, "nope"),
                                       ({"inner_steps": 0}, "inner_steps")])
def test_config_errors_name_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        FewShotConfig.from_dict(bad)


def test_cli_runs_and_fig6_plots_mean_over_seeds(tmp_path):
    import json

    csvs = {}
    for variant in ("wt", "nowt_width"):
        for seed in (0, 1):
            csvs[variant, seed] = tmp_path / variant / f"seed{seed}.csv"
            assert cli_main(["fewshot", "--variant", variant, "--seed", str(seed),
                             "--params", json.dumps(TINY), "--out",
                             str(csvs[variant, seed]), "--no-progress"]) == 0
    runs = [a for (v, s), p in csvs.items() for a in ("--run", f"label {v}", str(s), str(p))]
    pdf, table = tmp_path / "fig6.pdf", tmp_path / "fig6.csv"
    assert cli_main(["plot-fig6", *runs, "--pdf", str(pdf), "--csv", str(table)]) == 0
    assert pdf.read_bytes()[:5] == b"%PDF-"
    df = pd.read_csv(table)
    assert sorted(df.label.unique()) == ["label nowt_width", "label wt"]
    assert len(df) == 4 * 4                                  # 4 runs x 4 evaluations
    run = pd.read_csv(csvs["wt", 1])
    mine = df[(df.label == "label wt") & (df.seed == 1)]
    np.testing.assert_allclose(mine.accuracy, run.accuracy)
    assert (df[df.label == "label wt"].n_params
            == classifier_net(3, 8, 2, 2).n_params()).all()
    # A run without its config YAML is refused with a clear message.
    config_path(csvs["wt", 0]).unlink()
    assert cli_main(["plot-fig6", *runs, "--pdf", str(pdf), "--csv", str(table)]) == 2

"""Meta-training loop: batches, run layout, resume = uninterrupted, non-finite guard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import Payload, run_killed_then_resumed
import yaml

import macaw.algos.macaw as macaw_algo
import macaw.data.tasks as data_tasks
from macaw.algos.mt_ft import MTFT
from macaw.data import TaskData, sample_meta_batch
from macaw.meta_train import MetaTrainConfig, build_learner, run_meta_training


def tiny_config(**kw) -> MetaTrainConfig:
    base = {"family": "cheetah-vel", "steps": 6, "eval_every": 3, "checkpoint_every": 2,
            "inner_batch": 32, "outer_batch": 32, "eval_batch": 32, "device": "cpu",
            "outer_stride": 2, "inner_stride": 2,
            "macaw": {"width": 16, "latent": 4, "inner_lr": 0.01}}
    return MetaTrainConfig.from_dict({**base, **kw})


def test_inner_and_outer_batches_never_share_a_transition(tiny_buffers):
    cfg = tiny_config(inner_batch=60, outer_batch=100, inner_stride=3, outer_stride=1)
    task = TaskData.for_run(tiny_buffers[3], cfg, torch.device("cpu"))
    rng = np.random.default_rng(0)
    picked = {}
    original = data_tasks.uniform_indices

    def spy(buffer, batch_size, rng, indices=None, exclude=None):
        out = original(buffer, batch_size, rng, indices, exclude)
        picked.setdefault("pairs", []).append((np.asarray(exclude), out))
        return out

    data_tasks.uniform_indices = spy
    try:
        for _ in range(50):
            batch = sample_meta_batch([task], 5, cfg.inner_batch, cfg.outer_batch, rng)
    finally:
        data_tasks.uniform_indices = original
    for inner, outer in picked["pairs"]:
        assert len(set(inner) & set(outer)) == 0
        assert np.all(np.diff(inner) == 3)      # consecutive rows of the stride-3 window
    assert batch.inner.observations.shape == (1, 60, 17)
    assert batch.outer.actions.shape == (1, 100, 6)


def test_too_small_a_window_names_the_task_and_the_settings(tiny_buffers):
    cfg = tiny_config(inner_batch=60, inner_stride=7)        # 400 steps / 7 = 58 rows
    task = TaskData.for_run(tiny_buffers[3], cfg, torch.device("cpu"))
    with pytest.raises(ValueError, match="task 3.*inner window.*inner_stride"):
        sample_meta_batch([task], 1, cfg.inner_batch, cfg.outer_batch, np.random.default_rng(0))


def test_run_layout_and_eval_csv(tiny_buffers, tmp_path):
    cfg = tiny_config()
    eval_csv = run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path,
                                 progress=False)
    df = pd.read_csv(eval_csv)
    assert list(df.columns) == ["step", "task_id", "episode", "return", "unadapted_return"]
    assert df.step.tolist() == [0] * 3 + [3] * 3 + [6] * 3 and set(df.task_id) == {11}
    assert df.episode.tolist() == [0, 1, 2] * 3
    # cheetah-vel rewards are <= 0 and an episode is 200 steps.
    for column in ("return", "unadapted_return"):
        assert (df[column] <= 0).all() and (df[column] > -200 * 4).all()
    # Every episode adapts on its own batch: the three adapted episodes of a step differ.
    assert df.groupby("step")["return"].nunique().min() > 1
    train = pd.read_csv(tmp_path / "train.csv")
    assert train.step.tolist() == [3, 6]
    assert (train.adv_coef > 0).all() and (train.policy_inner_lr > 0).all()
    assert (train.heldout_value_loss_before > 0).all()
    assert (train.heldout_target_var > 0).all()
    # Kish's ESS as a share of the batch: 1 for uniform weights, 1/256 for one sample.
    for ess in (train.inner_weight_ess, train.outer_weight_ess):
        assert ((ess > 1 / cfg.inner_batch) & (ess <= 1.0)).all()
    resolved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert resolved["train_tasks"] == [3] and resolved["test_tasks"] == [11]
    assert resolved["provenance"]["torch"] == torch.__version__
    assert resolved["provenance"]["threads"] == torch.get_num_threads()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 6


def test_killed_run_resumes_to_the_same_result(tiny_buffers, tmp_path, monkeypatch):
    cfg = tiny_config()
    full = run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path / "a",
                             progress=False)

    resumed = run_killed_then_resumed(
        lambda d: run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], d,
                                    progress=False),
        tmp_path / "b", monkeypatch, macaw_algo, "meta_step", kill_at=5, expect_step=4)
    pd.testing.assert_frame_equal(pd.read_csv(full), pd.read_csv(resumed))
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_buffers, tmp_path,
                                                              monkeypatch):
    cfg = tiny_config()
    original, calls = macaw_algo.meta_step, {"n": 0}

    def nan_at_3(*args, **kwargs):
        calls["n"] += 1
        stats = original(*args, **kwargs)
        return {**stats, "value_loss": float("nan")} if calls["n"] == 3 else stats

    monkeypatch.setattr(macaw_algo, "meta_step", nan_at_3)
    with pytest.raises(FloatingPointError, match="non-finite loss at meta-step 3.*step 2"):
        run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path, progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 2


@pytest.mark.parametrize("bad,match", [({"method": "maml"}, "method 'maml' unknown"),
                                       ({"inner_window": "great"}, "inner_window"),
                                       ({"stepz": 3}, r"unknown field\(s\) \['stepz'\]")])
def test_config_errors_name_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        MetaTrainConfig.from_dict({"family": "cheetah-vel", **bad})


class _ScriptedEnv:
    """Five steps of reward 1.5; ``info["success"]`` true at step ``success_at`` only."""

    def __init__(self, success_at):
        self.success_at, self.t = success_at, 0

    def reset(self, seed=None):
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.t += 1
        return (np.zeros(3, np.float32), 1.5, False, self.t == 5,
                {"success": self.t == self.success_at})

    def close(self):
        pass


@pytest.mark.parametrize("family,success_at,expected", [("ml45", 2, True), ("ml45", None, False),
                                                         ("cheetah-vel", 2, None)])
def test_episode_succeeds_if_any_step_succeeds_only_for_flagged_families(
        monkeypatch, family, success_at, expected):
    import macaw.evaluate as evaluate

    monkeypatch.setattr(evaluate, "make_task_env", lambda fam, task: _ScriptedEnv(success_at))
    episode = evaluate.rollout_episode(family, 0, lambda obs: torch.zeros(2), seed=0)
    # success at step 2 of 5 counts although the last step does not succeed
    assert episode == (7.5, expected)
    assert evaluate.rollout_return(family, 0, lambda obs: torch.zeros(2), seed=0) == 7.5


def test_checkpoint_from_before_a_new_optional_field_still_resumes(tiny_buffers, tmp_path):
    """A field added later (inner_value_lr / inner_policy_lr) matches an older checkpoint
    while it is None; set to anything else, the config differs."""
    cfg = tiny_config(steps=2, eval_every=2)
    run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path, progress=False)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    for key in ("inner_value_lr", "inner_policy_lr"):
        del ckpt["config"]["macaw"][key]
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    before = (tmp_path / "eval.csv").read_text()
    run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path, progress=False)
    assert (tmp_path / "eval.csv").read_text() == before
    changed = tiny_config(steps=2, eval_every=2,
                          macaw={"width": 16, "latent": 4, "inner_lr": 0.01,
                                 "inner_value_lr": 1e-4})
    with pytest.raises(ValueError, match="another config"):
        run_meta_training(changed, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path,
                          progress=False)


def test_a_run_directory_from_before_a_rename_resumes_and_loads(tiny_buffers, tmp_path):
    """A checkpoint and config.yaml saved under the old field names (inner_quality,
    buffer_skip, ...) continue and load as the same run; the finished run equals one made
    under the new names in one go."""
    from macaw.meta_train import load_finished_run

    old_names = {new: old for old, new in MetaTrainConfig.RENAMED.items()}
    run_meta_training(tiny_config(steps=2, eval_every=2), [tiny_buffers[3]], [tiny_buffers[11]],
                      tmp_path / "old", progress=False)
    ckpt = torch.load(tmp_path / "old/checkpoint.pt", weights_only=False)
    ckpt["config"] = {old_names.get(k, k): v for k, v in ckpt["config"].items()}
    assert "buffer_skip" in ckpt["config"] and "outer_stride" not in ckpt["config"]
    ckpt["config"]["macaw"]["value_target_polyak"] = 0.9    # the old sense: 1 - tau
    del ckpt["config"]["macaw"]["value_target_tau"]
    torch.save(ckpt, tmp_path / "old/checkpoint.pt")
    cfg = tiny_config(steps=4, eval_every=2)
    run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path / "old",
                      progress=False)
    run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path / "new",
                      progress=False)
    assert (tmp_path / "old/eval.csv").read_text() == (tmp_path / "new/eval.csv").read_text()
    saved = yaml.safe_load((tmp_path / "old/config.yaml").read_text())
    (tmp_path / "old/config.yaml").write_text(
        yaml.safe_dump({old_names.get(k, k): v for k, v in saved.items()}, sort_keys=False))
    meta, _, _ = load_finished_run(tmp_path / "old", [tiny_buffers[11]])
    assert meta == cfg


def test_test_time_steps_reproduce_the_last_evaluation_and_vary_with_n(tiny_buffers,
                                                                        tmp_path):
    from macaw.test_time import summarise_test_time_steps, test_time_steps

    cfg = tiny_config(eval_episodes=2)
    run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path, progress=False)
    df = test_time_steps(tmp_path, [tiny_buffers[11]], [1, 2], episodes=2,
                         out_csv=tmp_path / "steps.csv")
    last = pd.read_csv(tmp_path / "eval.csv").query("step == 6")
    one = df[df.test_steps == 1]
    np.testing.assert_allclose(one["return"].to_numpy(), last["return"].to_numpy(), atol=1e-4)
    two = df[df.test_steps == 2]["return"].to_numpy()
    # Two full steps at the rates learned for one diverge here, as on walker-params
    # (NaN returns): the second value step at the learned value rate blows up.
    assert not np.isfinite(two).any()
    # the unadapted policy does not depend on the number of steps
    np.testing.assert_allclose(df[df.test_steps == 2]["unadapted_return"].to_numpy(),
                               one["unadapted_return"].to_numpy())
    assert summarise_test_time_steps(df).test_steps.tolist() == [1, 2]
    # One value step at every n: n = 1 is still the evaluation; at n = 2 only the policy
    # step is repeated, which stays finite and adapts differently from one step.
    policy_only = test_time_steps(tmp_path, [tiny_buffers[11]], [1, 2], episodes=2,
                                  out_csv=tmp_path / "steps_v1.csv", value_steps=1)
    np.testing.assert_allclose(policy_only.query("test_steps == 1")["return"].to_numpy(),
                               one["return"].to_numpy(), atol=1e-4)
    policy_two = policy_only.query("test_steps == 2")["return"].to_numpy()
    assert np.isfinite(policy_two).all()
    assert not np.allclose(policy_two, one["return"].to_numpy())


def test_a_diverged_task_is_counted_and_left_out_of_every_rows_means():
    """Averaging the finite episodes alone drops the task from exactly the rows where it
    diverged and flatters them (docs/results/fidelity: the fastest target at 5 and 20 steps)."""
    from macaw.test_time import diverged_tasks, summarise_test_time_steps

    df = pd.DataFrame({"test_steps": [1, 1, 1, 5, 5, 5], "task_id": [2, 23, 23, 2, 23, 23],
                       "episode": [0, 0, 1, 0, 0, 1],
                       "return": [-40.0, -200.0, -180.0, -30.0, np.nan, -400.0],
                       "unadapted_return": [-50.0, -360.0, -360.0, -50.0, -360.0, -360.0]})
    assert diverged_tasks(df) == [23]
    summary = summarise_test_time_steps(df).set_index("test_steps")
    assert summary["episodes"].tolist() == [3, 3]
    assert summary["diverged"].tolist() == [0, 1]
    assert summary["tasks"].tolist() == [1, 1]
    # task 2 alone in both rows, not -140 / -215 at n = 1 and -30 / -215 at n = 5
    assert summary["mean_return"].tolist() == [-40.0, -30.0]
    assert summary["mean_gain"].tolist() == [10.0, 20.0]


def test_buffers_of_another_family_or_task_are_refused(tiny_buffers, tmp_path):
    import shutil

    import h5py

    cfg = tiny_config()
    with pytest.raises(ValueError, match="a training task appears twice"):
        run_meta_training(cfg, [tiny_buffers[3], tiny_buffers[3]], [tiny_buffers[11]],
                          tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="task_id' is 3; the split's training task here is 0"):
        run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path / "b",
                          progress=False, expected_task_ids=([0], [11]))
    other = tmp_path / "task03.h5"
    shutil.copy(tiny_buffers[3], other)
    with h5py.File(other, "a") as f:
        f.attrs["family"] = "cheetah-dir"
    # A relabelled family is refused when the file is read: its env_id is cheetah-vel's.
    with pytest.raises(ValueError, match=r"task03\.h5: attribute 'env_id': expected "
                                         r"'MACAW/HalfCheetahDir-v0'"):
        run_meta_training(cfg, [other], [tiny_buffers[11]], tmp_path / "c", progress=False)
    assert not (tmp_path / "c" / "config.yaml").exists()


def test_a_crafted_checkpoint_does_not_run_its_payload(tiny_buffers, tmp_path):
    marker = tmp_path / "payload-ran"
    torch.save({"config": Payload(marker)}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"checkpoint\.pt: not a loadable checkpoint"):
        run_meta_training(tiny_config(steps=2, eval_every=2), [tiny_buffers[3]],
                          [tiny_buffers[11]], tmp_path, progress=False)
    assert not marker.exists() and not (tmp_path / "config.yaml").exists()


def test_refused_rerun_names_the_field_and_keeps_the_run_config(tiny_buffers, tmp_path):
    cfg = tiny_config(steps=2, eval_every=2)
    run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path, progress=False)
    before = (tmp_path / "config.yaml").read_text()
    changed = tiny_config(steps=2, eval_every=2, macaw={"width": 16, "latent": 4,
                                                        "inner_lr": 0.01,
                                                        "online_policy_lr": 1e-3})
    with pytest.raises(ValueError, match=r"macaw.online_policy_lr: 0.0001 -> 0.001"):
        run_meta_training(changed, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path,
                          progress=False)
    assert (tmp_path / "config.yaml").read_text() == before


@pytest.mark.parametrize("eval_every,blow_up,match", [
    (6, 4, r"non-finite parameters .* at meta-step 4; .*\(step 2\)"),
    (3, 3, r"non-finite meta-test return at meta-step 3; .*\(step 2\)")])
def test_non_finite_parameters_are_never_checkpointed(tiny_buffers, tmp_path, monkeypatch,
                                                      eval_every, blow_up, match):
    """Weights that went to inf after a step with finite losses: the step-4 checkpoint is
    refused (and an evaluation returning NaN stops the run), the step-2 one is kept."""
    cfg = tiny_config(eval_every=eval_every)
    original, calls = macaw_algo.meta_step, {"n": 0}

    def blow_up_at_3(model, *args, **kwargs):
        calls["n"] += 1
        stats = original(model, *args, **kwargs)
        if calls["n"] == blow_up:
            with torch.no_grad():
                next(iter(model.policy.values())).fill_(float("inf"))
        return stats                                    # finite losses: only the weights

    monkeypatch.setattr(macaw_algo, "meta_step", blow_up_at_3)
    with pytest.raises(FloatingPointError, match=match):
        run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path, progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 2


def test_restart_on_config_change_keeps_the_old_checkpoint_and_starts_afresh(tiny_buffers,
                                                                            tmp_path):
    cfg = tiny_config(steps=2, eval_every=2)
    run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path, progress=False)
    changed = tiny_config(steps=4, eval_every=2, inner_batch=16)    # a training field
    run_meta_training(changed, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path,
                      progress=False, restart_on_config_change=True)
    stale = torch.load(tmp_path / "checkpoint.stale.pt", weights_only=True)
    assert stale["step"] == 2 and stale["config"]["inner_batch"] == 32
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 4
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["inner_batch"] == 16
    fresh = run_meta_training(changed, [tiny_buffers[3]], [tiny_buffers[11]],
                              tmp_path / "fresh", progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "eval.csv"), pd.read_csv(fresh))


def test_a_finished_run_rewrites_a_missing_eval_csv(tiny_buffers, tmp_path):
    cfg = tiny_config(steps=2, eval_every=2)
    run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path, progress=False)
    before = (tmp_path / "eval.csv").read_text()
    (tmp_path / "eval.csv").unlink()
    (tmp_path / "train.csv").unlink()
    run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path, progress=False)
    assert (tmp_path / "eval.csv").read_text() == before
    assert (tmp_path / "train.csv").exists()


def test_every_registered_method_builds_and_the_workflow_pattern_matches_runs():
    import re

    from macaw.algos.registry import METHODS, labels, run_method_pattern

    pattern = re.compile(run_method_pattern())
    for name in METHODS:
        cfg = MetaTrainConfig.from_dict({"family": "cheetah-vel", "method": name,
                                         "macaw": {"width": 8, "latent": 2},
                                         "pearl": {"width": 8, "encoder_width": 8},
                                         "mt_ft": {"width": 8}})
        learner = build_learner(cfg, 17, 6, 3, torch.device("cpu"))
        assert learner.unadapted_policy()(torch.zeros(17)).shape == (6,)
        assert pattern.fullmatch(name) and pattern.fullmatch(f"{name}-bad")
    assert not pattern.fullmatch("macaw-great") and not pattern.fullmatch("maml")
    assert labels()["mt_ft"] == "Offline MT+FT"
    nowt = build_learner(MetaTrainConfig.from_dict({"family": "cheetah-vel",
                                                    "method": "macaw_nowt_params"}),
                         17, 6, 3, torch.device("cpu"))
    assert nowt.cfg.latent == 0 and nowt.cfg.width > 100


class NewBaseline(MTFT):
    """A stand-in for a new baseline's learner class (a module of its own in real use)."""


def test_a_new_method_is_one_registry_entry(tiny_buffers, tmp_path, monkeypatch):
    """A MACAW switch and a baseline variant, each added as one entry only: both validate,
    build, meta-train, and get a label and a workflow run name."""
    import dataclasses
    import re

    from macaw.algos import registry

    added = {
        "macaw_hot": registry.MethodSpec(
            "macaw_hot", "MACAW, temperature 10", "macaw",
            lambda c, o, a: dataclasses.replace(c, temperature=10.0)),
        "mt_ft_wide": registry.MethodSpec(
            "mt_ft_wide", "MT+FT, wide", "mt_ft", learner=f"{__name__}:NewBaseline",
            config="macaw.algos.mt_ft:MTFTConfig")}
    monkeypatch.setattr(registry, "METHODS", {**registry.METHODS, **added})
    for name in added:
        cfg = tiny_config(method=name, steps=2, eval_every=2, mt_ft={"width": 8})
        learner = build_learner(cfg, 17, 6, 1, torch.device("cpu"))
        eval_csv = run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]],
                                     tmp_path / name, progress=False)
        assert sorted(set(pd.read_csv(eval_csv).step)) == [0, 2]
        assert re.fullmatch(registry.run_method_pattern(), f"{name}-bad")
        assert registry.labels()[name] == added[name].label
    assert type(learner) is NewBaseline and learner.cfg.width == 8
    assert build_learner(tiny_config(method="macaw_hot"), 17, 6, 1,
                         torch.device("cpu")).cfg.temperature == 10.0
    with pytest.raises(ValueError, match="method 'macaw_cold' unknown"):
        tiny_config(method="macaw_cold")


def test_raising_steps_continues_the_run_as_if_asked_for_from_the_start(tiny_buffers, tmp_path):
    args = ([tiny_buffers[3]], [tiny_buffers[11]])
    run_meta_training(tiny_config(steps=6, eval_every=2), *args, tmp_path / "long",
                      progress=False)
    run_meta_training(tiny_config(steps=4, eval_every=2), *args, tmp_path / "ext",
                      progress=False)
    run_meta_training(tiny_config(steps=6, eval_every=2), *args, tmp_path / "ext",
                      progress=False)
    for name in ("eval.csv", "train.csv"):
        assert (tmp_path / "ext" / name).read_text() == (tmp_path / "long" / name).read_text()
    assert not (tmp_path / "ext" / "checkpoint.stale.pt").exists()
    # Fewer steps than the checkpoint holds is a change of the run, refused.
    with pytest.raises(ValueError, match=r"steps: 6 -> 4"):
        run_meta_training(tiny_config(steps=4, eval_every=2), *args, tmp_path / "ext",
                          progress=False)


def test_changed_evaluation_settings_reevaluate_instead_of_refusing(tiny_buffers, tmp_path):
    """Same weights at every step (train.csv identical), new evaluations (eval.csv equal to a
    fresh run with the new settings)."""
    args = ([tiny_buffers[3]], [tiny_buffers[11]])
    run_meta_training(tiny_config(eval_episodes=1), *args, tmp_path / "run", progress=False)
    train_before = (tmp_path / "run" / "train.csv").read_text()
    new = tiny_config(eval_episodes=2, eval_unadapted=False)
    run_meta_training(new, *args, tmp_path / "run", progress=False)
    run_meta_training(new, *args, tmp_path / "fresh", progress=False)
    assert (tmp_path / "run" / "train.csv").read_text() == train_before
    evals = pd.read_csv(tmp_path / "run" / "eval.csv")
    assert sorted(evals["episode"].unique()) == [0, 1]
    pd.testing.assert_frame_equal(evals, pd.read_csv(tmp_path / "fresh" / "eval.csv"))
    assert (tmp_path / "run" / "checkpoint.stale.pt").exists()


# ---------------------------------------------------------------- issue 35, items 1, 2, 4


def test_a_test_task_that_is_a_training_task_is_refused_but_for_a_memorisation_check(
        tiny_buffers, tmp_path, capsys):
    import json

    from macaw.cli import main

    cfg = tiny_config(steps=2, eval_every=2)
    with pytest.raises(ValueError, match=r"test task\(s\) \[11\] of 'cheetah-vel' are also "
                                         r"training tasks.*--memorisation-check"):
        run_meta_training(cfg, [tiny_buffers[3], tiny_buffers[11]], [tiny_buffers[11]],
                          tmp_path / "a", progress=False)
    assert not (tmp_path / "a" / "config.yaml").exists()

    # A hand-written split with train = test: refused by meta-train unless it opts in.
    split = tmp_path / "memorise.json"
    split.write_text(json.dumps({"family": "cheetah-vel", "split": "memorise", "available": None,
                                 "train": [3, 11], "test": [3, 11]}))
    argv = ["meta-train", "--family", "cheetah-vel", "--split", str(split),
            "--buffers-dir", str(tiny_buffers[3].parent), "--method", "macaw",
            "--params", json.dumps({
                "steps": 2, "eval_every": 2, "checkpoint_every": 2, "inner_batch": 32,
                "outer_batch": 32, "eval_batch": 32, "device": "cpu", "outer_stride": 2,
                "inner_stride": 2, "macaw": {"width": 16, "latent": 4, "inner_lr": 0.01}}),
            "--no-progress", "--run-dir", str(tmp_path / "b")]
    assert main(argv) == 2
    assert "test task(s) [3, 11] of 'cheetah-vel' are also training tasks" in \
        capsys.readouterr().err
    assert not (tmp_path / "b" / "config.yaml").exists()
    assert main(argv + ["--memorisation-check"]) == 0
    resolved = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    assert resolved["memorisation_check"] is True
    assert resolved["train_tasks"] == resolved["test_tasks"] == [3, 11]
    assert torch.load(tmp_path / "b" / "checkpoint.pt",
                      weights_only=False)["config"]["memorisation_check"] is True
    # An ordinary run records that it is not one.
    run_meta_training(cfg, [tiny_buffers[3]], [tiny_buffers[11]], tmp_path / "c",
                      progress=False)
    assert yaml.safe_load((tmp_path / "c" / "config.yaml").read_text())[
        "memorisation_check"] is False


def test_buffers_of_another_gamma_than_the_configs_are_refused(tiny_lifetime, tiny_buffers,
                                                               tmp_path):
    from macaw.behaviour.export import export_task_buffer

    half = {t: export_task_buffer(tiny_lifetime, t, tmp_path / f"task{t:02d}.h5", gamma=0.5)
            for t in (3, 11)}
    cfg = tiny_config(steps=2, eval_every=2)
    with pytest.raises(ValueError, match=r"task03\.h5: attribute 'gamma': expected 0\.99 "
                                         r"\(the config's gamma.*found 0\.5"):
        run_meta_training(cfg, [half[3]], [half[11]], tmp_path / "a", progress=False,
                          gamma=0.99)
    with pytest.raises(ValueError, match=r"the buffers' attribute 'gamma' differ \(\[0\.5, "
                                         r"0\.99\]\)"):
        run_meta_training(cfg, [half[3]], [tiny_buffers[11]], tmp_path / "b", progress=False)
    assert not list(tmp_path.glob("*/config.yaml"))


def test_a_buffer_of_another_observation_size_fails_before_any_output(tiny_buffers, tmp_path):
    """18-wide observations for cheetah (17): refused when read, naming the file and key,
    not a torch shape error after config.yaml was written."""
    from macaw.data import load_task_buffer, write_task_buffer

    b = load_task_buffer(tiny_buffers[3])
    wide = write_task_buffer(
        tmp_path / "task03.h5", observations=np.pad(b.observations, ((0, 0), (0, 1))),
        actions=b.actions, rewards=b.rewards,
        next_observations=np.pad(b.next_observations, ((0, 0), (0, 1))),
        terminals=b.terminals, timeouts=b.timeouts, env_id=b.env_id, family=b.family,
        task_id=b.task_id, task_params=b.task_params, gamma=b.gamma,
        policy_steps=b.policy_steps, algorithm=b.algorithm, config=b.config)
    with pytest.raises(ValueError, match=r"task03\.h5: key 'observations': expected 17 columns "
                                         r"\(the observations of MACAW/HalfCheetahVel-v0\), "
                                         r"found 18"):
        run_meta_training(tiny_config(steps=2, eval_every=2), [wide], [tiny_buffers[11]],
                          tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()



def test_a_run_logs_where_its_time_went(tiny_buffers, tmp_path, caplog):
    """One line at the end: training steps (with ms per step), evaluation, adaptation
    statistics, checkpoints and the rest, which add up to the process's time."""
    import logging
    import re

    with caplog.at_level(logging.INFO, logger="macaw.meta_train"):
        run_meta_training(tiny_config(steps=4, eval_every=2), [tiny_buffers[3]],
                          [tiny_buffers[11]], tmp_path, progress=False)
    line = next(r.getMessage() for r in caplog.records if "in this process" in r.getMessage())
    match = re.search(r": ([\d.]+) s in this process: ([\d.]+) s training steps \(([\d.]+) "
                      r"ms/step\), ([\d.]+) s evaluation, ([\d.]+) s adaptation statistics, "
                      r"([\d.]+) s checkpoints, ([\d.]+) s loading data and the rest", line)
    assert match, line
    total, steps, per_step, *rest = map(float, match.groups())
    assert per_step == pytest.approx(1000 * steps / 4, abs=1000 * 0.05 / 4 + 0.05)  # rounding
    assert steps + sum(rest) == pytest.approx(total, abs=0.3)
    # seconds print to 0.1 s: four fast steps may print "0.0 s", their ms/step may not
    assert per_step > 0 and rest[0] > 0 and min(rest) >= 0

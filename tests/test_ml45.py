"""Meta-World ML45 family: task table, goal variation, success flag, exact resume, behaviour
data with per-episode success, and the Fig. 9 table.

The ML45 benchmark's goal variants take ~20 s to build; they are cached on disk
(``macaw.envs.ml45.goal_cache_file``), so at most the first process on a machine builds them.
"""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import Payload, run_killed_then_resumed
from gymnasium.error import ResetNeeded

from macaw.behaviour import BehaviourConfig, train_behaviour
from macaw.behaviour.agents import EnsembleSAC
from macaw.behaviour.export import export_task_buffer
from macaw.behaviour.trainer import TaskEnvs
from macaw.cli import main
from macaw.data import BufferSchemaError, load_task_buffer, make_split, write_task_buffer
from macaw.envs import FAMILIES, make_task_env, task_params
from macaw.envs import ml45
from macaw.envs.ml45 import ml45_env_names

# Meta-World's partially observable goal slot has equal bounds; gymnasium's checker says so.
pytestmark = pytest.mark.filterwarnings("ignore:.*maximum and minimum values are equal")
REACH = ml45_env_names().index("reach-v3")
PICK_PLACE = ml45_env_names().index("pick-place-v3")


def test_fifty_distinct_tasks_train_then_test_sorted_by_name():
    from metaworld.env_dict import ML45_V3

    params = [task_params("ml45", t) for t in range(50)]
    names = [p["env_name"] for p in params]
    assert len(set(names)) == 50
    assert [p["role"] for p in params] == ["train"] * 45 + ["test"] * 5
    assert names[:45] == sorted(ML45_V3["train"]) and names[45:] == sorted(ML45_V3["test"])
    assert names[45:] == ["bin-picking-v3", "box-close-v3", "door-lock-v3", "door-unlock-v3",
                          "hand-insert-v3"]
    assert (REACH, PICK_PLACE) == (35, 26)
    fam = FAMILIES["ml45"]
    assert (fam.env_id, fam.n_tasks, fam.episode_steps, fam.success_flag) == (
        "MACAW/MetaWorldML45-v0", 50, 500, True)
    with pytest.raises(ValueError, match=r"ml45.*task_id=50.*0\.\.49"):
        task_params("ml45", 50)


def test_standard_split_tests_on_the_five_ml45_test_environments():
    assert make_split("ml45", "standard", 50) == {"train": list(range(45)),
                                                  "test": [45, 46, 47, 48, 49]}
    assert make_split("ml45", "standard", 50, available=[0, 1, 45, 46]) == {
        "train": [0, 1], "test": [45, 46]}


def test_every_task_has_39_dim_observations_4_dim_actions_and_a_success_flag():
    for task in range(50):
        env = make_task_env("ml45", task)
        assert env.observation_space.shape == (39,) and env.action_space.shape == (4,)
        assert (FAMILIES["ml45"].obs_dim, FAMILIES["ml45"].act_dim) == (39, 4)
        obs, info = env.reset(seed=task)
        assert obs.shape == (39,) and info["task_id"] == task
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs.shape == (39,) and np.isfinite(reward)
        assert isinstance(info["success"], bool) and info["task_id"] == task
        assert not terminated and not truncated
        env.close()


def test_stepping_before_reset_raises():
    env = make_task_env("ml45", 45)
    with pytest.raises(ResetNeeded):
        env.step(np.zeros(4, np.float32))
    with pytest.raises(ResetNeeded, match="ml45 task 45"):
        env.unwrapped.step(np.zeros(4, np.float32))


def test_episode_truncates_at_500_steps_and_never_terminates():
    env = make_task_env("ml45", 45)
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(500)]
    assert not any(term for term, _ in flags)
    assert [i for i, (_, trunc) in enumerate(flags) if trunc] == [499]


def _goal_sequence(env, seed: int, n: int) -> list[tuple]:
    env.reset(seed=seed)
    goals = [tuple(env.unwrapped.goal_position)]
    for _ in range(n - 1):
        env.reset()
        goals.append(tuple(env.unwrapped.goal_position))
    return goals


def test_goals_vary_across_resets_and_repeat_for_the_same_seed():
    env, other = make_task_env("ml45", REACH), make_task_env("ml45", REACH)
    goals = _goal_sequence(env, seed=3, n=10)
    assert len(set(goals)) >= 5  # 10 draws from 50 variants
    assert _goal_sequence(other, seed=3, n=10) == goals
    assert _goal_sequence(other, seed=4, n=10) != goals
    # The goal is a variant of the benchmark: reset's goal_index names it.
    _, info = env.reset(seed=5)
    variant = env.unwrapped.goals[info["goal_index"]]
    assert variant.env_name == "reach-v3"


def _reach_actions(envs: TaskEnvs) -> np.ndarray:
    """Move the hand (obs[:3]) straight at each env's goal: a scripted reach policy."""
    goals = np.stack([e.unwrapped.goal_position for e in envs.envs])
    actions = np.zeros((len(envs.envs), 4), np.float32)
    actions[:, :3] = np.clip(20 * (goals - envs.obs[:, :3]), -1, 1)
    return actions


def test_lockstep_envs_record_an_episode_as_success_if_any_step_succeeds():
    envs = TaskEnvs("ml45", [REACH, REACH], seed=0)
    successes = []
    for step in range(500):
        actions = _reach_actions(envs)
        actions[1] = 0.0  # the second env stands still: never reaches its goal
        *_, finished = envs.step(actions)
        successes.append(bool(envs.episode_success[0]))
    assert sorted((i, length, success) for i, _, length, success in finished) == [
        (0, 500, True), (1, 500, False)]
    assert any(successes[:-1])
    assert not envs.episode_success.any()  # reset for the next episode


@pytest.mark.parametrize("task", [PICK_PLACE, 45])
def test_checkpoint_state_restores_the_episode_exactly(task):
    """Pick-place keeps a live view of MuJoCo memory (init pads); a restored env must still
    match the uninterrupted one step for step, across the episode's end and the next reset."""
    rng = np.random.default_rng(0)
    a, b = make_task_env("ml45", task), make_task_env("ml45", task)
    a.reset(seed=1)
    for _ in range(450):
        a.step(rng.uniform(-1, 1, 4))
    b.reset(seed=2)
    b.step(rng.uniform(-1, 1, 4))
    b.unwrapped.set_checkpoint_state(a.unwrapped.get_checkpoint_state())
    for step in range(100):
        action = rng.uniform(-1, 1, 4)
        ra, rb = a.unwrapped.step(action), b.unwrapped.step(action)
        np.testing.assert_array_equal(ra[0], rb[0], err_msg=f"step {step}")
        assert ra[1:] == rb[1:], f"step {step}"
        if ra[3]:
            oa, ob = a.unwrapped.reset(), b.unwrapped.reset()
            np.testing.assert_array_equal(oa[0], ob[0])
            assert oa[1] == ob[1]


def _cfg(**kw) -> BehaviourConfig:
    base = dict(family="ml45", tasks=[PICK_PLACE, 45], algorithm="sac", steps=1000,
                learning_starts=100, width=16, n_hidden=2, batch_size=16, checkpoint_every=0,
                log_every=500)
    return BehaviourConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def ml45_buffers(tmp_path_factory) -> list:
    out = tmp_path_factory.mktemp("ml45")
    lifetime = train_behaviour(_cfg(), out / "lifetime.h5", out / "policy.pt", progress=False)
    return [export_task_buffer(lifetime, t, out / f"task{t:02d}.h5", gamma=0.99)
            for t in (PICK_PLACE, 45)]


def test_behaviour_training_exports_buffers_with_episode_successes(ml45_buffers):
    for path, task in zip(ml45_buffers, (PICK_PLACE, 45)):
        b = load_task_buffer(path)
        assert (b.family, b.task_id, b.env_id) == ("ml45", task, "MACAW/MetaWorldML45-v0")
        assert b.task_params == task_params("ml45", task)
        assert (len(b), b.obs_dim, b.act_dim, b.n_episodes) == (1000, 39, 4, 2)
        assert np.flatnonzero(b.timeouts).tolist() == [499, 999] and not b.terminals.any()
        assert b.episode_successes.shape == (2,)
        assert set(b.episode_successes.tolist()) <= {0.0, 1.0}
        with h5py.File(path) as f:
            assert f["episode_successes"].dtype == np.float32


def test_buffer_rejects_success_values_outside_0_1(ml45_buffers, tmp_path):
    b = load_task_buffer(ml45_buffers[0])
    fields = dict(observations=b.observations, actions=b.actions, rewards=b.rewards,
                  next_observations=b.next_observations, terminals=b.terminals,
                  timeouts=b.timeouts, env_id=b.env_id, family=b.family, task_id=b.task_id,
                  task_params=b.task_params, gamma=b.gamma, policy_steps=b.policy_steps,
                  algorithm=b.algorithm, config=b.config)
    with pytest.raises(ValueError, match="episode_successes.*values in \\[0, 1\\]"):
        write_task_buffer(tmp_path / "bad.h5", **fields, episode_successes=np.array([0.0, 2.0]))
    path = write_task_buffer(tmp_path / "ok.h5", **fields, episode_successes=np.array([0, 1]))
    with h5py.File(path, "r+") as f:
        f["episode_successes"][1] = -1.0
    with pytest.raises(BufferSchemaError, match="'episode_successes'.*\\[0, 1\\]"):
        load_task_buffer(path)


def test_fig9_table_has_one_row_per_episode_with_success_columns(ml45_buffers, tmp_path):
    pdf, csv = tmp_path / "fig9.pdf", tmp_path / "fig9.csv"
    assert main(["plot-fig9", "--buffers", *map(str, ml45_buffers), "--pdf", str(pdf),
                 "--csv", str(csv)]) == 0
    assert pdf.read_bytes()[:5] == b"%PDF-"
    df = pd.read_csv(csv)
    assert list(df.columns) == ["family", "task_id", "env_name", "role", "episode", "env_step",
                                "return", "smoothed_return", "success", "success_rate"]
    assert df.groupby("task_id").size().to_dict() == {PICK_PLACE: 2, 45: 2}
    assert df.drop_duplicates("task_id")[["env_name", "role"]].values.tolist() == [
        ["pick-place-v3", "train"], ["bin-picking-v3", "test"]]
    assert df.env_step.tolist() == [500, 1000, 500, 1000]
    for path in ml45_buffers:
        b = load_task_buffer(path)
        rows = df[df.task_id == b.task_id]
        np.testing.assert_allclose(rows["return"], b.episode_returns, rtol=1e-6)
        np.testing.assert_array_equal(rows.success, b.episode_successes)
        np.testing.assert_allclose(rows.success_rate, np.cumsum(b.episode_successes) / [1, 2])


def test_fig9_refuses_buffers_without_success_flags(tiny_buffers, tmp_path, capsys):
    assert main(["plot-fig9", "--buffers", str(tiny_buffers[3]), "--pdf",
                 str(tmp_path / "f.pdf"), "--csv", str(tmp_path / "f.csv")]) == 2
    assert "no episode_successes" in capsys.readouterr().err


def test_killed_ml45_run_resumes_to_the_same_lifetime(tmp_path, monkeypatch):
    """The checkpoint (at step 600, inside the second 500-step episode) carries Meta-World's
    state; the resumed run's lifetime equals the uninterrupted one bit for bit."""
    cfg = _cfg(checkpoint_every=300)
    full = train_behaviour(cfg, tmp_path / "a" / "lifetime.h5", tmp_path / "a" / "policy.pt",
                           progress=False)
    resumed = run_killed_then_resumed(
        lambda d: train_behaviour(cfg, d / "lifetime.h5", d / "policy.pt", progress=False),
        tmp_path / "b", monkeypatch, EnsembleSAC, "update", kill_at=550, expect_step=600,
        checkpoint="resume.pt")
    with h5py.File(full) as a, h5py.File(resumed) as b:
        assert sorted(a) == sorted(b)
        for task in a:
            assert "episode_successes" in a[task]
            for key in a[task]:
                np.testing.assert_array_equal(a[task][key][()], b[task][key][()],
                                              err_msg=f"{task}/{key}")


def _meta_cfg():
    from macaw.meta_train import MetaTrainConfig

    return MetaTrainConfig.from_dict(dict(
        family="ml45", steps=2, eval_every=2, checkpoint_every=1, inner_batch=32,
        outer_batch=32, eval_batch=32, window_episodes=100, device="cpu",
        eval_episodes=1, eval_unadapted=False, outer_stride=1, inner_stride=1,
        macaw=dict(width=8, latent=2, inner_policy_lr=1e-2, inner_value_lr=1e-4)))


def test_ml45_meta_training_logs_success_and_resumes_to_the_same_rows(ml45_buffers, tmp_path,
                                                                      monkeypatch):
    """Fig. 7's eval.csv: one 0/1 success per test task and evaluation, kept across a resume."""
    import macaw.algos.macaw as macaw_algo
    from macaw.meta_train import run_meta_training

    train, test = [ml45_buffers[0]], [ml45_buffers[1]]
    full = pd.read_csv(run_meta_training(_meta_cfg(), train, test, tmp_path / "a",
                                         progress=False))
    assert list(full.columns) == ["step", "task_id", "episode", "return", "unadapted_return",
                                  "success"]
    assert full.unadapted_return.isna().all()            # eval_unadapted off
    assert full.step.tolist() == [0, 2] and set(full.task_id) == {45}
    assert set(full.success) <= {0.0, 1.0}
    assert ((full["return"] >= 0) & (full["return"] <= 10 * 500)).all()   # v3: [0, 10] a step

    resumed = run_killed_then_resumed(
        lambda d: run_meta_training(_meta_cfg(), train, test, d, progress=False),
        tmp_path / "b", monkeypatch, macaw_algo, "meta_step", kill_at=2, expect_step=1)
    pd.testing.assert_frame_equal(full, pd.read_csv(resumed))


def test_goal_variants_are_built_once_cached_on_disk_and_read_back_identical(
        tmp_path, monkeypatch, caplog):
    import metaworld
    from importlib.metadata import version

    reference = ml45._goal_pools()

    class Built:                        # stands in for the 20 s build; counts the calls
        calls = 0

        def __init__(self, seed):
            assert seed == ml45.BENCHMARK_SEED
            Built.calls += 1
            self.train_tasks, self.test_tasks = reference["train"], reference["test"]

    monkeypatch.setenv("MACAW_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(metaworld, "ML45", Built)
    path = ml45.goal_cache_file()
    assert path == tmp_path / f"ml45-goals-metaworld{version('metaworld')}-seed0.json"
    try:
        ml45._goal_pools.cache_clear()
        ml45._goal_pools()
        assert Built.calls == 1 and path.is_file()

        ml45._goal_pools.cache_clear()   # a new process: reads the file, builds nothing
        loaded = ml45._goal_pools()
        assert Built.calls == 1
        for role, n_env in (("train", ml45.N_TRAIN), ("test", ml45.N_TEST)):
            assert len(loaded[role]) == ml45.GOALS_PER_ENV * n_env == 50 * n_env
            for got, want in zip(loaded[role], reference[role]):
                g, w = pickle.loads(got.data), pickle.loads(want.data)
                assert got.env_name == want.env_name and g.keys() == w.keys()
                assert g["env_cls"] is w["env_cls"]
                assert g["partially_observable"] == w["partially_observable"]
                assert g["rand_vec"].dtype == w["rand_vec"].dtype
                np.testing.assert_array_equal(g["rand_vec"], w["rand_vec"])

        # A crafted cache (a pickle whose payload writes a marker) is never unpickled: it is
        # ignored with a warning and rebuilt.
        marker = tmp_path / "payload-ran"
        path.write_bytes(pickle.dumps(Payload(marker)))
        ml45._goal_pools.cache_clear()
        with caplog.at_level("WARNING"):
            ml45._goal_pools()
        assert not marker.exists() and Built.calls == 2
        assert "ignoring the goal-variant cache" in caplog.text

        path.write_bytes(b"not json")  # a damaged cache is rebuilt, with a warning
        ml45._goal_pools.cache_clear()
        with caplog.at_level("WARNING"):
            ml45._goal_pools()
        assert Built.calls == 3
        assert ml45._read_goal_cache(path) is not None   # and rewritten whole
    finally:
        ml45._goal_pools.cache_clear()

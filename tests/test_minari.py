"""Minari export of task buffers (macaw.data.minari_export, docs/design.md §3)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from macaw.data import export_minari, load_task_buffer, minari_dataset_id, write_task_buffer

minari = pytest.importorskip("minari")

OBS_DIM, ACT_DIM = 17, 6


def _write(path, task_id, lengths, seed):
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    timeouts = np.zeros(n, bool)
    terminals = np.zeros(n, bool)
    ends = np.cumsum(lengths) - 1
    timeouts[ends[0]] = True  # first episode: time limit
    terminals[ends[1]] = True  # second episode: terminates early
    return write_task_buffer(
        path,
        observations=rng.normal(size=(n, OBS_DIM)),
        actions=rng.uniform(-1, 1, size=(n, ACT_DIM)),
        rewards=rng.normal(size=n),
        next_observations=rng.normal(size=(n, OBS_DIM)),
        terminals=terminals,
        timeouts=timeouts,
        env_id="MACAW/HalfCheetahVel-v0",
        family="cheetah-vel",
        task_id=task_id,
        task_params={"goal_velocity": 0.075 * (task_id + 1)},
        gamma=0.99,
        policy_steps=n,
        algorithm="td3",
        config={"test": True},
    )


def test_export_round_trip(tmp_path, monkeypatch):
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    paths = [
        _write(tmp_path / "task03.h5", 3, (200, 150), seed=0),
        _write(tmp_path / "task07.h5", 7, (200, 37), seed=1),
    ]
    root = tmp_path / "minari"
    dataset_id = minari_dataset_id("cheetah-vel")
    assert dataset_id == "macaw/cheetah-vel-v0"
    assert minari_dataset_id("cheetah-vel", 3) == "macaw/cheetah-vel-task03-v0"

    dataset = export_minari(paths, dataset_id, root)
    assert "MINARI_DATASETS_PATH" not in os.environ  # restored
    assert (root / "macaw" / "cheetah-vel-v0" / "data").is_dir()
    assert dataset.total_episodes == 4
    assert dataset.total_steps == 200 + 150 + 200 + 37

    # reload from disk through minari's own API
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    loaded = minari.load_dataset(dataset_id)
    assert loaded.total_episodes == 4 and loaded.total_steps == 587
    episodes = list(loaded.iterate_episodes())
    buf = load_task_buffer(paths[1])
    sl = buf.episode_slices()[1]  # task 7, second episode (37 steps, terminal)
    ep = episodes[3]
    assert len(ep.rewards) == 37
    assert ep.observations.shape == (38, OBS_DIM)  # obs plus the final next_obs
    np.testing.assert_array_equal(ep.observations[:-1].astype(np.float32), buf.observations[sl])
    np.testing.assert_array_equal(ep.observations[-1].astype(np.float32), buf.next_observations[sl.stop - 1])
    np.testing.assert_array_equal(ep.actions.astype(np.float32), buf.actions[sl])
    np.testing.assert_array_equal(np.asarray(ep.rewards, np.float32), buf.rewards[sl])
    assert ep.terminations[-1] and not ep.terminations[:-1].any() and not ep.truncations.any()
    # the env spec comes from macaw.envs (first buffer's task) so tools can rebuild the env
    env_spec = loaded.spec.env_spec
    assert env_spec is not None and env_spec.id == "MACAW/HalfCheetahVel-v0"
    assert env_spec.kwargs["task_id"] == 3
    first = episodes[0]
    assert first.truncations[-1] and not first.terminations.any() and len(first.rewards) == 200


def test_export_rejects_malformed_id_and_existing_dataset(tmp_path):
    path = _write(tmp_path / "task03.h5", 3, (5, 5), seed=0)
    with pytest.raises(ValueError, match="Malformed"):
        export_minari([path], "macaw/bad id-v0", tmp_path / "m")
    export_minari([path], "macaw/x-v0", tmp_path / "m")
    with pytest.raises(ValueError, match="already exists"):
        export_minari([path], "macaw/x-v0", tmp_path / "m")
    # the first dataset survives a failed second export
    assert (tmp_path / "m" / "macaw" / "x-v0" / "data").is_dir()

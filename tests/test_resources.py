"""Job memory from the config (macaw/resources.py): the byte counts match the arrays a job
really holds."""

from __future__ import annotations

import numpy as np

from macaw.behaviour.trainer import LifetimeReplay
from macaw.data import load_task_buffer
from macaw.resources import (BASE_MB, behaviour_mem_mb, buffer_bytes_per_step,
                             lifetime_bytes_per_step, meta_train_mem_mb)
from test_buffers import ACT_DIM, OBS_DIM, write


def test_a_lifetime_step_costs_what_the_replay_allocates():
    replay = LifetimeReplay(n_tasks=3, capacity=10, obs_dim=17, act_dim=6)
    total = sum(t.numel() * t.element_size() for t in replay.data.values())
    assert total == 3 * 10 * lifetime_bytes_per_step(17, 6)


def test_a_buffer_row_costs_what_loading_it_allocates(tmp_path):
    write(tmp_path / "b.h5", lengths=(4, 3, 5))
    buf = load_task_buffer(tmp_path / "b.h5")
    rows = [buf.observations, buf.actions, buf.rewards, buf.next_observations, buf.terminals,
            buf.timeouts, buf.mc_returns, *buf.bootstrap_tails()]
    assert all(len(a) == len(buf) for a in rows)
    assert sum(np.asarray(a).nbytes for a in rows) == len(buf) * buffer_bytes_per_step(
        OBS_DIM, ACT_DIM)


def test_memory_is_a_base_plus_twice_the_data():
    # cheetah-vel: 17-dim observations, 6-dim actions: 166 bytes a lifetime step.
    assert lifetime_bytes_per_step(17, 6) == 166
    assert behaviour_mem_mb("cheetah-vel", 40, 2_500_000) == BASE_MB + -(-2 * 40 * 2_500_000
                                                                         * 166 // 2**20)
    assert behaviour_mem_mb("walker-params", 2, 600) == BASE_MB + 1
    assert meta_train_mem_mb("ml45", 50, 5_000_000) > behaviour_mem_mb("ml45", 50, 5_000_000)

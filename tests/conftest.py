"""Shared fixtures: tiny behaviour runs whose lifetime files several tests read."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from macaw.runs import load_state

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _single_thread():
    # Two threads would race with a parallel test runner; results do not depend on it.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_lifetime(tmp_path_factory) -> Path:
    """A 2-task cheetah-vel TD3 lifetime of 500 steps (2 finished episodes per task)."""
    from macaw.behaviour import BehaviourConfig, train_behaviour

    out = tmp_path_factory.mktemp("lifetime")
    cfg = BehaviourConfig(family="cheetah-vel", tasks=[3, 11], algorithm="td3", steps=500,
                          learning_starts=100, width=16, n_hidden=2, batch_size=16,
                          checkpoint_every=0, log_every=100)
    return train_behaviour(cfg, out / "lifetime.h5", out / "policy.pt", progress=False)


def kill_on_call(monkeypatch, owner, name: str, kill_at: int):
    """Patch ``owner.name`` to raise KeyboardInterrupt on its ``kill_at``-th call (a simulated
    kill); returns the original, to patch back."""
    original, calls = getattr(owner, name), {"n": 0}

    def killed(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise KeyboardInterrupt("simulated kill")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, killed)
    return original


def run_killed_then_resumed(run, run_dir: Path, monkeypatch, owner, name: str, kill_at: int,
                            expect_step: int, checkpoint: str = "checkpoint.pt",
                            key: str = "step"):
    """``run(run_dir)`` with ``owner.name`` raising KeyboardInterrupt on its ``kill_at``-th
    call (a simulated kill), a check that ``run_dir/checkpoint``'s ``key`` is ``expect_step``, then
    ``run(run_dir)`` again unpatched; returns what the resumed run returns."""
    original = kill_on_call(monkeypatch, owner, name, kill_at)
    with pytest.raises(KeyboardInterrupt):
        run(run_dir)
    assert load_state(run_dir / checkpoint)[key] == expect_step
    monkeypatch.setattr(owner, name, original)
    torch.rand(100)        # move the global RNG: the resumed run must restore it itself
    return run(run_dir)


def repo_env() -> dict:
    """Environment for subprocesses: the venv's scripts first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@pytest.fixture(scope="session")
def tiny_buffers(tiny_lifetime) -> dict[int, Path]:
    """Buffer files of the tiny lifetime's two cheetah-vel tasks (3 and 11)."""
    from macaw.behaviour.export import export_task_buffer

    return {t: export_task_buffer(tiny_lifetime, t, tiny_lifetime.parent / f"task{t:02d}.h5",
                                  gamma=0.99) for t in (3, 11)}


class Payload:
    """A crafted pickle: unpickling it creates ``marker`` (through ``open(marker, "w")``), so a
    test can tell whether a loader ran code from a file it was handed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))

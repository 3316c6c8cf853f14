"""Lifetime -> buffer export, checked by an independent recomputation; CLI errors."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest

from macaw.behaviour.export import export_task_buffer
from macaw.cli import main
from macaw.data import load_task_buffer


def reference_mc_returns(rewards, ends, gamma):
    """Straight from the definition: R_t = sum_k gamma^k r_{t+k} up to the episode's end."""
    out = np.zeros(len(rewards))
    for start, stop in zip(np.r_[0, ends[:-1] + 1], ends + 1):
        for t in range(start, stop):
            out[t] = sum(gamma ** k * rewards[t + k] for k in range(stop - t))
    return out


def check_buffer_independently(path, gamma):
    """Recompute what a buffer file claims from its raw transitions (used by the DAG test too)."""
    with h5py.File(path) as f:
        for key in ("observations", "actions", "rewards", "next_observations", "terminals",
                    "timeouts", "mc_returns", "episode_starts", "episode_returns"):
            assert key in f, f"{path}: missing {key}"
        rewards = f["rewards"][()].astype(np.float64)
        done = f["terminals"][()] | f["timeouts"][()]
        ends = np.flatnonzero(done)
        assert done[-1], "buffer must end on an episode boundary"
        np.testing.assert_array_equal(f["episode_starts"][()], np.r_[0, ends[:-1] + 1])
        np.testing.assert_allclose(f["episode_returns"][()],
                                   [rewards[s:e + 1].sum() for s, e in
                                    zip(np.r_[0, ends[:-1] + 1], ends)], rtol=1e-5)
        np.testing.assert_allclose(f["mc_returns"][()], reference_mc_returns(rewards, ends, gamma),
                                   rtol=1e-4, atol=1e-3)
        assert f.attrs["gamma"] == pytest.approx(gamma)


def test_exported_buffer_passes_independent_recomputation(tiny_lifetime, tmp_path):
    out = export_task_buffer(tiny_lifetime, 11, tmp_path / "task11.h5", gamma=0.9)
    check_buffer_independently(out, 0.9)
    b = load_task_buffer(out)
    assert (b.family, b.task_id, b.algorithm) == ("cheetah-vel", 11, "td3")
    assert b.task_params == {"goal_velocity": pytest.approx(0.075 * 12)}
    assert b.config["steps"] == 500 and b.policy_steps == 500
    with h5py.File(tiny_lifetime, "r") as f:
        assert b.provenance == json.loads(f.attrs["provenance"])
    assert b.provenance["threads"] >= 1 and b.provenance["gpu"] != "not checked"


def test_a_buffer_carries_the_provenance_of_the_behaviour_run(tiny_lifetime, tmp_path):
    """The data were made by the behaviour run, so its record (not the export's) goes into
    every buffer."""
    lifetime = tmp_path / "lifetime.h5"
    lifetime.write_bytes(tiny_lifetime.read_bytes())
    with h5py.File(lifetime, "a") as f:
        record = {**json.loads(f.attrs["provenance"]), "host": "behaviour-node-7"}
        f.attrs["provenance"] = json.dumps(record)
    out = export_task_buffer(lifetime, 11, tmp_path / "task11.h5", gamma=0.9)
    assert load_task_buffer(out).provenance == record


def test_export_of_missing_task_names_file_and_group(tiny_lifetime, tmp_path, capsys):
    assert main(["export-buffer", "--lifetime", str(tiny_lifetime), "--task", "7",
                 "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert "lifetime.h5" in err and "task07" in err and "task03" in err
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("corrupt,match", [
    ("nan_reward", r"lifetime\.h5: key 'task11/rewards': expected finite values"),
    ("wrong_logged_return", r"lifetime\.h5: key 'task11/episode_returns': expected the "
                            r"summed 'rewards' of each episode, found .* for episode 1"),
])
def test_a_failed_export_leaves_nothing_at_its_output(tiny_lifetime, tmp_path, capsys,
                                                     corrupt, match):
    lifetime = tmp_path / "lifetime.h5"
    lifetime.write_bytes(tiny_lifetime.read_bytes())
    with h5py.File(lifetime, "a") as f:
        key = "rewards" if corrupt == "nan_reward" else "episode_returns"
        data = f[f"task11/{key}"][()]
        data[1] = np.nan if corrupt == "nan_reward" else data[1] + 50.0
        f[f"task11/{key}"][...] = data
    out = tmp_path / "x.h5"
    assert main(["export-buffer", "--lifetime", str(lifetime), "--task", "11",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert not out.exists() and list(tmp_path.glob(".x.h5*")) == []


def test_cli_rejects_unknown_behaviour_field(tmp_path, capsys):
    code = main(["train-behaviour", "--family", "cheetah-vel", "--tasks", "0",
                 "--params", json.dumps({"total_step": 10}), "--lifetime",
                 str(tmp_path / "l.h5"), "--policy", str(tmp_path / "p.pt")])
    assert code == 2
    assert "unknown field(s) ['total_step']" in capsys.readouterr().err


def test_cli_make_split_writes_json(tmp_path):
    out = tmp_path / "s.json"
    assert main(["make-split", "--family", "cheetah-vel", "--split", "sparse3",
                 "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["train"] == [0, 16, 32] and len(data["test"]) == 37


# ---------------------------------------------------------------- issue 35, item 7


def test_a_flipped_bit_in_a_lifetime_stops_the_export(tiny_lifetime, tmp_path, capsys):
    """Every lifetime dataset carries a Fletcher-32 checksum: a flipped bit is an error naming
    the lifetime file and the key, not a buffer with fresh checksums."""
    from macaw.behaviour.trainer import LIFETIME_FORMAT

    lifetime = tmp_path / "lifetime.h5"
    raw = bytearray(tiny_lifetime.read_bytes())
    with h5py.File(tiny_lifetime, "r") as f:
        assert f.attrs["format"] == LIFETIME_FORMAT
        assert all(f[task][key].fletcher32 for task in f for key in f[task])
        offset = f["task11/observations"].id.get_chunk_info(0).byte_offset
    raw[offset + 100] ^= 0x04
    lifetime.write_bytes(bytes(raw))
    out = tmp_path / "task11.h5"
    assert main(["export-buffer", "--lifetime", str(lifetime), "--task", "11",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (f"{lifetime}: key 'task11/observations': expected data matching its Fletcher-32 "
            "checksum") in err
    assert not out.exists()
    # The other task's data are intact and export.
    assert main(["export-buffer", "--lifetime", str(lifetime), "--task", "3",
                 "--out", str(tmp_path / "task03.h5")]) == 0


def test_a_truncated_lifetime_is_an_error_naming_the_file(tiny_lifetime, tmp_path, capsys):
    lifetime = tmp_path / "lifetime.h5"
    lifetime.write_bytes(tiny_lifetime.read_bytes()[: tiny_lifetime.stat().st_size // 2])
    assert main(["export-buffer", "--lifetime", str(lifetime), "--task", "11",
                 "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert f"{lifetime}: file: expected a readable HDF5 lifetime file, found unreadable" in err


def test_a_lifetime_is_checked_against_its_family(tiny_lifetime, tmp_path, capsys):
    lifetime = tmp_path / "lifetime.h5"
    lifetime.write_bytes(tiny_lifetime.read_bytes())
    with h5py.File(lifetime, "a") as f:
        f.attrs["family"] = "walker-params"       # cheetah data relabelled
    assert main(["export-buffer", "--lifetime", str(lifetime), "--task", "11",
                 "--out", str(tmp_path / "x.h5")]) == 2
    assert (f"{lifetime}: attribute 'env_id': expected 'MACAW/Walker2dParams-v0'"
            in capsys.readouterr().err)


def test_a_lifetime_from_before_checksums_exports_the_same_data(tiny_lifetime, tmp_path, caplog):
    """Format 1 (no checksums) is still read, with a warning; the checksums change no value."""
    old = tmp_path / "old" / "lifetime.h5"
    old.parent.mkdir()
    with h5py.File(tiny_lifetime, "r") as src, h5py.File(old, "w") as dst:
        dst.attrs.update({**src.attrs, "format": "macaw-lifetime-1"})
        for task in src:
            g = dst.create_group(task)
            g.attrs.update(src[task].attrs)
            for key in src[task]:
                g.create_dataset(key, data=src[task][key][()])
    with caplog.at_level("WARNING"):
        a = load_task_buffer(export_task_buffer(old, 11, tmp_path / "a.h5", gamma=0.99))
    assert "lifetime format 'macaw-lifetime-1' has no checksums" in caplog.text
    b = load_task_buffer(export_task_buffer(tiny_lifetime, 11, tmp_path / "b.h5", gamma=0.99))
    for key in ("observations", "actions", "rewards", "next_observations", "terminals",
                "timeouts", "mc_returns", "episode_starts", "episode_returns"):
        assert getattr(a, key).tobytes() == getattr(b, key).tobytes(), key

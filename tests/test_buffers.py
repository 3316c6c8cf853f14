"""Buffer format, MC returns, quality windows and samplers (macaw.data)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

import macaw.data.buffer as buffer_module
from macaw.data import (
    SCHEMA_VERSION,
    Batch,
    BufferSchemaError,
    TaskData,
    compute_mc_returns,
    contiguous_indices,
    load_task_buffer,
    uniform_indices,
    window_indices,
    write_task_buffer,
)

OBS_DIM, ACT_DIM = 17, 6      # cheetah-vel's: the loader checks them against the family


def synthetic(episode_lengths, seed=0, last_ends=True):
    """Arrays for consecutive episodes; episode k's rewards are all equal to k (easy to identify)."""
    rng = np.random.default_rng(seed)
    n = sum(episode_lengths)
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    rewards = np.zeros(n, np.float32)
    pos = 0
    for k, length in enumerate(episode_lengths):
        rewards[pos : pos + length] = k
        # alternate: even episodes time out, odd ones terminate
        (timeouts if k % 2 == 0 else terminals)[pos + length - 1] = True
        pos += length
    if not last_ends:
        terminals[-1] = timeouts[-1] = False
    return dict(
        observations=rng.normal(size=(n, OBS_DIM)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, ACT_DIM)).astype(np.float32),
        rewards=rewards,
        next_observations=rng.normal(size=(n, OBS_DIM)).astype(np.float32),
        terminals=terminals,
        timeouts=timeouts,
    )


META = dict(
    env_id="MACAW/HalfCheetahVel-v0",
    family="cheetah-vel",
    task_id=3,
    task_params={"goal_velocity": 0.3},
    gamma=0.99,
    policy_steps=1234,
    algorithm="td3",
    config={"seed": 1, "steps": 1234},
)


def write(path, lengths=(4, 3, 5), **overrides):
    arrays = synthetic(lengths)
    kwargs = {**arrays, **META, **overrides}
    return write_task_buffer(path, **kwargs), arrays


# ---------------------------------------------------------------- MC returns


def test_mc_returns_hand_computed_two_episodes():
    rewards = np.array([1, 2, 3, 4, 5], np.float32)
    terminals = np.array([0, 0, 1, 0, 0], bool)
    timeouts = np.array([0, 0, 0, 0, 1], bool)
    got = compute_mc_returns(rewards, terminals, timeouts, 0.5)
    expected = [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 4 + 0.5 * 5, 5]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_mc_returns_match_reverse_loop_on_long_buffer():
    rng = np.random.default_rng(1)
    n = 2000
    rewards = rng.normal(size=n)
    timeouts = np.zeros(n, bool)
    timeouts[199::200] = True
    terminals = rng.random(n) < 0.01
    gamma = 0.99
    ref = np.zeros(n)
    running = 0.0
    for t in range(n - 1, -1, -1):
        if terminals[t] or timeouts[t]:
            running = 0.0
        running = rewards[t] + gamma * running
        ref[t] = running
    np.testing.assert_allclose(compute_mc_returns(rewards, terminals, timeouts, gamma), ref, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- round trip


def test_write_load_round_trip_every_key_and_attr(tmp_path):
    succ = np.array([0.0, 1.0, 1.0], np.float32)
    path, arrays = write(tmp_path / "task03.h5", episode_successes=succ)
    buf = load_task_buffer(path)
    for key, value in arrays.items():
        np.testing.assert_array_equal(getattr(buf, key), value)
    assert buf.terminals.dtype == np.bool_ and buf.timeouts.dtype == np.bool_
    assert buf.observations.dtype == np.float32
    np.testing.assert_array_equal(buf.episode_starts, [0, 4, 7])
    assert buf.episode_starts.dtype == np.int64
    # rewards of episode k are all k: returns 0*4, 1*3, 2*5
    np.testing.assert_allclose(buf.episode_returns, [0.0, 3.0, 10.0])
    np.testing.assert_allclose(
        buf.mc_returns,
        compute_mc_returns(arrays["rewards"], arrays["terminals"], arrays["timeouts"], 0.99),
    )
    np.testing.assert_array_equal(buf.episode_successes, succ)
    assert buf.schema_version == SCHEMA_VERSION
    assert buf.env_id == "MACAW/HalfCheetahVel-v0"
    assert buf.family == "cheetah-vel"
    assert buf.task_id == 3
    assert buf.task_params == {"goal_velocity": 0.3}
    assert buf.gamma == 0.99
    assert buf.policy_steps == 1234
    assert buf.algorithm == "td3"
    assert buf.config == {"seed": 1, "steps": 1234}
    assert buf.created_by.startswith("macaw ")
    assert len(buf) == 12 and buf.n_episodes == 3
    assert buf.episode_slices() == [slice(0, 4), slice(4, 7), slice(7, 12)]
    assert not list(tmp_path.glob("*.tmp"))  # temp file renamed away


# ---------------------------------------------------------------- errors on write


def test_write_rejects_unfinished_last_episode(tmp_path):
    arrays = synthetic((4, 3), last_ends=False)
    with pytest.raises(ValueError, match="last transition"):
        write_task_buffer(tmp_path / "x.h5", **arrays, **META)
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize(
    "field, bad",
    [
        ("actions", np.zeros((7, ACT_DIM + 1, 1), np.float32)),
        ("rewards", np.zeros(6, np.float32)),
        ("next_observations", np.zeros((7, OBS_DIM + 1), np.float32)),
        ("timeouts", np.zeros(8, bool)),
    ],
)
def test_write_rejects_wrong_shape_naming_field(tmp_path, field, bad):
    arrays = synthetic((4, 3))
    arrays[field] = bad
    with pytest.raises(ValueError, match=f"'{field}'.*expected.*found"):
        write_task_buffer(tmp_path / "x.h5", **arrays, **META)


# ---------------------------------------------------------------- errors on load


def test_load_missing_key_names_file_and_key(tmp_path):
    path, _ = write(tmp_path / "task03.h5")
    with h5py.File(path, "a") as f:
        del f["mc_returns"]
    with pytest.raises(BufferSchemaError) as info:
        load_task_buffer(path)
    assert "task03.h5" in str(info.value) and "mc_returns" in str(info.value)


def test_load_wrong_shape_names_file_and_key(tmp_path):
    path, _ = write(tmp_path / "task03.h5")
    with h5py.File(path, "a") as f:
        data = f["rewards"][()]
        del f["rewards"]
        f.create_dataset("rewards", data=data[:-1], fletcher32=True)
    with pytest.raises(BufferSchemaError) as info:
        load_task_buffer(path)
    msg = str(info.value)
    assert "task03.h5" in msg and "rewards" in msg and "12" in msg and "11" in msg


def test_load_2d_observations_required(tmp_path):
    path, _ = write(tmp_path / "task03.h5")
    with h5py.File(path, "a") as f:
        data = f["observations"][()]
        del f["observations"]
        f.create_dataset("observations", data=data[:, 0], fletcher32=True)
    with pytest.raises(BufferSchemaError, match="observations'.*a 2-D array"):
        load_task_buffer(path)


def test_load_wrong_schema_version(tmp_path):
    path, _ = write(tmp_path / "task03.h5")
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(BufferSchemaError) as info:
        load_task_buffer(path)
    msg = str(info.value)
    assert "task03.h5" in msg and "schema_version" in msg and str(SCHEMA_VERSION + 1) in msg


def test_a_flipped_byte_fails_the_checksum_naming_file_and_key(tmp_path):
    path, _ = write(tmp_path / "task03.h5")
    load_task_buffer(path)
    with h5py.File(path, "r") as f:
        offset = f["rewards"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 5] ^= 0x10                       # one bit of one reward
    path.write_bytes(bytes(raw))
    with pytest.raises(BufferSchemaError,
                       match=r"task03\.h5: key 'rewards': expected data matching its "
                             r"Fletcher-32 checksum"):
        load_task_buffer(path)


def _rewrite_without_checksums(path, version):
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in f}
        attrs = dict(f.attrs)
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            f.create_dataset(k, data=v)
        f.attrs.update({**attrs, "schema_version": version})


def test_schema_1_files_without_checksums_load_with_a_warning(tmp_path, caplog):
    path, _ = write(tmp_path / "task03.h5")
    _rewrite_without_checksums(path, 1)
    with caplog.at_level("WARNING"):
        assert load_task_buffer(path).schema_version == 1
    assert "has no checksums" in caplog.text
    _rewrite_without_checksums(path, 2)
    with pytest.raises(BufferSchemaError, match="key 'observations': expected a Fletcher-32"):
        load_task_buffer(path)


def test_load_missing_attribute(tmp_path):
    path, _ = write(tmp_path / "task03.h5")
    with h5py.File(path, "a") as f:
        del f.attrs["gamma"]
    with pytest.raises(BufferSchemaError, match="task03.h5.*gamma"):
        load_task_buffer(path)


def test_load_inconsistent_episode_starts(tmp_path):
    path, _ = write(tmp_path / "task03.h5")
    with h5py.File(path, "a") as f:
        f["episode_starts"][1] = 5
    with pytest.raises(BufferSchemaError, match="episode_starts"):
        load_task_buffer(path)


def test_load_truncated_file(tmp_path):
    path, _ = write(tmp_path / "task03.h5", lengths=(200, 200))
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(BufferSchemaError, match="task03.h5"):
        load_task_buffer(path)


def test_load_non_hdf5_and_missing_file(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(BufferSchemaError, match="junk.h5"):
        load_task_buffer(junk)
    with pytest.raises(BufferSchemaError, match="absent.h5"):
        load_task_buffer(tmp_path / "absent.h5")


# ---------------------------------------------------------------- atomic write


def _fail_after(monkeypatch, n_ok):
    real = h5py.Group.create_dataset
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise RuntimeError("simulated crash mid-write")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", flaky)
    return calls


def test_atomic_write_leaves_no_file_when_crashing(tmp_path, monkeypatch):
    calls = _fail_after(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="simulated"):
        write(tmp_path / "task03.h5")
    assert calls["n"] == 4  # it really crashed midway, after three datasets
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_existing_good_file(tmp_path, monkeypatch):
    path, _ = write(tmp_path / "task03.h5")
    before = path.read_bytes()
    _fail_after(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="simulated"):
        write(tmp_path / "task03.h5", lengths=(2, 2), task_id=9)
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert load_task_buffer(path).task_id == 3
    assert [p.name for p in tmp_path.iterdir()] == ["task03.h5"]


# ---------------------------------------------------------------- windows


@pytest.fixture
def ten_episodes(tmp_path):
    # episode k has length k + 2 and rewards all equal to k
    path, _ = write(tmp_path / "ten.h5", lengths=tuple(k + 2 for k in range(10)))
    return load_task_buffer(path)


def _episodes_of(buf, idx):
    return sorted(set(buf.rewards[idx].astype(int).tolist()))


def test_windows_pick_first_middle_last_episodes(ten_episodes):
    buf = ten_episodes
    bad = window_indices(buf, "bad", 3)
    med = window_indices(buf, "medium", 3)
    good = window_indices(buf, "good", 3)
    assert _episodes_of(buf, bad) == [0, 1, 2]
    assert _episodes_of(buf, med) == [4, 5, 6]
    assert _episodes_of(buf, good) == [7, 8, 9]
    # whole episodes, contiguous transition indices
    assert bad.tolist() == list(range(0, 2 + 3 + 4))
    assert good.tolist() == list(range(len(buf) - (9 + 10 + 11), len(buf)))
    assert np.all(np.diff(med) == 1) and med.size == 6 + 7 + 8


def test_windows_clip_and_reject_unknown(ten_episodes):
    buf = ten_episodes
    for quality in ("bad", "medium", "good"):
        assert window_indices(buf, quality, 500).tolist() == list(range(len(buf)))
    with pytest.raises(ValueError, match="excellent"):
        window_indices(buf, "excellent", 3)


# ---------------------------------------------------------------- samplers


def test_contiguous_sampler_stays_in_window(ten_episodes):
    buf = ten_episodes
    window = window_indices(buf, "good", 3)
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        idx = contiguous_indices(buf, 8, rng, window)
        assert np.all(np.diff(idx) == 1)
        assert idx[0] >= window[0] and idx[-1] <= window[-1]
        starts.add(int(idx[0]))
    assert len(starts) == window.size - 8 + 1  # every legal start is reachable
    with pytest.raises(ValueError, match=f"{window.size + 1}.*{window.size}"):
        contiguous_indices(buf, window.size + 1, rng, window)


def test_uniform_sampler_excludes_and_is_reproducible(ten_episodes):
    buf = ten_episodes
    rng = np.random.default_rng(3)
    exclude = contiguous_indices(buf, 20, rng)
    seen = set()
    for _ in range(300):
        idx = uniform_indices(buf, 16, rng, exclude=exclude)
        assert len(set(idx.tolist())) == 16
        assert not set(idx.tolist()) & set(exclude.tolist())
        seen.update(idx.tolist())
    assert seen == set(range(len(buf))) - set(exclude.tolist())
    a = uniform_indices(buf, 16, np.random.default_rng(42), exclude=exclude)
    b = uniform_indices(buf, 16, np.random.default_rng(42), exclude=exclude)
    np.testing.assert_array_equal(a, b)
    n_left = len(buf) - exclude.size
    with pytest.raises(ValueError, match=f"{n_left + 1}.*only {n_left}"):
        uniform_indices(buf, n_left + 1, rng, exclude=exclude)


def test_batch_shapes_and_dtypes(ten_episodes):
    buf = ten_episodes
    task = TaskData(buf.path, "good", 10, torch.device("cpu"))
    batch = task.batch(uniform_indices(buf, 10, np.random.default_rng(0)))
    assert isinstance(batch, Batch)
    assert batch.observations.shape == (10, OBS_DIM)
    assert batch.next_observations.shape == (10, OBS_DIM)
    assert batch.actions.shape == (10, ACT_DIM)
    for t in (batch.rewards, batch.terminals, batch.mc_returns):
        assert t.shape == (10,)
    assert all(t.dtype == torch.float32 for t in batch)
    assert set(batch.terminals.unique().tolist()) <= {0.0, 1.0}
    # the terminal flags are the buffer's, as floats
    full = task.batch(np.arange(len(buf)))
    assert full.terminals.sum().item() == buf.terminals.sum()
    assert full.mc_returns[-1].item() == pytest.approx(float(buf.rewards[-1]))


@pytest.mark.parametrize("key,row,value,match", [
    ("rewards", 5, np.nan, "rewards.*finite.*row 5"),
    ("observations", 2, np.inf, "observations.*finite.*row 2"),
    ("actions", 7, 10.0, "actions.*action box.*row 7"),
])
def test_load_refuses_non_finite_or_out_of_box_data(tmp_path, key, row, value, match):
    """Flipped bytes or NaN rewards must not train silently."""
    path, _ = write(tmp_path / "task03.h5")
    with h5py.File(path, "a") as f:
        data = f[key][()]
        data[row] = value
        del f[key]     # rewritten with a valid checksum: the values themselves are checked
        f.create_dataset(key, data=data, fletcher32=True)
    with pytest.raises(BufferSchemaError, match=match):
        load_task_buffer(path)


def _rewrite(path, **datasets):
    """Replace datasets with new values under a valid checksum, as a deliberate edit would."""
    with h5py.File(path, "a") as f:
        for key, data in datasets.items():
            del f[key]
            f.create_dataset(key, data=data, fletcher32=True, chunks=True)


# ---------------------------------------------------------------- issue 35, items 2-6


@pytest.mark.parametrize("gamma", [1.2, -0.5, 7.5, float("nan"), 0.0])
def test_a_gamma_outside_the_unit_interval_is_refused_naming_file_and_attribute(tmp_path, gamma):
    path, _ = write(tmp_path / "task03.h5")
    with h5py.File(path, "a") as f:
        f.attrs["gamma"] = gamma
    with pytest.raises(BufferSchemaError, match=r"task03\.h5: attribute 'gamma': expected a "
                                                r"discount in \(0, 1\], found"):
        load_task_buffer(path)


def test_a_gamma_that_did_not_make_the_mc_returns_or_is_not_the_configs_is_refused(tmp_path):
    path, _ = write(tmp_path / "task03.h5")
    with h5py.File(path, "a") as f:            # the returns were discounted with 0.99
        f.attrs["gamma"] = 0.5
    with pytest.raises(BufferSchemaError, match=r"task03\.h5: key 'mc_returns': expected the "
                                                r"discounted returns of 'rewards' with attribute "
                                                r"'gamma' 0\.5"):
        load_task_buffer(path)
    consistent, _ = write(tmp_path / "task04.h5", gamma=0.5)
    assert load_task_buffer(consistent).gamma == 0.5
    with pytest.raises(BufferSchemaError, match=r"task04\.h5: attribute 'gamma': expected 0\.99 "
                                                r"\(the config's gamma.*found 0\.5"):
        load_task_buffer(consistent, gamma=0.99)


@pytest.mark.parametrize("forged,match", [
    # Walker data relabelled as cheetah-vel: same 17/6 sizes, its env_id still says Walker.
    (dict(family="cheetah-vel"), r"attribute 'env_id': expected 'MACAW/HalfCheetahVel-v0' "
                                 r"\(the environment of family 'cheetah-vel'\), found "
                                 r"'MACAW/Walker2dParams-v0'"),
    # ... and its env_id too: the task parameters are still walker's.
    (dict(family="cheetah-vel", env_id="MACAW/HalfCheetahVel-v0"),
     r"attribute 'task_params': expected \{\"goal_velocity\": 0\.3\} \(task 3 of 'cheetah-vel'\)"),
    (dict(task_id=41), r"attribute 'task_params': expected .* \(task 41 of 'walker-params'\)"),
    (dict(task_id=50), r"attribute 'task_id': expected a task of 'walker-params' \(0\.\.49\)"),
    (dict(family="walker"), r"attribute 'family': expected one of \["),
    (dict(family="ant-dir", env_id="MACAW/AntDir-v0"),
     r"key 'observations': expected 27 columns \(the observations of MACAW/AntDir-v0\), "
     r"found 17"),
])
def test_a_relabelled_file_of_another_task_or_family_is_refused(tmp_path, forged, match):
    from macaw.envs import task_params

    path, _ = write(tmp_path / "task03.h5", env_id="MACAW/Walker2dParams-v0",
                    family="walker-params", task_params=task_params("walker-params", 3))
    assert load_task_buffer(path).family == "walker-params"
    with h5py.File(path, "a") as f:
        f.attrs.update(forged)
    with pytest.raises(BufferSchemaError, match=r"task03\.h5: " + match):
        load_task_buffer(path)


def test_observations_of_another_size_than_the_environments_are_refused(tmp_path, capsys):
    from macaw.cli import main

    arrays = synthetic((4, 3))
    for key in ("observations", "next_observations"):
        arrays[key] = np.concatenate([arrays[key], arrays[key][:, :1]], axis=1)   # 18 wide
    path = write_task_buffer(tmp_path / "task03.h5", **arrays, **META)
    with pytest.raises(BufferSchemaError, match=r"task03\.h5: key 'observations': expected 17 "
                                                r"columns \(the observations of "
                                                r"MACAW/HalfCheetahVel-v0\), found 18"):
        load_task_buffer(path)
    assert main(["inspect-buffer", str(path)]) == 2
    assert "task03.h5: INVALID" in capsys.readouterr().out


@pytest.mark.parametrize("key,dtype", [("observations", np.float64), ("rewards", np.float16),
                                       ("terminals", np.int8), ("episode_starts", np.int32),
                                       ("mc_returns", np.longdouble)])
def test_load_requires_the_documented_dtypes(tmp_path, key, dtype):
    path, _ = write(tmp_path / "task03.h5")
    with h5py.File(path, "r") as f:
        data = f[key][()].astype(dtype)
    _rewrite(path, **{key: data})
    with pytest.raises(BufferSchemaError, match=rf"task03\.h5: key '{key}': expected the HDF5 "
                                                r"type of dtype \w+, found dtype"):
        load_task_buffer(path)


def test_a_flipped_bit_in_the_type_description_is_caught(tmp_path):
    """The reported case: one bit of the observations' HDF5 type (outside what Fletcher-32
    covers) turns their float32 data into float64 or float128 values ~1e-79, or (a flip in the
    mantissa size) into other float32 values."""
    path, _ = write(tmp_path / "task03.h5")
    raw = path.read_bytes()
    message = _type_message(path, "observations", "float32")
    # Bytes 15 and 16-19 of a float's type message: mantissa size and exponent bias.
    for byte, bit, match in ((16, 0, r"found dtype float64 .*exponent bias 126"),
                             (17, 3, r"found (dtype float128|a type with no numpy dtype)"),
                             (15, 0, r"found dtype float32 .*mantissa fields \(31, 23, 8, 0, "
                                     r"22\)")):
        flipped = bytearray(raw)
        flipped[message[byte]] ^= 1 << bit
        path.write_bytes(bytes(flipped))
        with pytest.raises(BufferSchemaError, match=r"task03\.h5: key 'observations': expected "
                                                    r"the HDF5 type of dtype float32, " + match):
            load_task_buffer(path)


TYPE_MESSAGES = {
    # HDF5 datatype messages as h5py writes them (class and version, bit field, size, then the
    # properties: bit offset, precision, and for a float the exponent / mantissa layout and bias).
    "float32": "11201f00 04000000 0000 2000 17 08 00 17 7f000000",
    "int64": "10080000 08000000 0000 4000",
    "bool": "18020000 01000000 10080000 01000000 0000 0800 46414c5345000000 5452554500000000 00 01",
}


def _type_message(path, key: str, kind: str) -> range:
    """The byte range of dataset ``key``'s datatype message (of ``kind``) in ``path``: the
    first one in the dataset's object header."""
    encoded = bytes.fromhex(TYPE_MESSAGES[kind].replace(" ", ""))
    with h5py.File(path, "r") as f:
        info = h5py.h5o.get_info(f[key].id)
    header = path.read_bytes()[info.addr:info.addr + info.hdr.space.total]
    assert encoded in header, f"{key}: no {kind} type message in its object header"
    start = info.addr + header.index(encoded)
    return range(start, start + len(encoded))


def _chunk_key(path, key: str) -> range:
    """The byte range of the first key of dataset ``key``'s chunk index (a version-1 B-tree
    node: "TREE", 20 header bytes, then per key the chunk's size, filter mask and offsets,
    followed by the chunk's address): the node whose first child is the first chunk."""
    import re

    raw = path.read_bytes()
    with h5py.File(path, "r") as f:
        address = f[key].id.get_chunk_info(0).byte_offset
        key_size = 8 + 8 * (f[key].ndim + 1)
    for node in (m.start() for m in re.finditer(b"TREE", raw)):
        child = node + 24 + key_size
        if int.from_bytes(raw[child:child + 8], "little") == address:
            return range(node + 24, child)
    raise AssertionError(f"{key}: no chunk index node found")


def _flip_outcome(path, reference) -> str:
    """caught (the loader's error, naming the file), harmless (the same arrays and task),
    SILENT (anything else loaded) or unclear (another exception)."""
    try:
        buf = load_task_buffer(path, gamma=reference.gamma)
    except BufferSchemaError as err:
        return "caught" if str(err).startswith(str(path)) else f"unclear: {err}"
    except Exception as err:  # noqa: BLE001 - any other exception is what the test looks for
        return f"unclear: {type(err).__name__}: {err}"
    for key in buffer_module.REQUIRED_KEYS:
        a, b = getattr(reference, key), getattr(buf, key)
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            return f"SILENT: {key}"
    for name in ("family", "env_id", "task_id", "task_params", "gamma"):
        if getattr(reference, name) != getattr(buf, name):
            return f"SILENT: attribute {name}"
    return "harmless"


def _fuzz_child(raw: bytes, bits, path, reference, send) -> None:
    for bit in bits:
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(flipped))
        send.send(_flip_outcome(path, reference))
    send.close()


def _fuzz(raw: bytes, bits: list[int], path, reference) -> list[str]:
    """The outcome of every flip, loaded in a forked child: a flip on which libhdf5 itself
    crashes (a segfault) or hangs is 'libhdf5 died' (no data gets through: the process dies),
    and the next child goes on from the flip after it."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    outcomes: list[str] = []
    while len(outcomes) < len(bits):
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_fuzz_child,
                            args=(raw, bits[len(outcomes):], path, reference, send))
        child.start()
        send.close()
        died = False
        while len(outcomes) < len(bits):
            try:
                if not receive.poll(30):
                    died = True
                    break
                outcomes.append(receive.recv())
            except EOFError:
                died = True
                break
        child.kill()
        child.join()
        if died:
            outcomes.append("libhdf5 died")
    return outcomes


def test_bit_flip_fuzz_every_flip_is_caught_or_harmless(tmp_path):
    """Issue 35 item 5: every bit of the HDF5 type description of a float, a bool and an
    integer dataset (where one flip used to turn float32 into other values unnoticed) and of
    the observations' first chunk-index key (where one flip makes HDF5 return zeros for a
    chunk it no longer finds, with no checksum read), then 400 random bits of the whole file
    (seeded; the file's bytes are the same on every run). Each flip must raise the loader's
    error naming the file, or leave every array and the task's identity bit-identical: none
    may load changed data."""
    path, _ = write(tmp_path / "task03.h5", lengths=(50, 50, 50), provenance={"fixed": True})
    raw = path.read_bytes()
    reference = load_task_buffer(path, gamma=0.99)
    regions = [_type_message(path, key, kind) for key, kind in (
        ("observations", "float32"), ("terminals", "bool"), ("episode_starts", "int64"))]
    regions.append(_chunk_key(path, "observations"))
    targeted = [8 * byte + bit for region in regions for byte in region for bit in range(8)]
    bits = targeted + np.random.default_rng(0).choice(8 * len(raw), 400, replace=False).tolist()
    outcomes = _fuzz(raw, bits, tmp_path / "flipped.h5", reference)
    counts = {kind: sum(o.split(":")[0] == kind for o in outcomes)
              for kind in ("caught", "harmless", "libhdf5 died", "SILENT", "unclear")}
    print(f"{len(targeted)} targeted flips + 400 random flips: {counts}")
    bad = [(bit, o) for bit, o in zip(bits, outcomes) if o.startswith(("SILENT", "unclear"))]
    assert not bad, bad[:10]
    assert counts["caught"] > 0 and counts["harmless"] > 0


def test_derived_fields_are_checked_against_the_rewards(tmp_path):
    """Re-checksummed edits of a derived field (or of the rewards without it) are refused."""
    path, _ = write(tmp_path / "task03.h5", lengths=(4, 3, 5))
    clean = load_task_buffer(path)
    cases = [
        (dict(mc_returns=clean.mc_returns * 100),
         r"key 'mc_returns': expected the discounted returns of 'rewards' with attribute "
         r"'gamma' 0\.99 .*found 297\.01 at row 4 where they give 198\.01"),
        (dict(rewards=clean.rewards * 100),                 # episode_returns left as they were
         r"key 'episode_returns': expected the summed 'rewards' of each episode, found 3 for "
         r"episode 1, whose rewards sum to 300"),
        (dict(rewards=clean.rewards * 100, episode_returns=clean.episode_returns * 100),
         r"key 'mc_returns': expected the discounted returns"),
        (dict(episode_returns=clean.episode_returns + 1), r"key 'episode_returns'"),
    ]
    for datasets, match in cases:
        edited, _ = write(tmp_path / "edited.h5", lengths=(4, 3, 5))
        _rewrite(edited, **datasets)
        with pytest.raises(BufferSchemaError, match=r"edited\.h5: " + match):
            load_task_buffer(edited)


def test_the_mc_returns_check_allows_float32_rounding_of_long_episodes(tmp_path):
    """Rewards of magnitude 1e3 over 1000-step episodes: the stored float32 returns pass."""
    arrays = synthetic((1000, 1000, 7))
    arrays["rewards"] = np.random.default_rng(3).normal(scale=1e3, size=2007).astype(np.float32)
    path = write_task_buffer(tmp_path / "task03.h5", **arrays, **META)
    assert len(load_task_buffer(path)) == 2007


def test_atomic_write_gives_the_umask_permissions_not_0600(tmp_path):
    import os

    from macaw.io import atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "shared.csv") as tmp:
            tmp.write_text("x\n")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.csv").stat().st_mode & 0o777 == 0o644


def test_inspect_buffer_checks_every_file_it_is_given(tmp_path, capsys):
    from macaw.cli import main

    good_a, _ = write(tmp_path / "task01.h5")
    bad, _ = write(tmp_path / "task02.h5")
    good_b, _ = write(tmp_path / "task03.h5")
    with h5py.File(bad, "a") as f:
        del f.attrs["gamma"]
    assert main(["inspect-buffer", str(good_a), str(bad), str(good_b)]) == 2
    out, err = capsys.readouterr()
    assert "task01.h5: cheetah-vel" in out and "task03.h5: cheetah-vel" in out
    assert "task02.h5: INVALID" in out and "gamma" in out
    assert "1 of 3 buffer files are invalid" in err


def test_buffers_record_their_provenance_and_inspect_prints_it(tmp_path, capsys):
    """Every buffer records the code, package versions and host that made it
    (macaw.provenance); a file written before provenance still loads, with an empty record."""
    import platform
    import subprocess

    from macaw.cli import main
    from macaw.provenance import PACKAGES

    path, _ = write(tmp_path / "task01.h5")
    record = load_task_buffer(path).provenance
    assert set(record) == {"macaw", "git_commit", "git_dirty", "python", *PACKAGES, "host",
                           "cpu", "gpu", "threads"}
    assert record["python"] == platform.python_version()
    assert record["numpy"] == np.__version__ and record["h5py"] == h5py.__version__
    repo = buffer_module.Path(buffer_module.__file__).resolve().parents[2]
    if (repo / ".git").exists():
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        assert record["git_commit"] == head and isinstance(record["git_dirty"], bool)
    assert main(["inspect-buffer", str(path)]) == 0
    assert f"made by: macaw {record['macaw']} ({record['git_commit'][:10]}" in capsys.readouterr().out

    with h5py.File(path, "a") as f:
        del f.attrs["provenance"]
    assert load_task_buffer(path).provenance == {}


def test_write_csv_formats_each_column_and_leaves_missing_cells_empty(tmp_path):
    import pandas as pd

    from macaw.io import write_csv

    write_csv(tmp_path / "t.csv", ["step", "return", "loss"],
              [(0, -1.23456789, None), {"step": 250, "return": 2.5}],
              {"return": ".6f"}, default=".3g")
    assert (tmp_path / "t.csv").read_text() == ("step,return,loss\n0,-1.234568,\n"
                                                "250,2.500000,\n")
    frame = pd.read_csv(tmp_path / "t.csv")
    assert list(frame.columns) == ["step", "return", "loss"] and frame.loss.isna().all()


def test_non_finite_names_every_nan_or_inf_tensor_of_a_nested_state():
    from macaw.runs import non_finite

    state = {"actor": {"w": torch.tensor([1.0, float("nan")]), "b": torch.zeros(2)},
             "log_alpha": torch.tensor([float("inf")]), "steps": torch.tensor([3]),
             "critic": {"layers": {"0": torch.ones(1)}}}
    assert non_finite(state) == ["actor.w", "log_alpha"]
    assert non_finite({"w": torch.zeros(3)}) == []

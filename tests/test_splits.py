"""Task splits as data (macaw.data.splits, docs/design.md §2)."""

from __future__ import annotations

import json

import pytest

from macaw.data import SPLITS, load_split, make_split, write_split

ALL40 = set(range(40))


def test_cheetah_vel_standard():
    s = make_split("cheetah-vel", "standard", 40)
    assert s["test"] == [2, 7, 15, 23, 26]
    assert len(s["train"]) == 35
    assert set(s["train"]) == ALL40 - {2, 7, 15, 23, 26}
    assert s["train"] == sorted(s["train"])


@pytest.mark.parametrize(
    "split, train",
    [
        ("sparse20", set(range(0, 40, 2))),
        ("sparse10", set(range(0, 40, 4))),
        ("sparse5", {0, 8, 16, 24, 32}),
        ("sparse3", {0, 16, 32}),
    ],
)
def test_cheetah_vel_sparsity(split, train):
    s = make_split("cheetah-vel", split, 40)
    assert set(s["train"]) == train
    assert len(s["train"]) == int(split.removeprefix("sparse"))
    assert set(s["test"]) == ALL40 - train
    assert len(s["train"]) + len(s["test"]) == 40


def test_cheetah_vel_extrapolation():
    s = make_split("cheetah-vel", "extrapolation", 40)
    assert len(s["train"]) == 26 and len(s["test"]) == 14
    velocity = lambda i: 0.075 * (i + 1)  # noqa: E731
    assert max(velocity(i) for i in s["train"]) <= 2.0
    assert min(velocity(i) for i in s["test"]) > 2.0
    assert s["test"] == list(range(26, 40))


def test_other_families():
    assert make_split("cheetah-dir", "standard", 2) == {"train": [0, 1], "test": [0, 1]}
    ant = make_split("ant-dir", "standard", 50)
    assert ant["test"] == [6, 17, 23, 30, 41] and len(ant["train"]) == 45
    walker = make_split("walker-params", "standard", 50)
    assert walker["test"] == [2, 12, 15, 39, 43] and len(walker["train"]) == 45
    assert set(SPLITS) == {"cheetah-dir", "cheetah-vel", "ant-dir", "walker-params", "ml45"}


def test_available_intersects_both_lists():
    s = make_split("cheetah-vel", "standard", 40, available=[0, 1, 2, 3, 7, 39])
    assert s == {"train": [0, 1, 3, 39], "test": [2, 7]}
    s = make_split("cheetah-vel", "sparse3", 40, available=[0, 5, 16])
    assert s == {"train": [0, 16], "test": [5]}


def test_empty_list_raises():
    with pytest.raises(ValueError, match=r"cheetah-vel.*standard|standard.*cheetah-vel") as info:
        make_split("cheetah-vel", "standard", 40, available=[0, 1, 3])
    assert "test" in str(info.value)
    with pytest.raises(ValueError, match="train"):
        make_split("cheetah-vel", "extrapolation", 40, available=[30, 31])
    with pytest.raises(ValueError, match="sparse7"):
        make_split("cheetah-vel", "sparse7", 40)
    with pytest.raises(ValueError, match="pendulum"):
        make_split("pendulum", "standard", 40)


def test_json_round_trip(tmp_path):
    s = make_split("cheetah-vel", "sparse10", 40, available=list(range(40)))
    meta = {"family": "cheetah-vel", "split": "sparse10", "available": list(range(40)), "seed": 3}
    path = write_split(tmp_path / "splits" / "cheetah-vel-sparse10.json", s, meta)
    loaded = load_split(path)
    assert loaded["train"] == s["train"] and loaded["test"] == s["test"]
    assert loaded["family"] == "cheetah-vel" and loaded["split"] == "sparse10"
    assert loaded["available"] == list(range(40)) and loaded["seed"] == 3
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_load_split_rejects_missing_key(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"train": [0], "family": "cheetah-vel", "split": "standard", "available": None}))
    with pytest.raises(ValueError, match="bad.json.*'test'"):
        load_split(path)
    path.write_text(json.dumps({"train": [], "test": [1], "family": "f", "split": "s", "available": None}))
    with pytest.raises(ValueError, match="'train'"):
        load_split(path)


def test_available_ids_out_of_range_are_an_error_not_dropped():
    from macaw.data import make_split

    with pytest.raises(ValueError, match=r"available task id\(s\) \[99\] out of range"):
        make_split("cheetah-vel", "standard", 40, available=[0, 2, 7, 99])

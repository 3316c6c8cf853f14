"""Task splits as data (macaw.data.splits, docs/design.md §2)."""

from __future__ import annotations

import json
import re

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


# ---------------------------------------------------------------- overlap (issue 35, item 1)


@pytest.mark.parametrize("train,test,shared", [
    ([0, 2, 16], [2, 7, 26], [2]),
    ([0, 16, 32], [0, 16, 32], [0, 16, 32]),
])
def test_a_split_whose_test_tasks_are_training_tasks_is_refused(tmp_path, train, test, shared):
    """A test task that is also a training task voids the meta-test result."""
    meta = {"family": "cheetah-vel", "split": "mine", "available": None}
    with pytest.raises(ValueError, match=rf"s\.json: test task\(s\) {re.escape(str(shared))} of "
                                         r"'cheetah-vel' are "
                                         r"also training tasks.*only cheetah-dir.*"
                                         r"--memorisation-check"):
        write_split(tmp_path / "s.json", {"train": train, "test": test}, meta)
    assert not (tmp_path / "s.json").exists()


def test_cheetah_dir_trains_and_tests_on_its_two_tasks(tmp_path):
    split = make_split("cheetah-dir", "standard", 2)
    assert split == {"train": [0, 1], "test": [0, 1]}
    path = write_split(tmp_path / "s.json", split, {"family": "cheetah-dir", "split": "standard"})
    assert "memorisation_check" not in load_split(path)


def test_a_memorisation_check_tests_on_the_training_tasks_and_says_so(tmp_path):
    from macaw.cli import main

    assert make_split("cheetah-vel", "sparse3", 40, memorisation_check=True) == {
        "train": [0, 16, 32], "test": [0, 16, 32]}
    out = tmp_path / "memorise.json"
    assert main(["make-split", "--family", "cheetah-vel", "--split", "sparse3",
                 "--memorisation-check", "--out", str(out)]) == 0
    data = load_split(out)
    assert data["train"] == data["test"] == [0, 16, 32] and data["memorisation_check"] is True
    # A memorisation check evaluates on training tasks: a held-out split is not one.
    with pytest.raises(ValueError, match=r"x\.json: memorisation check expected test tasks that "
                                         r"are training tasks, found none"):
        write_split(tmp_path / "x.json", {"train": [0, 16], "test": [7]},
                    {"family": "cheetah-vel", "split": "x", "memorisation_check": True})
    # Ordinary splits are written as before (no memorisation_check key).
    plain = tmp_path / "plain.json"
    assert main(["make-split", "--family", "cheetah-vel", "--split", "sparse3",
                 "--out", str(plain)]) == 0
    assert "memorisation_check" not in json.loads(plain.read_text())

"""Leak-free splits: a group (subject) is never on two sides of train / validation / test, nor of two
CV folds' test sides; stratified when names show no groups."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from edgeclf.errors import DataError, UsageError
from edgeclf.train.split import DEFAULT_GROUP_PATTERN, cv_folds, group_of, make_split

RX = re.compile(DEFAULT_GROUP_PATTERN)


def _shared_items(root: Path) -> tuple[list[tuple[str, int]], tuple[str, ...]]:
    labels = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    items = [(f"{c}/{f.name}", i) for i, c in enumerate(labels) for f in sorted((root / c).glob("*.png"))]
    return items, labels


def _groups(items) -> set[str]:
    return {group_of(p, RX) for p, _ in items}


def test_group_of_default_pattern() -> None:
    assert group_of("horses/horse01-3.png", RX) == "horses/horse01"
    assert group_of("humans/human07-00.png", RX) == "humans/human07"
    assert group_of("cats/IMG_0042.jpg", RX) == "cats/IMG"
    assert group_of("cats/snowball.jpg", RX) == "cats/snowball"


@pytest.mark.parametrize("seed", [0, 1, 1337])
@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.35])
def test_group_split_of_shared_set_never_shares_a_group(shared_data: Path, seed: int, fraction: float) -> None:
    items, labels = _shared_items(shared_data)
    plan = make_split(items, labels, fraction, seed)
    s = plan.split
    assert s.strategy == "group" and "no group on two sides" in plan.why
    assert not (_groups(s.train) & _groups(s.val))
    assert sorted(s.train + s.val) == sorted(items)
    per_class = Counter(y for _, y in s.val)
    totals = Counter(y for _, y in items)
    for y in range(len(labels)):  # stratified: each class near its share, within one group (31 files)
        assert per_class[y] > 0 and abs(per_class[y] - fraction * totals[y]) <= 31


def test_split_is_deterministic_per_seed(shared_data: Path) -> None:
    items, labels = _shared_items(shared_data)
    assert make_split(items, labels, 0.2, 7).split == make_split(items, labels, 0.2, 7).split
    assert make_split(items, labels, 0.2, 7).split.val != make_split(items, labels, 0.2, 8).split.val


def test_no_groups_falls_back_to_stratified_and_says_why() -> None:
    items = [(f"a/{i}.png", 0) for i in range(10)] + [(f"b/{i}.png", 1) for i in range(10)]
    plan = make_split(items, ("a", "b"), 0.2, 0)
    assert plan.split.strategy == "stratified" and "every file is its own group" in plan.why
    assert Counter(y for _, y in plan.split.val) == {0: 2, 1: 2}
    with pytest.raises(DataError, match="--split group: the file names do not form groups"):
        make_split(items, ("a", "b"), 0.2, 0, mode="group")


def test_stratified_on_request_even_with_groups(shared_data: Path) -> None:
    items, labels = _shared_items(shared_data)
    plan = make_split(items, labels, 0.2, 0, mode="stratified")
    assert plan.split.strategy == "stratified"
    assert _groups(plan.split.train) & _groups(plan.split.val)  # why it is not the default here


def test_custom_group_pattern_and_bad_pattern() -> None:
    items = [(f"a/subj{g}_shot{i}.png", 0) for g in range(4) for i in range(3)] + \
            [(f"b/subj{g}_shot{i}.png", 1) for g in range(4, 8) for i in range(3)]
    plan = make_split(items, ("a", "b"), 0.25, 0, mode="group", pattern=r"^(subj\d+)")
    rx = re.compile(r"^(subj\d+)")
    assert not ({group_of(p, rx) for p, _ in plan.split.train} & {group_of(p, rx) for p, _ in plan.split.val})
    with pytest.raises(UsageError, match="not a valid regular expression"):
        make_split(items, ("a", "b"), 0.25, 0, pattern="(unclosed")


def test_class_with_one_image_is_a_clear_error() -> None:
    items = [("a/x-1.png", 0), ("a/y-1.png", 0), ("b/only.png", 1)]
    with pytest.raises(DataError, match="class 'b' has 1 usable image"):
        make_split(items, ("a", "b"), 0.2, 0)


@pytest.mark.parametrize("seed", [0, 1337])
@pytest.mark.parametrize("val,test", [(0.15, 0.2), (0.1, 0.3), (0.2, 0.2)])
def test_three_way_split_never_shares_a_group_across_any_two_sides(shared_data: Path, seed: int, val: float,
                                                                  test: float) -> None:
    items, labels = _shared_items(shared_data)
    plan = make_split(items, labels, val, seed, test_fraction=test)
    s = plan.split
    g_train, g_val, g_test = _groups(s.train), _groups(s.val), _groups(s.test)
    assert not (g_train & g_val) and not (g_train & g_test) and not (g_val & g_test)
    assert sorted(s.train + s.val + s.test) == sorted(items)
    totals = Counter(y for _, y in items)
    for side, frac in ((s.val, val), (s.test, test)):
        got = Counter(y for _, y in side)
        for y in range(len(labels)):  # every class on every side, near its share (within one group: 31 files)
            assert got[y] > 0 and abs(got[y] - frac * totals[y]) <= 31
    assert "for test" in plan.why and "for validation" in plan.why


def test_validation_given_elsewhere_takes_only_a_test_side(shared_data: Path) -> None:
    items, labels = _shared_items(shared_data)
    s = make_split(items, labels, 0.15, 0, test_fraction=0.2, fixed_val=True).split
    assert s.val == () and s.test and not (_groups(s.train) & _groups(s.test))


@pytest.mark.parametrize("k", [3, 5])
def test_cv_folds_partition_the_groups(shared_data: Path, k: int) -> None:
    items, labels = _shared_items(shared_data)
    plans = cv_folds(items, labels, k, 0.15, seed=3)
    assert len(plans) == k
    tests = [p.split.test for p in plans]
    assert sorted(x for t in tests for x in t) == sorted(items)  # every image tested exactly once
    fold_groups = [_groups(t) for t in tests]
    for i in range(k):
        for j in range(i + 1, k):
            assert not (fold_groups[i] & fold_groups[j])
    for p in plans:  # inside each fold: three leak-free sides covering everything
        s = p.split
        assert not (_groups(s.train) & _groups(s.test)) and not (_groups(s.val) & _groups(s.test))
        assert not (_groups(s.train) & _groups(s.val))
        assert sorted(s.train + s.val + s.test) == sorted(items)
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 2 * 31  # balanced within a couple of groups


def test_cv_with_too_few_groups_is_a_clear_error() -> None:
    items = [(f"a/s{g}-{i}.png", 0) for g in range(3) for i in range(2)] + \
            [(f"b/t{g}-{i}.png", 1) for g in range(8) for i in range(2)]
    with pytest.raises(DataError, match="class 'a' has 3 groups"):
        cv_folds(items, ("a", "b"), 5, 0.15, 0)
    with pytest.raises(UsageError, match="--cv 1"):
        cv_folds(items, ("a", "b"), 1, 0.15, 0)

"""Leak-free split: a group (subject) is never on both sides; stratified when names show no groups."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from edgeclf.errors import DataError, UsageError
from edgeclf.train.split import DEFAULT_GROUP_PATTERN, group_of, make_split

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
    assert s.strategy == "group" and "no group on both sides" in plan.why
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

"""Train / validation / test split, and group K-fold: by group (no subject on two sides) or stratified.

Folders of photos often hold several shots of one subject (`horse01-0 ... horse01-9`). A random split
puts the same subject on both sides and reports inflated accuracy, so when file names show groups the
split keeps each group whole on one side.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

from edgeclf.errors import DataError, UsageError
from edgeclf.groups import DEFAULT_GROUP_PATTERN, compile_pattern, group_of
from edgeclf.groups import groups_usable as _groups_usable
from edgeclf.rundir import Split

SPLIT_MODES = ("auto", "group", "stratified")


@dataclass(frozen=True)
class SplitPlan:
    split: Split
    groups: int  # number of groups (0 for a stratified split)
    why: str  # one sentence for the log: which split and why


def _pick_val(units: list[tuple[str, list[tuple[str, int]]]], target: int) -> set[str]:
    """Take units (shuffled) into validation until `target` files; keep at least one unit for training."""
    chosen: set[str] = set()
    count = 0
    for key, members in units[:-1]:
        if count >= target:
            break
        # Skip a unit that would overshoot by more than it helps.
        if count and abs(count + len(members) - target) > abs(count - target):
            continue
        chosen.add(key)
        count += len(members)
    if not chosen:
        chosen.add(units[0][0])
    return chosen


def _units_by_class(items: Sequence[tuple[str, int]], n_labels: int, key: Callable[[str], str],
                    rng: random.Random) -> list[list[tuple[str, list[tuple[str, int]]]]]:
    """Per class, the units (groups or single files) in a seeded random order."""
    out = []
    for label in range(n_labels):
        units_d: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for it in items:
            if it[1] == label:
                units_d[key(it[0])].append(it)
        units = sorted(units_d.items())
        rng.shuffle(units)
        out.append(units)
    return out


def _check_counts(items: Sequence[tuple[str, int]], labels: Sequence[str], need: int, what: str) -> None:
    counts = Counter(label for _, label in items)
    for i, name in enumerate(labels):
        if counts[i] < need:
            raise DataError(f"class {name!r} has {counts[i]} usable image(s); {what} needs at least {need} per "
                            "class; add images or pass --validation-dir / --test-dir")


def _mode(items: Sequence[tuple[str, int]], mode: str, pattern: str) -> tuple[bool, str, re.Pattern[str]]:
    if mode not in SPLIT_MODES:
        raise UsageError(f"--split {mode!r} is not known; expected one of {', '.join(SPLIT_MODES)}")
    rx = compile_pattern(pattern)
    usable, reason = _groups_usable(items, rx)
    if mode == "group" and not usable:
        raise DataError(f"--split group: the file names do not form groups with --group-pattern {pattern!r} "
                        f"({reason}); use --split stratified or another --group-pattern")
    return mode == "group" or (mode == "auto" and usable), reason, rx


def make_split(items: Sequence[tuple[str, int]], labels: Sequence[str], fraction: float, seed: int,
               mode: str = "auto", pattern: str = DEFAULT_GROUP_PATTERN, test_fraction: float = 0.0,
               fixed_val: bool = False) -> SplitPlan:
    """Split (relative path, label index) items three ways: each class in proportion `test_fraction` to the
    test side (touched once, at the end) and `fraction` to validation (model selection), by group when the
    file names show groups. `fixed_val`: validation comes from elsewhere (--validation-dir), so only the test
    side is taken here."""
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--validation-split {fraction} must be between 0 and 1 (e.g. 0.15)")
    if not 0.0 <= test_fraction < 1.0 or fraction + test_fraction >= 0.9:
        raise UsageError(f"--test-split {test_fraction} must be between 0 and 1, and leave at least 10 % of the "
                         f"images to train on with --validation-split {fraction} (e.g. 0.2)")
    by_group, reason, rx = _mode(items, mode, pattern)
    sides = (1 if test_fraction else 0) + (0 if fixed_val else 1)
    _check_counts(items, labels, sides + 1, "a split")
    key = (lambda p: group_of(p, rx)) if by_group else (lambda p: p)
    rng = random.Random(seed)
    test_keys: set[str] = set()
    val_keys: set[str] = set()
    for label, units in enumerate(_units_by_class(items, len(labels), key, rng)):
        n = sum(len(m) for _, m in units)
        if len(units) < sides + 1:
            what = "subjects (groups)" if by_group else "images"
            raise DataError(f"class {labels[label]!r} has {len(units)} {what}; a split into train"
                            f"{', validation' if not fixed_val else ''}{' and test' if test_fraction else ''} needs "
                            f"at least {sides + 1}, one per side; add images, or pass --test-split 0, "
                            "--validation-dir or --test-dir")
        if test_fraction:  # leave at least one unit for training and, unless given elsewhere, one to validate
            chosen = _pick_val(units if fixed_val else units[:-1], max(1, round(test_fraction * n)))
            test_keys |= chosen
            units = [u for u in units if u[0] not in chosen]
        if not fixed_val:
            val_keys |= _pick_val(units, max(1, round(fraction * n)))
    train = tuple(sorted(it for it in items if key(it[0]) not in val_keys | test_keys))
    val = tuple(sorted(it for it in items if key(it[0]) in val_keys))
    test = tuple(sorted(it for it in items if key(it[0]) in test_keys))
    n_groups = len({key(p) for p, _ in items})
    if by_group:
        why = (f"group split: {n_groups} groups by --group-pattern {pattern!r}; "
               + (f"{len({key(p) for p, _ in val})} for validation, " if not fixed_val else "")
               + (f"{len({key(p) for p, _ in test})} for test, " if test_fraction else "")
               + "no group on two sides")
    else:
        why = "stratified split by file" + (f" (no groups: {reason})" if mode == "auto" else "")
    return SplitPlan(Split("group" if by_group else "stratified", train, val, test=test), n_groups if by_group else 0,
                     why)


def cv_folds(items: Sequence[tuple[str, int]], labels: Sequence[str], k: int, fraction: float, seed: int,
             mode: str = "auto", pattern: str = DEFAULT_GROUP_PATTERN) -> list[SplitPlan]:
    """Group K-fold: the units of each class dealt into `k` folds of near-equal size; fold i is the test side
    of split i, its validation side is drawn from the other folds, the rest trains. The test sides partition
    the data: every image is tested exactly once."""
    if not 2 <= k <= 20:
        raise UsageError(f"--cv {k}: expected 2 to 20 folds (e.g. --cv 5)")
    by_group, reason, rx = _mode(items, mode, pattern)
    key = (lambda p: group_of(p, rx)) if by_group else (lambda p: p)
    rng = random.Random(seed)
    fold_of: dict[str, int] = {}
    for label, units in enumerate(_units_by_class(items, len(labels), key, rng)):
        if len(units) < k + 1:
            raise DataError(f"--cv {k}: class {labels[label]!r} has {len(units)} "
                            f"{'groups' if by_group else 'images'}; each fold needs one to test and one to train; "
                            f"use fewer folds")
        size = [0] * k
        for name, members in sorted(units, key=lambda u: -len(u[1])):  # largest first: balanced folds
            f = min(range(k), key=lambda i: (size[i], i))
            fold_of[name] = f
            size[f] += len(members)
    plans = []
    for f in range(k):
        test = tuple(sorted(it for it in items if fold_of[key(it[0])] == f))
        rest = [it for it in items if fold_of[key(it[0])] != f]
        inner = make_split(rest, labels, fraction / (1.0 - 1.0 / k), seed + f, "group" if by_group else "stratified",
                           pattern)
        split = Split(inner.split.strategy, inner.split.train, inner.split.val, test=test)
        plans.append(SplitPlan(split, inner.groups, f"fold {f + 1} of {k}: {inner.why}"))
    return plans


def with_given(plan: SplitPlan | None, train: Sequence[tuple[str, int]], val: Sequence[tuple[str, int]] | None,
               val_dir: str | None, test: Sequence[tuple[str, int]] | None, test_dir: str | None) -> SplitPlan:
    """The split when --validation-dir and/or --test-dir name held-out folders (their paths relative to them);
    `plan` is the split made from DATA_DIR for the side(s) not given, or None when both are given."""
    base = plan.split if plan is not None else Split("given", tuple(sorted(train)), ())
    split = Split(base.strategy, base.train,
                  tuple(sorted(val)) if val is not None else base.val,
                  val_dir if val is not None else None,
                  tuple(sorted(test)) if test is not None else base.test,
                  test_dir if test is not None else None)
    given = [f"validation from --validation-dir {val_dir}" if val is not None else "",
             f"test from --test-dir {test_dir}" if test is not None else ""]
    why = "; ".join([x for x in [plan.why if plan else ""] + given if x])
    return SplitPlan(split, plan.groups if plan else 0, why)

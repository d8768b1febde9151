"""Train/validation split: by group (no subject on both sides) or stratified by class.

Folders of photos often hold several shots of one subject (`horse01-0 ... horse01-9`). A random split
puts the same subject on both sides and reports inflated accuracy, so when file names show groups the
split keeps each group whole on one side.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Sequence

from edgeclf.errors import DataError, UsageError
from edgeclf.rundir import Split

# The stem before the last '-' or '_' ("horse01-3" -> "horse01"); a stem without one is its own group.
DEFAULT_GROUP_PATTERN = r"^(.+)[-_][^-_]*$"
SPLIT_MODES = ("auto", "group", "stratified")


@dataclass(frozen=True)
class SplitPlan:
    split: Split
    groups: int  # number of groups (0 for a stratified split)
    why: str  # one sentence for the log: which split and why


def group_of(relpath: str, pattern: re.Pattern[str]) -> str:
    """The group key of a file: class folder + the pattern's first group (or whole match) on the stem."""
    p = PurePosixPath(relpath)
    m = pattern.search(p.stem)
    key = (m.group(1) if m.groups() else m.group(0)) if m else p.stem
    return f"{p.parent}/{key}"


def compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise UsageError(f"--group-pattern {pattern!r} is not a valid regular expression ({e}); "
                         f"the default is {DEFAULT_GROUP_PATTERN!r}") from None


def _groups_usable(items: Sequence[tuple[str, int]], pattern: re.Pattern[str]) -> tuple[bool, str]:
    """Groups are worth splitting by when some group holds several files and every class has >= 2 groups."""
    by_class: dict[int, Counter[str]] = defaultdict(Counter)
    for path, label in items:
        by_class[label][group_of(path, pattern)] += 1
    if not any(c for groups in by_class.values() for c in groups.values() if c > 1):
        return False, "every file is its own group"
    few = [label for label, groups in by_class.items() if len(groups) < 2]
    if few:
        return False, f"class index {few[0]} has fewer than 2 groups"
    return True, ""


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


def make_split(items: Sequence[tuple[str, int]], labels: Sequence[str], fraction: float, seed: int,
               mode: str = "auto", pattern: str = DEFAULT_GROUP_PATTERN) -> SplitPlan:
    """Split (relative path, label index) items, each class in proportion `fraction` to validation."""
    if mode not in SPLIT_MODES:
        raise UsageError(f"--split {mode!r} is not known; expected one of {', '.join(SPLIT_MODES)}")
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--validation-split {fraction} must be between 0 and 1 (e.g. 0.2)")
    rx = compile_pattern(pattern)
    counts = Counter(label for _, label in items)
    for i, name in enumerate(labels):
        if counts[i] < 2:
            raise DataError(f"class {name!r} has {counts[i]} usable image(s); a split needs at least 2 per class "
                            "(one to train, one to validate); add images or pass --validation-dir")
    usable, reason = _groups_usable(items, rx)
    if mode == "group" and not usable:
        raise DataError(f"--split group: the file names do not form groups with --group-pattern {pattern!r} "
                        f"({reason}); use --split stratified or another --group-pattern")
    by_group = mode == "group" or (mode == "auto" and usable)
    rng = random.Random(seed)
    val_keys: set[str] = set()
    for label in range(len(labels)):
        members = [it for it in items if it[1] == label]
        units_d: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for it in members:
            units_d[group_of(it[0], rx) if by_group else it[0]].append(it)
        units = sorted(units_d.items())
        rng.shuffle(units)
        val_keys |= _pick_val(units, max(1, round(fraction * len(members))))
    key = (lambda p: group_of(p, rx)) if by_group else (lambda p: p)
    train = tuple(sorted(it for it in items if key(it[0]) not in val_keys))
    val = tuple(sorted(it for it in items if key(it[0]) in val_keys))
    n_groups = len({group_of(p, rx) for p, _ in items}) if by_group else 0
    if by_group:
        why = (f"group split: {n_groups} groups by --group-pattern {pattern!r}, "
               f"{len({group_of(p, rx) for p, _ in val})} held out; no group on both sides")
    else:
        why = "stratified split by file" + (f" (no groups: {reason})" if mode == "auto" else "")
    return SplitPlan(Split("group" if by_group else "stratified", train, val), n_groups, why)


def given_split(train: Sequence[tuple[str, int]], val: Sequence[tuple[str, int]], val_dir: str) -> SplitPlan:
    """The split when --validation-dir names the held-out files (their paths are relative to it)."""
    return SplitPlan(Split("given", tuple(sorted(train)), tuple(sorted(val)), val_dir), 0,
                     f"given split: held-out files from --validation-dir {val_dir}")

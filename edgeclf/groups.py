"""Which images belong to one subject (a group), from their file names.

Folders of photos often hold several shots of one subject (`horse01-0 ... horse01-9`). Splits keep a group
on one side, and intervals resample groups, not images: both need the same notion of a group, defined here.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import PurePosixPath
from typing import Sequence

from .errors import UsageError

# The stem before the last '-' or '_' ("horse01-3" -> "horse01"); a stem without one is its own group.
DEFAULT_GROUP_PATTERN = r"^(.+)[-_][^-_]*$"

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


def groups_usable(items: Sequence[tuple[str, int]], pattern: re.Pattern[str]) -> tuple[bool, str]:
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




def groups_for(items: Sequence[tuple[str, int]], pattern: str = DEFAULT_GROUP_PATTERN) -> tuple[list[str], bool]:
    """The group of each item, and whether the names formed groups; when they do not, each file is its own."""
    rx = compile_pattern(pattern)
    groups = [group_of(p, rx) for p, _ in items]
    if len(set(groups)) < len(groups):  # some subject has several files (a split needs more; a test does not)
        return groups, True
    return [p for p, _ in items], False

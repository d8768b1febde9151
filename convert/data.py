"""The run's images for conversion: calibration from the training split, evaluation on the held-out split.

Both go through `edgeclf.train.tfdata.load_and_preprocess`, the function training used, so calibration
ranges and accuracies are measured on exactly the inputs the model was trained on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeclf.errors import DataError
from edgeclf.preprocess import PreprocessSpec
from edgeclf.rundir import CONFIG_FILE, RunDir, RunInfo, Split

Item = tuple[Path, int]


@dataclass(frozen=True)
class RunData:
    """Absolute image paths of a run's split, with their label indices."""

    data_dir: Path
    train: tuple[Item, ...]
    val: tuple[Item, ...]
    test: tuple[Item, ...] = ()  # the run's test side (measured once at training); old runs have none
    test_groups: tuple[str, ...] = ()  # the subject of each test image, for the interval

    @property
    def check(self) -> tuple[Item, ...]:
        """The images each variant is checked on: the test side, else (old runs) validation."""
        return self.test or self.val

def resolve_run_data(run: RunDir, info: RunInfo, split: Split, data: Path | None) -> RunData:
    """Find the run's images (at `data` when the folder moved) and check they are all there."""
    base = Path(os.path.expanduser(str(data))) if data is not None else Path(info.data_dir)
    if not base.is_dir():
        if data is not None:
            raise DataError(f"--data {base}: no such folder; expected the folder the run {run.path} was trained "
                            "on (one sub-folder per class)")
        raise DataError(f"{run.path}: its data folder {base} is missing (moved or deleted); conversion needs its "
                        f"images for calibration and checking; pass the folder's new place with --data DIR")
    val_base = Path(split.val_dir) if split.val_dir else base
    if split.val_dir and not val_base.is_dir():
        raise DataError(f"{run.path}: its held-out folder {val_base} (--validation-dir at training) is missing; "
                        "put it back at that path to check the variants")
    train = tuple((base / rel, label) for rel, label in split.train)
    val = tuple((val_base / rel, label) for rel, label in split.val)
    test_base = Path(split.test_dir) if split.test_dir else base
    test = tuple((test_base / rel, label) for rel, label in split.test)
    if not val:
        raise DataError(f"{run.path}: its split has no held-out images; the variants cannot be checked; train again")
    missing = [p for p, _ in train + val + test if not p.is_file()]
    if missing:
        hint = "pass the run's data folder with --data DIR" if data is None else "is --data the run's data folder?"
        raise DataError(f"{base}: {len(missing)} of {len(train) + len(val) + len(test)} images of the run's split are missing "
                        f"(first: {missing[0]}); {hint}")
    return RunData(base, train, val, test, _groups(run, split))


def _groups(run: RunDir, split: Split) -> tuple[str, ...]:
    """Groups of the test side by the pattern the run was trained with (its config.json)."""
    import json

    from edgeclf.groups import DEFAULT_GROUP_PATTERN, groups_for

    try:
        pattern = json.loads((run.path / CONFIG_FILE).read_text("utf-8")).get("group_pattern", DEFAULT_GROUP_PATTERN)
    except (OSError, ValueError, AttributeError):
        pattern = DEFAULT_GROUP_PATTERN
    return tuple(groups_for(split.test, str(pattern))[0]) if split.test else ()


def calibration_sample(items: Sequence[Item], n: int, seed: int = 0) -> list[Item]:
    """Up to `n` items, stratified over labels in proportion to their counts (at least one each)."""
    rng = np.random.default_rng(seed)
    by_label: dict[int, list[Item]] = {}
    for item in items:
        by_label.setdefault(item[1], []).append(item)
    total = len(items)
    if n >= total:
        return list(items)
    picked: list[Item] = []
    for label in sorted(by_label):
        group = by_label[label]
        k = max(1, round(n * len(group) / total))
        idx = rng.choice(len(group), size=min(k, len(group)), replace=False)
        picked.extend(group[i] for i in sorted(idx))
    order = rng.permutation(len(picked))
    return [picked[i] for i in order][:n]


def load_images(items: Sequence[Item], spec: PreprocessSpec, batch: int = 32) -> np.ndarray:
    """Model inputs (N, H, W, 3) float32, preprocessed exactly as training did."""
    import tensorflow as tf

    from edgeclf.train.tfdata import load_and_preprocess

    paths = [str(p) for p, _ in items]
    ds = tf.data.Dataset.from_tensor_slices(paths)
    ds = ds.map(lambda p: load_and_preprocess(p, spec), num_parallel_calls=2).batch(batch)
    out: list[Any] = []
    try:
        for x in ds:
            out.append(x.numpy())
    except tf.errors.OpError as e:
        first = (e.message or "").strip().splitlines()[:1]
        raise DataError(f"{len(paths)} images from {Path(paths[0]).parent.parent}: one could not be decoded "
                        f"({first[0] if first else type(e).__name__}); remove broken files and train again") from None
    return np.concatenate(out).astype(np.float32, copy=False)


def labels_of(items: Sequence[Item]) -> np.ndarray:
    return np.array([label for _, label in items], dtype=np.int64)

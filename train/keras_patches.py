"""Every patch edgeclf makes to Keras internals, in one place: keras-team/keras#20585 (open).

Keras 3's `fit` does not run on `MultiWorkerMirroredStrategy` as shipped: before the first step it averages
the first distributed batch across replicas only to learn its shapes (`_maybe_symbolic_build`), and after
each step it averages the logs with `reduce("MEAN", v, axis=0)` (`reduce_per_replica`); that strategy
rejects both. While a multi-worker `fit` runs, `multi_worker_fit` replaces the two:

- `TensorFlowTrainer._maybe_symbolic_build`, on this model only: shapes from the worker's own first slice
  (same shapes, no collective);
- `keras.src.backend.tensorflow.trainer.reduce_per_replica`, for the process, undone on exit: the mean
  over all replicas of all workers (axis=None), what it means, so every worker gets the same logs and makes
  the same best-model and early-stop decisions.

Importing this module imports Keras and decides once whether this Keras is one known to need the patches
(`KNOWN_TO_NEED`) and whether the names they replace are still where they were (`MISSING`). It is imported
only when a multi-worker fit starts (`edgeclf.train.distribute.fitting`), never by the package.
tests/test_keras_patches.py fails when Keras moves, renames or re-signs a patched name.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
from typing import Any, Iterator

import keras

from edgeclf.errors import RunError

log = logging.getLogger(__name__)

ISSUE = "keras-team/keras#20585"
# Keras 3 up to the last version the failure and the fix were checked on (tests/test_distribute.py, two
# workers on loopback). A newer Keras runs unpatched (with a warning) until it is checked and added here.
KNOWN_TO_NEED = ((3, 0), (3, 15))
# What the patches replace or call, with the parameters the replacements mirror.
PATCHED = {
    "keras.src.backend.tensorflow.trainer.reduce_per_replica": ("values", "strategy", "reduction"),
    "keras.src.backend.tensorflow.trainer.TensorFlowTrainer._maybe_symbolic_build": ("self", "iterator",
                                                                                      "data_batch"),
    "keras.src.trainers.trainer.Trainer._symbolic_build": ("self", "iterator", "data_batch"),
}


def _version(text: str) -> tuple[int, int]:
    parts = (text.split(".") + ["0"])[:2]
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in parts)  # type: ignore[return-value]


def _resolve(dotted: str) -> Any:
    """The object at a dotted path (module part imported), or None when any part is gone."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name, None)
            if obj is None:
                return None
        return obj
    return None


def missing_names() -> list[str]:
    """The patched names this Keras no longer has (or has with other parameters), each with what is wrong."""
    missing = []
    for dotted, params in PATCHED.items():
        obj = _resolve(dotted)
        if obj is None:
            missing.append(f"{dotted} (not found)")
            continue
        have = tuple(inspect.signature(obj).parameters)
        if have != params:
            missing.append(f"{dotted} (parameters {have}, expected {params})")
    return missing


KERAS_VERSION = _version(keras.__version__)
NEEDED = KNOWN_TO_NEED[0] <= KERAS_VERSION <= KNOWN_TO_NEED[1]
MISSING = missing_names() if NEEDED else []


def check() -> None:
    """Raise RunError when this Keras needs the patches but the names they replace have moved."""
    if NEEDED and MISSING:
        raise RunError(f"Keras {keras.__version__} changed what edgeclf's multi-worker fix for {ISSUE} replaces "
                       f"({'; '.join(MISSING)}); train with --strategy default or mirrored, or install Keras "
                       f"{KNOWN_TO_NEED[1][0]}.{KNOWN_TO_NEED[1][1]}")


def _local_symbolic_build(model: Any, strategy: Any) -> None:
    import tensorflow as tf

    def first_slice(v: Any) -> Any:
        return strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v

    def build(iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(first_slice, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = build


@contextlib.contextmanager
def _multi_worker_logs(strategy: Any) -> Iterator[None]:
    import tensorflow as tf

    tf_trainer = importlib.import_module("keras.src.backend.tensorflow.trainer")
    original = tf_trainer.reduce_per_replica

    def mean(v: Any) -> Any:
        tensor = isinstance(v, (tf.Tensor, tf.distribute.DistributedValues))
        return strategy.reduce("MEAN", v, axis=None) if tensor else v

    def reduce_per_replica(values: Any, on: Any, reduction: str) -> Any:
        if on is strategy and reduction in ("auto", "mean"):
            return tf.nest.map_structure(mean, values)
        return original(values, on, reduction)

    tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original


@contextlib.contextmanager
def multi_worker_fit(strategy: Any, model: Any) -> Iterator[None]:
    """While inside, `model.fit` / `model.evaluate` run on a MultiWorkerMirroredStrategy (patched if needed)."""
    if not NEEDED:
        if KERAS_VERSION > KNOWN_TO_NEED[1]:
            log.warning("Keras %s is newer than the last version edgeclf's fix for %s was checked on (%d.%d); "
                        "multi-worker fit runs unpatched", keras.__version__, ISSUE, *KNOWN_TO_NEED[1])
        yield
        return
    check()
    _local_symbolic_build(model, strategy)
    try:
        with _multi_worker_logs(strategy):
            yield
    finally:
        del model._maybe_symbolic_build  # the class's own again

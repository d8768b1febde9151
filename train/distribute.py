"""Which tf.distribute strategy trains the model. The trainer builds model, optimizer and metrics
inside `resolve_strategy(name).scope()`; this is the one place that picks the strategy."""

from __future__ import annotations

from typing import Any

from edgeclf.errors import UsageError

STRATEGIES = ("auto", "default")


def resolve_strategy(name: str) -> Any:
    """The tf.distribute.Strategy for `--strategy name`.

    "default" is TensorFlow's default strategy (one device); "auto" picks the best available, which on
    this build is the default strategy.
    """
    import tensorflow as tf

    if name in ("auto", "default"):
        return tf.distribute.get_strategy()
    raise UsageError(f"--strategy {name!r} is not supported; expected one of {', '.join(STRATEGIES)}")

"""`--binary-output`: what a binary model's TFLite output is.

edgeclf trains a binary model with one sigmoid, P(labels[1]). A runtime that only reads the standard TFLite
metadata (MediaPipe Tasks, Android's Task library) takes a one-value output for one class, so it names one
label and its score is P(second label), whatever the image shows. `two-class` (the default) exports
`[1 - p, p]` instead: the trained model followed by two standard Keras layers (`Rescaling(-1, 1)` makes
`1 - p`, `Concatenate` puts it first), so any classifier runtime names both labels, top-1 is right, and
edgeclf reads it the same way (the manifest's `binary_output` says which). `sigmoid` keeps the single
output (one value fewer, and what bundles converted before this option have).
"""

from __future__ import annotations

from typing import Any, Callable

from edgeclf.bundle import BINARY_OUTPUTS, DEFAULT_BINARY_OUTPUT
from edgeclf.errors import UsageError

__all__ = ["BINARY_OUTPUTS", "DEFAULT_BINARY_OUTPUT", "binary_head", "check_binary_output", "with_binary_output"]


def check_binary_output(value: str) -> str:
    if value not in BINARY_OUTPUTS:
        raise UsageError(f"--binary-output {value!r} is not supported; expected one of {', '.join(BINARY_OUTPUTS)}")
    return value


def with_binary_output(model: Any, task: str, binary_output: str) -> Any:
    """The Keras model to convert: `model` itself, or for a binary task with `two-class`, `[1 - p, p]`."""
    if task != "binary" or binary_output == "sigmoid":
        return model
    import keras

    width = int(model.outputs[0].shape[-1])
    if width != 1:
        raise UsageError(f"--binary-output two-class: the binary model has {width} outputs, not one sigmoid; "
                         "convert it with --binary-output sigmoid")
    shape = model.inputs[0].shape
    inp = keras.Input(shape=shape[1:], batch_size=shape[0], name="image")  # a fixed batch of 1 stays fixed
    p = model(inp, training=False)
    if isinstance(p, (list, tuple)):  # models edgeclf train saves list their one output: called, they return [p]
        (p,) = p
    return keras.Model(inp, two_class(p), name=f"{model.name}_two_class")


def two_class(p: Any) -> Any:
    """`[1 - p, p]` from a sigmoid tensor, with two standard layers."""
    import keras

    q = keras.layers.Rescaling(scale=-1.0, offset=1.0, name="one_minus_p")(p)
    return keras.layers.Concatenate(axis=-1, name="two_class")([q, p])


def binary_head(task: str, binary_output: str) -> Callable[[Any], Any]:
    """What `with_binary_output` adds after the model's probabilities, as a function of that tensor."""
    return two_class if task == "binary" and binary_output != "sigmoid" else (lambda p: p)

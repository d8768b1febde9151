"""The training loss: cross-entropy with label smoothing, for one sigmoid or a softmax over sparse labels.

Keras' sparse categorical cross-entropy has no label smoothing, so the softmax case one-hots inside the
loss. The class is registered with Keras (package `edgeclf`) so that backups, which carry the compiled
loss, load in safe mode; `register()` must run before such a load.
"""

from __future__ import annotations

from typing import Any

_REGISTERED: dict[str, Any] = {}


def register() -> Any:
    """Define and register the smoothed sparse loss class once per process; return it."""
    if "cls" in _REGISTERED:
        return _REGISTERED["cls"]
    import keras

    @keras.saving.register_keras_serializable(package="edgeclf")
    class SmoothedSparseCrossentropy(keras.losses.Loss):
        def __init__(self, n_classes: int = 2, label_smoothing: float = 0.0, name: str = "smoothed_sparse_ce",
                     **kwargs: Any) -> None:
            super().__init__(name=name, **kwargs)
            self.n_classes = int(n_classes)
            self.label_smoothing = float(label_smoothing)

        def call(self, y_true: Any, y_pred: Any) -> Any:
            ops = keras.ops
            y = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.n_classes)
            return keras.losses.categorical_crossentropy(y, y_pred, label_smoothing=self.label_smoothing)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "n_classes": self.n_classes, "label_smoothing": self.label_smoothing}

    _REGISTERED["cls"] = SmoothedSparseCrossentropy
    return SmoothedSparseCrossentropy


def loss_and_metric(n_classes: int, label_smoothing: float) -> tuple[Any, Any]:
    """(loss, accuracy metric named 'accuracy') for a model with one sigmoid (2 classes) or a softmax."""
    import keras

    if n_classes == 2:
        return (keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing),
                keras.metrics.BinaryAccuracy(name="accuracy"))
    return (register()(n_classes, label_smoothing), keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
